"""Shared fixtures. Ray tests share one local Ray instance per session, that is per xdist worker (starting Ray costs seconds)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestration.headless_ray import free_local_port, headless_ray_args

# Quiet TensorFlow's C++ logging in every process the tests start (Ray workers inherit the env).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Under pytest-xdist (the README's `-n 2`) each worker process is a separate session with its
# own `ray_local`: give each its own Ray temp folder, so that neither a plain `ray.init()` nor
# Ray's "latest cluster" file of one worker ever finds the other's (short: Ray's sockets live there).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix=f"us8k-{os.environ['PYTEST_XDIST_WORKER']}-", dir="/tmp")
    atexit.register(shutil.rmtree, os.environ["RAY_TMPDIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance with 2 logical CPUs, shared by the whole session.

    A plain ``ray.init``, as a user's machine or cluster starts Ray: no project-only
    environment in the raylet, so the tests run the processes users run. No dashboard, on a
    port of its own (orchestration/headless_ray.py: another worker's dashboard on 8265 would
    otherwise answer Ray Train's placement-group cleaner, which then kills live runs).
    """
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, **headless_ray_args(), log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_dataset_root(tmp_path_factory):
    """The `tiny` synthetic UrbanSound8K tree (200 clips, all formats), generated once."""
    from features.synthetic import generate

    return generate(tmp_path_factory.mktemp("us8k-tiny"), preset="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_dataset(tiny_dataset_root):
    from features.dataset import load_dataset

    return load_dataset(tiny_dataset_root)


free_port = free_local_port


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port nothing listens on (fixture: `conftest` is ambiguous as a module name)."""
    return free_port()


def start_mlflow_server(folder, backend_store_uri: str | None = None):
    """A real `mlflow server` process on loopback (sqlite backend in ``folder`` unless given,
    served artifacts in ``folder/artifacts``): (server, URI), once /health answers (waited for
    as long as the machine needs: a hang guard only, no speed expectation)."""
    from benchmarks.fault_scenarios import MlflowServer

    server = MlflowServer(folder, backend_store_uri=backend_store_uri).start()
    return server, server.uri


def stop_process(server) -> None:
    server.kill()  # the server and its uvicorn worker (their own process group)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` process on loopback (sqlite backend, served artifacts); its URI."""
    server, uri = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    yield uri
    stop_process(server)


@pytest.fixture(scope="session")
def mlflow_server_tools():
    """``start(folder, backend_store_uri=None) -> (server, uri)`` and ``stop(server)``, for a
    test that needs its own server (`conftest` cannot be imported by name from a test)."""
    from types import SimpleNamespace

    return SimpleNamespace(start=start_mlflow_server, stop=stop_process)


@pytest.fixture
def inner_pytest(tmp_path):
    """Runs tests of ``test_file`` in a child pytest process, for tests that need a Ray cluster
    of their own (``ray.cluster_utils.Cluster``): Ray allows one cluster connection per process,
    and ``ray_local`` holds this one. The child gets its own RAY_TMPDIR, where ``Cluster()``
    writes its address (a plain ``ray.init()`` elsewhere on the machine would find and join it
    under the default one; short: Ray's unix sockets live below it). Returns the child's output
    and the names of the tests that passed there; fails on a non-zero exit, and after
    ``timeout`` s (a hang guard), killing the child and the Ray nodes it started."""
    def run(test_file: str, env: dict[str, str], *, timeout: float, keyword: str | None = None) -> tuple[str, set[str]]:
        ray_tmp = tempfile.mkdtemp(prefix="us8k-inner-", dir="/tmp")
        # Not an xdist worker itself: the child runs its tests serially, in the Ray folder given here.
        child_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS" and not k.startswith("PYTEST_XDIST")}
        child_env.update(env, RAY_TMPDIR=ray_tmp)
        junit = tmp_path / "inner.xml"
        args = [sys.executable, "-m", "pytest", test_file, "-p", "no:cacheprovider", "-q",
                f"--junitxml={junit}", f"--basetemp={tmp_path / 'inner'}", *(["-k", keyword] if keyword else [])]
        child = subprocess.Popen(args, cwd=Path(__file__).resolve().parents[1], env=child_env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            out, _ = child.communicate()
            pytest.fail(f"{test_file} still running in its child process after {timeout} s:\n{out[-6000:]}")
        finally:
            shutil.rmtree(ray_tmp, ignore_errors=True)
        assert child.returncode == 0, out[-8000:]
        cases = ET.parse(junit).getroot().iter("testcase")
        passed = {c.get("name") for c in cases if not any(e.tag in ("failure", "error", "skipped") for e in c)}
        return out, passed

    return run


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the slow tests (sweeps, clusters, child processes: ~90% of the
    suite's time, ~60% of both cores busy when run alone) go first, so that the two workers
    overlap them and fill the end with the fast ones instead of one worker finishing a long
    test alone. A stable sort: every worker collects the same order, as xdist requires."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_terminal_summary(terminalreporter):
    """The disk Ray spills to, as Ray counts it, at the end of every run (-q too): over 95% a
    full object store fails its put with OutOfDiskError, as in stop 22's CI; this makes it plain."""
    from orchestration.ray_disk import disk_usage, disk_warning

    usage = disk_usage(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir())
    terminalreporter.write_line(disk_warning(usage) or f"Ray's temp disk: {usage.describe()}")
