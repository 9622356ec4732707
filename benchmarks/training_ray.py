"""The Ray rows of ``python -m benchmarks.training``: the sweep's in-trial shape, Ray Train
worker groups, on one local Ray or on a ``ray.cluster_utils.Cluster`` of several nodes.

- ``in-trial``: one Ray Tune trial running ``orchestration.trial.run_fold_trial`` with
  ``in_trial=True`` (the sweep's default shape for 1-worker CPU trials): the project's loop in
  the Tune trial process, which holds the CPUs. Rates from the final checkpoint's report.
- ``Ray Train N workers x C CPU``: one ``orchestration.train_fold.train_fold`` call (a
  ``TensorflowTrainer`` worker group). With several nodes the workers are spread over them.

Every row's report carries the runtime its loop trained under (``model.runtime.describe``:
thread pools, strategy, determinism, ``OMP_NUM_THREADS`` as Ray set it, CPU affinity).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from benchmarks.training_result import MethodResult
from model.config import TrainConfig
from orchestration.headless_ray import headless_ray_args

TEST_FOLD = 1
QUIET_TUNE_ENV = "RAY_AIR_NEW_OUTPUT"  # Ray's switch between its new and legacy console output


@contextlib.contextmanager
def ray_session(cpus: int, nodes: int, gpus: float = 0.0) -> Iterator[dict[str, Any]]:
    """Local Ray (``nodes`` 1) or a Cluster of ``nodes`` nodes sharing ``cpus`` CPUs; yields
    {"nodes", "cpus_per_node"}. A running Ray in this process is used as it is (1 node)."""
    import ray

    if nodes == 1:
        started = not ray.is_initialized()
        if started:
            ray.init(num_cpus=cpus, num_gpus=gpus or None, **headless_ray_args(), log_to_driver=False,
                     configure_logging=False)
        try:
            yield {"nodes": 1, "cpus_per_node": int(ray.cluster_resources().get("CPU", cpus))}
        finally:
            if started:
                ray.shutdown()
        return
    if ray.is_initialized():
        raise RuntimeError("--nodes needs a process without a Ray connection (Ray allows one per process)")
    per_node = cpus // nodes
    if per_node < 1:
        raise ValueError(f"--nodes {nodes}: fewer CPUs ({cpus}) than nodes")
    from ray.cluster_utils import Cluster

    # Cluster() writes its address where every plain ray.init() on this machine would join it:
    # a private temporary directory keeps other processes out (short: unix socket paths).
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="us8k-bn-", dir="/tmp")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": per_node, **headless_ray_args()})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=per_node)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        yield {"nodes": nodes, "cpus_per_node": per_node}
    finally:
        ray.shutdown()
        cluster.shutdown()
        if previous is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = previous


def run_train(features_ref, config: TrainConfig, workers: int, cpus_per_worker: int, gpus_per_worker: float,
              train_rows: int, storage: str, nodes: int = 1) -> MethodResult:
    """One train_fold call; per-epoch rates from the final checkpoint's report history."""
    from orchestration.train_fold import RunSettings, WorkerResources, train_fold

    start = time.perf_counter()
    result = train_fold(
        features_ref, TEST_FOLD, config,
        WorkerResources(workers=workers, cpus=float(cpus_per_worker), gpus=gpus_per_worker),
        RunSettings(storage_path=storage, name=f"bench_{workers}w_{cpus_per_worker}c_{nodes}n"),
    )
    wall = time.perf_counter() - start
    if result.error is not None:
        raise RuntimeError(f"Ray Train with {workers} worker(s) failed: {result.error}")
    plural = "s" if workers > 1 else ""
    gpu = f" + {gpus_per_worker:g} GPU" if gpus_per_worker else ""
    where = f", {nodes} nodes" if nodes > 1 else ""
    name = f"Ray Train {workers} worker{plural} x {cpus_per_worker} CPU{gpu}{where}"
    row = _from_report(name, result.checkpoint, wall, config.batch_size * workers, train_rows, workers)
    row.details["cpus_per_worker"] = cpus_per_worker
    return row


def run_in_trial(features_ref, config: TrainConfig, cpus: int, gpus: float, train_rows: int,
                 storage: str) -> MethodResult:
    """One Tune trial of the sweep's in-trial shape (the loop in the trial process)."""
    from ray import tune

    from orchestration.trial import TrialSettings, run_fold_trial

    settings = TrialSettings(base_train=config.to_dict(), workers_per_trial=1, cpus_per_worker=float(cpus),
                             gpus_per_worker=gpus, storage_path=storage, sweep_name="bench-in-trial",
                             train_max_failures=0, in_trial=True)
    trainable = tune.with_resources(tune.with_parameters(run_fold_trial, features=features_ref, settings=settings),
                                    settings.trial_resources())
    tuner = tune.Tuner(trainable, param_space={"config_id": "c0", "fold": TEST_FOLD, "params": {}},
                       run_config=tune.RunConfig(name="bench-in-trial", storage_path=storage, verbose=0))
    start = time.perf_counter()
    previous = os.environ.get(QUIET_TUNE_ENV)
    os.environ[QUIET_TUNE_ENV] = "0"  # Tune's legacy output, silent at verbose 0: the table stays readable
    try:
        result = tuner.fit()[0]
    finally:
        if previous is None:
            os.environ.pop(QUIET_TUNE_ENV, None)
        else:
            os.environ[QUIET_TUNE_ENV] = previous
    wall = time.perf_counter() - start
    if result.error is not None:
        raise RuntimeError(f"the in-trial run failed: {result.error}")
    gpu = f" + {gpus:g} GPU" if gpus else ""
    return _from_report(f"in-trial (Tune trial, {cpus} CPU{gpu})", result.checkpoint, wall, config.batch_size,
                        train_rows, 1)


def _from_report(name: str, checkpoint, wall: float, global_batch: int, train_rows: int,
                 workers: int) -> MethodResult:
    from model.checkpoints import load_report

    with checkpoint.as_directory() as directory:
        report = load_report(directory)
    phases = report["phase_seconds_last_attempt"]
    return MethodResult(
        name=name,
        epoch_rates=tuple(h["samples_per_second"] for h in report["history"]),
        epoch_cores=tuple(h.get("train_cpu_cores", 0.0) for h in report["history"]),
        warmup=0,
        wall_seconds=wall,
        samples_per_epoch=train_rows // global_batch * global_batch,
        details={
            "epoch_seconds": [round(h["epoch_seconds"], 2) for h in report["history"]],
            "phases": phases,
            # Inside fit but outside every epoch: dataset set-up before the first, reports and
            # checkpoints, iterator teardown after the last.
            "fit_outside_epochs_s": round(phases.get("fit", 0.0) - sum(h["epoch_seconds"] for h in report["history"]), 2),
            "runtime": report.get("runtime"),
        },
        workers=workers,
        global_batch=global_batch,
    )
