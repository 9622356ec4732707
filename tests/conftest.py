"""Shared fixtures. Ray tests share one local Ray instance per session (starting Ray costs seconds)."""

from __future__ import annotations

import os

import pytest

# Quiet TensorFlow's C++ logging in every process the tests start (Ray workers inherit the env).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance with 2 logical CPUs, shared by the whole session.

    A plain ``ray.init``, as a user's machine or cluster starts Ray: no project-only
    environment in the raylet, so the tests run the processes users run.
    """
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
