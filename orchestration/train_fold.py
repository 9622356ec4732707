"""Train and evaluate one cross-validation fold with Ray Train (TensorflowTrainer, Train V2).

Start-up cost matters: a sweep starts one Train run per (configuration, fold). Measured on 2
idle cores (``python -m orchestration.bench_overhead``, README "Benchmarks"), the stock pattern
spends ~13 s per run outside the worker loop, ~25 s under load; this project's trials ~1.4 s.
``train_fold`` cuts it with:

- ``TRAIN_ENV``: the controller polls workers every 0.2 s instead of 2 s (every report waits
  for a poll) and starts no preemption watcher (cloud spot preemption is handled by
  FailureConfig restarts anyway);
- ``TFConfigNoImport``: the controller no longer imports TensorFlow just to unpickle the
  backend config;
- ``lean=True`` and Ray started by ``ray_env.init_ray``: Train's controller runs in one
  long-lived actor per process (``ray_env.ControllerHost``: no controller process to start per
  run) and its synchronisation actor and the workers start without a runtime env (one Python
  start-up fewer each), see ``orchestration.ray_env``;
- ``lean=True``: the controller skips its Ray Data manager (we pass no Ray Datasets; it imports
  ray.data in an extra process) and the placement-group cleaner (an extra process that needs
  the dashboard's state API). This uses a private Trainer hook, pinned to Ray 2.60 and checked
  by tests/orchestration/test_train_fold.py;
- ``reuse_tune_report_queue`` / ``drain_tune_reports``: a Tune trial process keeps the queue
  actor TuneReportCallback reports through (one process fewer per trial) and returns as soon
  as Tune has the final report (private Tune-session hooks, pinned to Ray 2.60 likewise).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.tensorflow import TensorflowTrainer

from features.featureset import FeatureSet
from features.us8k import CLASS_NAMES
from model.config import TrainConfig
from model.train_loop import make_loop_config, train_loop_per_worker
from orchestration.ray_env import (
    TRAIN_ENV,
    NoWorkerRuntimeEnv,
    raylet_env_suffices,
    run_controller_in_host,
)
from orchestration.tf_backend import TFConfigNoImport
from orchestration.trial import FINAL_KEY


def train_fold(
    features: ray.ObjectRef | FeatureSet,
    test_fold: int,
    train_config: TrainConfig,
    *,
    num_workers: int = 2,
    use_gpu: bool = False,
    resources_per_worker: Mapping[str, float] | None = None,
    storage_path: str | None = None,
    name: str | None = None,
    max_failures: int = 0,
    num_to_keep: int | None = 2,
    callbacks: Sequence[Any] = (),
    worker_env: Mapping[str, str] | None = None,
    class_names: tuple[str, ...] = CLASS_NAMES,
    lean: bool = True,
) -> ray.train.Result:
    """Fit one fold and return the Result (metrics, final checkpoint with model and report).

    ``features``: pass an ObjectRef from one ``ray.put(featureset)`` shared by every fold
    and trial; a FeatureSet is put here, once per call. ``num_workers=0`` is Ray Train's
    local mode: the loop runs in this process (no worker group, no start-up cost, no
    checkpoint persistence or failure recovery). ``resources_per_worker`` defaults
    to 1 CPU (plus 1 GPU if ``use_gpu``); TensorFlow's thread pools are sized to the CPUs
    reserved. ``worker_env`` goes into the workers' runtime env (e.g. the test-only failure
    hook ``US8K_FAIL_AT_EPOCH``/``US8K_FAIL_MARKER``); leave it None otherwise, since a
    runtime env can cost worker start-up time. ``callbacks`` are Ray Train UserCallbacks,
    e.g. Tune's ``TuneReportCallback``. Raises ``ray.train.TrainingFailedError`` when the
    run fails beyond ``max_failures`` retries.
    """
    if num_workers < 0:
        raise ValueError(f"train_fold: num_workers must be >= 0, got {num_workers}")
    resources = dict(resources_per_worker) if resources_per_worker else {"CPU": 1.0}
    if use_gpu:
        resources.setdefault("GPU", 1.0)
    features_ref = features if isinstance(features, ray.ObjectRef) else ray.put(features)
    cpus = resources.get("CPU", 1.0)
    for key, value in TRAIN_ENV.items():
        os.environ.setdefault(key, value)
    # Ray started by ray_env.init_ray already gives every process what a runtime env would.
    bare = lean and raylet_env_suffices()
    if bare:
        callbacks = [*callbacks, NoWorkerRuntimeEnv()]
    trainer = TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config=make_loop_config(
            features_ref,
            test_fold,
            train_config,
            use_gpu=use_gpu,
            # Rounded: 1.99 CPUs (a whole node minus a trial driver's 0.01) still means 2 threads.
            intra_op_threads=max(1, round(cpus)),
            class_names=class_names,
        ),
        scaling_config=ScalingConfig(
            num_workers=num_workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=num_to_keep),
            callbacks=list(callbacks),
            worker_runtime_env={"env_vars": dict(worker_env)} if worker_env else None,
        ),
        tensorflow_config=TFConfigNoImport(),
    )
    if lean:
        drop_unused_controller_callbacks(trainer)
    if bare:
        run_controller_in_host(trainer)
    result = trainer.fit()
    if any(type(c).__name__ == "TuneReportCallback" for c in callbacks):
        drain_tune_reports()
    return result


def drop_unused_controller_callbacks(trainer: TensorflowTrainer) -> list[str]:
    """Remove the controller's Ray Data manager and placement-group cleaner (private hook).

    Returns the names of the callbacks removed; an empty list means the hook no longer exists
    in this Ray version and nothing was changed.
    """
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
    from ray.train.v2._internal.callbacks.placement_group_callback import (
        PlacementGroupCleanerCallback,
    )

    default = getattr(trainer, "_create_default_callbacks", None)
    if default is None:
        return []
    unused = (DatasetsCallback, PlacementGroupCleanerCallback)
    trainer._create_default_callbacks = lambda: [c for c in default() if not isinstance(c, unused)]
    return [cls.__name__ for cls in unused]


# This process's TuneReportCallback queue actor, kept for the next trial Tune runs here.
_report_queue: Any = None
# Attribute set on a Tune session whose reports we watch: an Event set once the Train run's
# final report (metrics with "final") has passed through the session.
_FINAL_SEEN = "_us8k_final_report_seen"


def reuse_tune_report_queue() -> bool:
    """Give this Tune trial the queue actor of the previous trial in this process (private hook).

    TuneReportCallback hands reports to the Tune session through a queue actor that the session
    creates per trial: a new process per trial (~1 CPU-second to start, measured in the demo
    sweep). With ``reuse_actors=True`` one trial process runs many trials, so the queue is
    kept: call this before constructing TuneReportCallback, and ``drain_tune_reports`` leaves
    it running. Results a failed trial left behind are dropped first. The session's ``report``
    is also wrapped to notice the final report, so that ``drain_tune_reports`` returns as soon
    as Tune has it. Returns False (nothing changed) outside a Tune session or if the hooks no
    longer exist in this Ray version.
    """
    global _report_queue
    from ray.train._internal.session import get_session

    session = get_session()
    if session is None or not hasattr(session, "_inter_actor_queue") or not hasattr(session, "report"):
        return False
    if _report_queue is not None:
        try:
            while not _report_queue.empty():
                _report_queue.get_nowait()
        except Exception:  # the actor died (e.g. its node): start a new one
            _report_queue = None
    if _report_queue is None:
        _report_queue = session._get_or_create_inter_actor_queue()
    else:
        session._inter_actor_queue = _report_queue
    _watch_final_report(session)
    return True


def _watch_final_report(session: Any) -> None:
    seen = threading.Event()
    report = session.report

    def watched(metrics, *args, **kwargs):
        report(metrics, *args, **kwargs)  # returns once the result is in Tune's result queue
        if isinstance(metrics, Mapping) and metrics.get(FINAL_KEY):
            seen.set()

    session.report = watched
    setattr(session, _FINAL_SEEN, seen)


def drain_tune_reports(timeout_s: float = 30.0) -> None:
    """Wait until Tune has taken the last result TuneReportCallback forwarded, then detach its queue.

    TuneReportCallback hands each report to the Tune trial through a one-slot queue actor. If
    the trial function returns while the final report still sits there, Tune's session
    deadlocks (its "done" marker fills the result queue the report needs) and the final metrics
    are lost. With ``reuse_tune_report_queue`` the wait ends when the final report has gone
    through (``train_loop_per_worker`` reports ``final``), and the queue stays up for the next
    trial; otherwise the queue is polled until empty and the actor (a process of ~130 MB that
    would outlive its trial when Tune reuses the trial process) is shut down.
    """
    from ray.train._internal.session import get_session

    session = get_session()
    queue = getattr(session, "_inter_actor_queue", None) if session else None
    if queue is None:
        return
    seen = getattr(session, _FINAL_SEEN, None)
    if seen is None or not seen.wait(timeout_s):
        deadline = time.monotonic() + timeout_s
        while not queue.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the session thread re-reports the item it just took
    # Stop the session polling this queue.
    session._inter_actor_queue = None
    if queue is not _report_queue:
        # Let an in-flight poll (0.2 s timeout) return, then end the actor. A kept queue needs
        # no wait: the next trial's first report comes seconds later, after its Train run starts.
        time.sleep(0.3)
        queue.shutdown(grace_period_s=5)
