"""Train and evaluate one cross-validation fold with Ray Train (TensorflowTrainer, Train V2).

``train_fold`` builds a stock ``TensorflowTrainer`` around ``model.train_loop`` and fits it.
Start-up matters (a sweep fits one Trainer per (configuration, fold)), and two public settings
cut it: ``TRAIN_ENV`` (Train's controller polls its workers every 0.2 s instead of 2 s: every
report and the end of a run wait for a poll; and starts no preemption watcher: spot
preemption is handled by FailureConfig restarts anyway) and ``TFConfigNoImport`` (the
controller does not import TensorFlow to unpickle its backend config). Measured figures:
README "Benchmarks" (``python -m benchmarks.overhead``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.tensorflow import TensorflowTrainer

from features.featureset import FeatureSet
from features.us8k import CLASS_NAMES
from model.config import TrainConfig
from model.train_loop import make_loop_config, train_loop_per_worker
from orchestration.tf_backend import TFConfigNoImport

# Public Ray Train settings, read by the process that builds the Trainer and forwarded by
# Train to its controller.
TRAIN_ENV = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}


@dataclass(frozen=True)
class WorkerResources:
    """The Train worker group: ``workers`` x (``cpus`` CPUs + ``gpus`` GPUs).

    ``workers=0`` is Ray Train's local mode: the loop runs in the calling process (no worker
    group, no start-up cost, no checkpoint persistence or failure recovery). TensorFlow's
    thread pools are sized to ``cpus``, rounded (1.99 CPUs, a node minus a trial's 0.01,
    still means 2 threads).
    """

    workers: int = 2
    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.workers < 0 or self.cpus <= 0 or self.gpus < 0:
            raise ValueError(f"WorkerResources: need workers >= 0, cpus > 0, gpus >= 0; got {self}")

    def per_worker(self) -> dict[str, float]:
        return {"CPU": self.cpus, **({"GPU": self.gpus} if self.gpus else {})}

    @property
    def intra_op_threads(self) -> int:
        return max(1, round(self.cpus))


@dataclass(frozen=True)
class RunSettings:
    """Where the run keeps its state and how it recovers.

    ``name`` should be stable for a (configuration, fold): a restarted trial then finds the
    run's checkpoints and resumes. ``max_failures``: worker-group restarts from the last
    checkpoint. ``worker_env`` goes into the workers' runtime env (e.g. the test-only failure
    hook ``US8K_FAIL_AT_EPOCH``/``US8K_FAIL_MARKER``); a runtime env costs start-up time,
    so leave it None otherwise.
    """

    storage_path: str | None = None
    name: str | None = None
    max_failures: int = 0
    num_to_keep: int | None = 2
    worker_env: Mapping[str, str] | None = None


def train_fold(
    features: ray.ObjectRef | FeatureSet,
    test_fold: int,
    train_config: TrainConfig,
    resources: WorkerResources = WorkerResources(),
    run: RunSettings = RunSettings(),
    *,
    callbacks: Sequence[Any] = (),
    class_names: tuple[str, ...] = CLASS_NAMES,
) -> ray.train.Result:
    """Fit one fold and return the Result (metrics, final checkpoint with model and report).

    ``features``: pass an ObjectRef from one ``ray.put(featureset)`` shared by every fold and
    trial; a FeatureSet is put here, once per call. ``callbacks`` are Ray Train UserCallbacks
    (e.g. ``orchestration.tune_bridge.ForwardReports``). Raises
    ``ray.train.TrainingFailedError`` when the run fails beyond ``run.max_failures`` retries.
    """
    features_ref = features if isinstance(features, ray.ObjectRef) else ray.put(features)
    for key, value in TRAIN_ENV.items():
        os.environ.setdefault(key, value)
    trainer = TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config=make_loop_config(
            features_ref,
            test_fold,
            train_config,
            use_gpu=resources.gpus > 0,
            intra_op_threads=resources.intra_op_threads,
            class_names=class_names,
        ),
        scaling_config=ScalingConfig(
            num_workers=resources.workers,
            use_gpu=resources.gpus > 0,
            resources_per_worker=resources.per_worker(),
        ),
        run_config=RunConfig(
            name=run.name,
            storage_path=run.storage_path,
            failure_config=FailureConfig(max_failures=run.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=run.num_to_keep),
            callbacks=list(callbacks),
            worker_runtime_env={"env_vars": dict(run.worker_env)} if run.worker_env else None,
        ),
        tensorflow_config=TFConfigNoImport(),
    )
    return trainer.fit()
