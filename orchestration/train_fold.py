"""Train and evaluate one cross-validation fold with Ray Train (TensorflowTrainer, Train V2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.tensorflow import TensorflowTrainer

from features.featureset import FeatureSet
from features.us8k import CLASS_NAMES
from model.config import TrainConfig
from model.train_loop import make_loop_config, train_loop_per_worker


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
    trainer = TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config=make_loop_config(
            features_ref,
            test_fold,
            train_config,
            use_gpu=use_gpu,
            intra_op_threads=max(1, int(cpus)),
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
    )
    return trainer.fit()
