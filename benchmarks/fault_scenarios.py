"""Fault scenarios on real processes, shared by the fault tests and ``python -m benchmarks.faults``.

Each scenario runs tiny sweeps (``tiny`` synthetic preset, a small network, one epoch) as
their own processes (``python -m orchestration.cv_sweep``) against a real ``mlflow server``,
does something to them (kills the tracking server and restarts it, kills it for good, kills
the driver, runs two sweeps at once on one Ray cluster), and returns what survived: whether the
sweep completed, MLflow runs lost and duplicated (one fold run per (configuration, fold) is
right), and how long recovery took. Nothing here waits a fixed time: every wait is on a
state (a run's status, the spool's journal, a process's exit), with a generous hang guard.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.headless_ray import free_local_port

HANG_GUARD_S = 3600.0  # only against hangs: never a speed expectation
# One epoch on a quarter of each clip and a small network: the machinery, not the accuracy.
FAST = ["--epochs", "1", "--no-refit", "--set", "features.frames=44", "--set", "train.filters=[8,8,16,16]",
        "--set", "train.batch_size=32", "--set", "train.checkpoint_every=1", "--set", "train.learning_rate=3e-3"]


free_port = free_local_port


def wait_for(what: str, condition: Callable[[], Any], timeout_s: float = HANG_GUARD_S, every_s: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something true; its value. Raises after the hang guard."""
    end = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(every_s)


class MlflowServer:
    """A real ``mlflow server`` (sqlite backend, served artifacts) that can be killed and
    started again on the same port and backend."""

    def __init__(self, folder: Path, port: int | None = None, backend_store_uri: str | None = None) -> None:
        self.folder = Path(folder)
        self.backend_store_uri = backend_store_uri or f"sqlite:///{self.folder}/mlflow.db"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout_s: float = 600.0, wait: bool = True) -> MlflowServer:
        """Start the server; with ``wait`` (default) return once it answers."""
        log = (self.folder / f"server-{self.starts}.log").open("w")
        self.starts += 1
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        # Its own session: `mlflow server` runs uvicorn as a child; a kill takes both.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", self.backend_store_uri,
             "--serve-artifacts", "--artifacts-destination", str(self.folder / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        log.close()
        if wait:
            wait_for(f"mlflow server on {self.uri}", lambda: self.answers() or self._died(), timeout_s, 0.5)
        return self

    def _died(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(self.folder / f'server-{self.starts - 1}.log').read_text()[-2000:]}")
        return False

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL to the server and its workers, as a crash or an OOM kill would."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.proc = None
        wait_for("the killed server's port to close", lambda: not self.answers(), 60)

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


class RayHead:
    """A one-node Ray cluster as its own processes (``ray start --head --block``), in a
    private temp folder (a plain ``ray.init()`` elsewhere on the machine does not join it);
    killed as one process group."""

    def __init__(self, log_dir: Path, cpus: int = 2, args: Sequence[str] = ()) -> None:
        import tempfile

        self.cpus, self.args = cpus, tuple(args)  # args: more `ray start` options
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.tmp = tempfile.mkdtemp(prefix="us8k-rh-", dir="/tmp")  # short: Ray's sockets live below it
        self.log = Path(log_dir) / "ray-head.log"
        self._token = secrets.token_hex(32)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 600.0) -> RayHead:
        ray = str(Path(sys.executable).parent / "ray")
        env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, **self.env}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        log = self.log.open("w")
        self.proc = subprocess.Popen(
            [ray, "start", "--head", "--block", "--port", str(self.port),
             "--num-cpus", str(self.cpus), "--include-dashboard", "false", "--disable-usage-stats",
             # A dashboard port of its own (orchestration/headless_ray.py: else it publishes 8265).
             "--dashboard-port", str(free_port()), *self.args],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        wait_for(f"the Ray head on {self.address}", lambda: self._up() or self._died(), timeout_s, 0.5)
        return self

    @property
    def env(self) -> dict[str, str]:
        """What the head and every driver of this cluster need in their environment: its temp
        folder, and Ray's token authentication on with this cluster's own throwaway token
        (in the environment, never in a file)."""
        return {"RAY_TMPDIR": self.tmp, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self._token}

    def _up(self) -> bool:
        import socket

        with socket.socket() as s:
            s.settimeout(2)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def _died(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"ray start exited: {self.log.read_text()[-2000:]}")
        return False

    def stop(self) -> None:
        import shutil

        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> RayHead:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Outcome:
    """What a fault scenario leaves: compared with one fold run per expected pair."""

    kind: str
    survived: bool
    runs_lost: int
    runs_duplicated: int
    recover_s: float | None
    details: dict[str, Any] = field(default_factory=dict)


def fold_runs(uri: str, experiment: str, sweep: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    from orchestration.tracking import TAG_KIND, TAG_SWEEP

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], f"tags.`{TAG_SWEEP}` = '{sweep}' and tags.`{TAG_KIND}` = 'fold'",
                              max_results=1000)


def tally(uri: str, experiment: str, sweep: str, expected: int) -> dict[str, Any]:
    """Fold runs of a sweep against the pairs expected: complete (FINISHED, with a test
    accuracy and exactly one model), lost (expected pairs with no complete run), duplicated
    (extra runs for a pair, or extra models)."""
    from mlflow.tracking import MlflowClient

    from orchestration.mlflow_model import run_models
    from orchestration.tracking import TAG_CONFIG, TAG_FOLD

    client = MlflowClient(uri)
    runs = fold_runs(uri, experiment, sweep)
    pairs = Counter((r.data.tags[TAG_CONFIG], r.data.tags[TAG_FOLD]) for r in runs)
    complete, extra_models, epochs_twice = 0, 0, 0
    for run in runs:
        models = run_models(client, run.info.experiment_id, run.info.run_id)
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        epochs_twice += len(steps) - len(set(steps))
        extra_models += max(0, len(models) - 1)
        if run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics and len(models) == 1:
            complete += 1
    duplicated = sum(n - 1 for n in pairs.values()) + extra_models + epochs_twice
    return {"runs": len(runs), "complete": complete, "lost": max(0, expected - complete), "duplicated": duplicated,
            "accuracies": {f"{c}/{f}": r.data.metrics.get("test_accuracy") for r in runs
                           for c, f in [(r.data.tags[TAG_CONFIG], r.data.tags[TAG_FOLD])]}}


@dataclass
class Sweep:
    """A tiny sweep as its own process: ``python -m orchestration.cv_sweep``."""

    data_dir: Path
    work: Path
    uri: str
    name: str
    experiment: str = "faults"
    folds: str = "1,2"
    space: str = '{"dropout1": [0.0]}'
    extra: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)  # e.g. a RayHead's, to reach its cluster

    @property
    def pairs(self) -> int:
        return len(json.loads(self.space)["dropout1"]) * len(self.folds.split(","))

    @property
    def spool(self) -> Path:
        return self.work / "ray" / self.name / "mlflow-spool"

    def args(self) -> list[str]:
        return [sys.executable, "-m", "orchestration.cv_sweep", "--data-dir", str(self.data_dir),
                "--folds", self.folds, "--search-space", self.space, *FAST,
                "--cache-dir", str(self.work / "cache"), "--storage-path", str(self.work / "ray"),
                "--tracking-uri", self.uri, "--experiment", self.experiment, "--name", self.name, *self.extra]

    def start(self, *more: str, log: str = "sweep") -> subprocess.Popen:
        self.work.mkdir(parents=True, exist_ok=True)
        out = (self.work / f"{self.name}-{log}.log").open("w")
        # The command's own environment: no RAY_ADDRESS unless given, TF_USE_LEGACY_KERAS set by the command.
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TF_USE_LEGACY_KERAS")}
        env.update(self.env)
        return subprocess.Popen([*self.args(), *more], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)

    def log(self, log: str = "sweep") -> str:
        path = self.work / f"{self.name}-{log}.log"
        return path.read_text() if path.exists() else ""

    def finished_folds(self) -> int:
        return sum(r.info.status == "FINISHED" for r in fold_runs(self.uri, self.experiment, self.name))


def spool_pending(folder: Path) -> int:
    """Units of a spool's journal not stored yet (0 if there is no journal)."""
    from orchestration.spool import JOURNAL, Spool

    return len(Spool(folder).pending()) if (folder / JOURNAL).exists() else 0


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)


def _pending_ops(folder: Path) -> list[str]:
    from orchestration.spool import JOURNAL, Spool

    return [u.op for u in Spool(folder).pending()] if (folder / JOURNAL).exists() else []


def exited(proc: subprocess.Popen) -> bool:
    return proc.poll() is not None


def mlflow_restart(data_dir: Path, work: Path) -> Outcome:
    """The tracking server is SIGKILLed once the sweep has created its first fold run, and
    started again (same port, same backend) once a finished trial's writes (test metrics,
    report, model) wait in the sweep's spool. Recovery: restart -> spool drained."""
    server = MlflowServer(work / "mlflow").start()
    try:
        sweep = Sweep(data_dir, work, server.uri, "restart", extra=["--max-concurrent", "1", "--address", "local"])
        proc = sweep.start()
        wait_for("the first fold run", lambda: exited(proc) or fold_runs(server.uri, sweep.experiment, sweep.name))
        server.kill()
        wait_for("a finished trial waiting in the spool", lambda: exited(proc) or "finish" in _pending_ops(sweep.spool))
        server.start()
        back = time.monotonic()
        wait_for("the spool to drain", lambda: exited(proc) or spool_pending(sweep.spool) == 0)
        recover_s = time.monotonic() - back
        code = proc.wait(timeout=HANG_GUARD_S)
        found = tally(server.uri, sweep.experiment, sweep.name, sweep.pairs)
        return Outcome("MLflow server killed, back later", code == 0 and found["lost"] == 0, found["lost"],
                       found["duplicated"], recover_s, {"exit": code, "log": sweep.log()[-3000:], **found})
    finally:
        server.kill()


def mlflow_gone(data_dir: Path, work: Path) -> Outcome:
    """The tracking server is SIGKILLed after the first fold run and never comes back during
    the sweep: the sweep finishes (exit 3), says so, and leaves its spool; the server is then
    started again and ``python -m orchestration.replay`` stores it. Recovery: the replay."""
    server = MlflowServer(work / "mlflow").start()
    try:
        sweep = Sweep(data_dir, work, server.uri, "gone",
                      extra=["--max-concurrent", "1", "--address", "local", "--tracking-grace", "1"])
        proc = sweep.start()
        wait_for("the first fold run", lambda: exited(proc) or fold_runs(server.uri, sweep.experiment, sweep.name))
        server.kill()
        code = proc.wait(timeout=HANG_GUARD_S)
        said = "did not come back" in sweep.log() and f"python -m orchestration.replay {sweep.spool}" in sweep.log()
        left = spool_pending(sweep.spool)
        server.start()
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
        replayed = subprocess.run([sys.executable, "-m", "orchestration.replay", str(sweep.spool)],
                                  capture_output=True, text=True, env=env, timeout=HANG_GUARD_S)
        recover_s = time.monotonic() - started
        found = tally(server.uri, sweep.experiment, sweep.name, sweep.pairs)
        survived = code == 3 and said and left > 0 and replayed.returncode == 0 and found["lost"] == 0
        return Outcome("MLflow server killed for good (spool + replay)", survived, found["lost"], found["duplicated"],
                       recover_s, {"exit": code, "spooled": left, "said": said, "replay": replayed.stdout + replayed.stderr,
                                   "log": sweep.log()[-3000:], **found})
    finally:
        server.kill()


def driver_killed(data_dir: Path, work: Path, server_uri: str) -> Outcome:
    """The driver (and the Ray it started) is SIGKILLed once one fold run is FINISHED; the
    same command with --resume finishes the sweep. Runs finished before the kill must keep
    their end times. Recovery: the resumed command's wall time."""
    sweep = Sweep(data_dir, work, server_uri, f"killed-{work.name}", extra=["--max-concurrent", "1", "--address", "local"])
    proc = sweep.start()
    wait_for("a finished fold run", lambda: exited(proc) or sweep.finished_folds() >= 1)
    before = {r.info.run_id: r.info.end_time for r in fold_runs(server_uri, sweep.experiment, sweep.name)
              if r.info.status == "FINISHED"}
    kill_group(proc)
    started = time.monotonic()
    resumed = sweep.start("--resume", sweep.name, log="resumed")
    code = resumed.wait(timeout=HANG_GUARD_S)
    recover_s = time.monotonic() - started
    after = {r.info.run_id: r.info.end_time for r in fold_runs(server_uri, sweep.experiment, sweep.name)}
    untouched = all(after.get(run) == end for run, end in before.items())
    found = tally(server_uri, sweep.experiment, sweep.name, sweep.pairs)
    return Outcome("driver killed, --resume", code == 0 and untouched and found["lost"] == 0, found["lost"],
                   found["duplicated"], recover_s, {"exit": code, "untouched": untouched, "finished_before": len(before),
                                                    "log": sweep.log("resumed")[-3000:], **found})


def two_sweeps(data_dir: Path, work: Path, server_uri: str, head: RayHead) -> Outcome:
    """Two sweeps at once on one Ray cluster and one tracking server, in one experiment, with
    the same configurations (so the same configuration ids): both complete with their own
    runs; then one is resumed and must find only its own runs (nothing new, nothing touched)."""
    sweeps = [Sweep(data_dir, work, server_uri, name, experiment="faults-two", extra=["--address", head.address],
                    env=head.env)
              for name in (f"twin-a-{work.name}", f"twin-b-{work.name}")]
    procs = [s.start() for s in sweeps]
    codes = [p.wait(timeout=HANG_GUARD_S) for p in procs]
    first = [tally(server_uri, s.experiment, s.name, s.pairs) for s in sweeps]
    before = {r.info.run_id: r.info.end_time for s in sweeps for r in fold_runs(server_uri, s.experiment, s.name)}
    started = time.monotonic()
    again = sweeps[0].start("--resume", sweeps[0].name, log="resumed").wait(timeout=HANG_GUARD_S)
    recover_s = time.monotonic() - started
    after = {r.info.run_id: r.info.end_time for s in sweeps for r in fold_runs(server_uri, s.experiment, s.name)}
    found = [tally(server_uri, s.experiment, s.name, s.pairs) for s in sweeps]
    survived = codes == [0, 0] and again == 0 and after == before and all(f["lost"] == 0 for f in found)
    return Outcome("two sweeps at once, one resumed", survived, sum(f["lost"] for f in found),
                   sum(f["duplicated"] for f in found), recover_s,
                   {"exits": codes, "resume_exit": again, "untouched": after == before, "before": first,
                    "logs": [s.log()[-2000:] for s in sweeps] + [sweeps[0].log("resumed")[-2000:]]})


def writer_outage(work: Path) -> Outcome:
    """The sweep's MLflow writer alone (no Ray, no training): a fold run is created, the
    server is SIGKILLed, an epoch and the fold's final result are written while it is down
    (they wait, on disk, in order), the server is started again on the same port and backend,
    and everything lands exactly once. Recovery: restart -> every write stored."""
    from orchestration.spool import Spool, TrackingWriter
    from orchestration.tracking import SweepTracker
    from orchestration.tracking_ops import apply_unit, fold_args, spool_files

    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1")  # as a sweep sets them
    server = MlflowServer(work / "mlflow").start()
    try:
        tracker = SweepTracker(server.uri, "faults-writer", "writer")
        tracker.start_sweep({"sweep": {"folds": [1]}}, {})
        spool = Spool(work / "spool", {"tracking_uri": server.uri, "experiment": "faults-writer", "sweep_id": "writer"})
        writer = TrackingWriter(spool, server.uri, lambda unit: apply_unit(tracker, unit), spool_files,
                                first_backoff_s=0.2, max_backoff_s=2.0)
        fold = fold_args({"config_id": "c1", "fold": 1}, {"learning_rate": 1e-3}, "learning_rate=0.001", ("learning_rate",))
        writer.submit("fold_start", fold)
        writer.submit("epoch", {**fold_args(fold), "result": {"epoch": 1, "loss": 1.0}})
        writer.drain(HANG_GUARD_S)
        server.kill()
        writer.submit("epoch", {**fold_args(fold), "result": {"epoch": 2, "loss": 0.5}})
        writer.submit("finish", {**fold, "result": {"final": 1, "test_accuracy": 0.75, "epoch": 2},
                                 "folds_total": 1, "checkpoint": None})
        wait_for("the writer to see the outage", lambda: writer.down_since is not None)
        waiting = len(spool.pending())
        server.start()
        back = time.monotonic()
        stored = writer.drain(HANG_GUARD_S)
        recover_s = time.monotonic() - back
        report = writer.close(0)
        found = tally(server.uri, "faults-writer", "writer", expected=1)
        # No model for this fold (no checkpoint): complete means FINISHED with its accuracy.
        runs = fold_runs(server.uri, "faults-writer", "writer")
        complete = [r for r in runs if r.info.status == "FINISHED" and r.data.metrics.get("test_accuracy") == 0.75]
        lost = max(0, 1 - len(complete)) + report.pending
        survived = stored and waiting == 2 and lost == 0 and found["duplicated"] == 0 and len(report.outages) == 1
        return Outcome("MLflow server killed (writer only)", survived, lost, found["duplicated"], recover_s,
                       {"waiting_during_outage": waiting, "outages": len(report.outages), **found})
    finally:
        server.kill()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
