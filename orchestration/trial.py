"""One Ray Tune trial = one (configuration, fold) pair = one Ray Train run.

The trial function runs in a Tune trial actor that only drives training: it builds a
``TensorflowTrainer`` (via ``train_fold``) whose workers hold the CPUs/GPUs, forwards the
workers' per-epoch reports to Tune with ``TuneReportCallback`` and never imports TensorFlow
itself. A pair that MLflow already records as finished (a resumed sweep whose Tune state
lagged behind) reports its stored result instead of training again, so every pair trains once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from model.config import TrainConfig

# The Tune trial only drives Ray Train; its workers hold the CPUs/GPUs. Ray needs a positive
# CPU share for the driver, so it is taken out of the workers' reservation: a trial of N workers
# x C CPUs reserves exactly N x C CPUs, and two 1-CPU trials fit a 2-CPU machine side by side.
TRIAL_DRIVER_CPU = 0.01

# Keys Tune sees on a trial's final result (besides the epoch metrics).
FINAL_KEY = "final"
REUSED_KEY = "reused"


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a sweep shares (passed once through ``tune.with_parameters``)."""

    base_train: dict[str, Any]
    workers_per_trial: int
    cpus_per_worker: float
    gpus_per_worker: float
    storage_path: str
    sweep_name: str
    train_max_failures: int
    finished: dict[str, dict[str, float]] = field(default_factory=dict)  # "cfg/fold" -> final metrics


def worker_cpus(cpus_per_worker: float, workers: int) -> float:
    """CPUs each Train worker reserves: its share minus its part of the trial driver's."""
    return cpus_per_worker - TRIAL_DRIVER_CPU / workers


def pair_key(cfg_id: str, fold: int) -> str:
    return f"{cfg_id}/fold{fold}"


def trial_train_config(base: Mapping[str, Any], params: Mapping[str, Any]) -> TrainConfig:
    return TrainConfig.from_dict({**base, **params})


def run_fold_trial(config: dict[str, Any], *, features: Any, settings: TrialSettings) -> None:
    """Tune function trainable. ``config``: {"config_id", "fold", "params"}."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from orchestration.train_fold import reuse_tune_report_queue, train_fold

    cfg_id, fold = config["config_id"], int(config["fold"])
    done = settings.finished.get(pair_key(cfg_id, fold))
    if done is not None:
        tune.report({**done, FINAL_KEY: 1, REUSED_KEY: 1})
        return
    reuse_tune_report_queue()  # before TuneReportCallback(), which takes the session's queue
    resources = {"CPU": worker_cpus(settings.cpus_per_worker, settings.workers_per_trial)}
    if settings.gpus_per_worker:
        resources["GPU"] = settings.gpus_per_worker
    train_fold(
        features,
        fold,
        trial_train_config(settings.base_train, config["params"]),
        num_workers=settings.workers_per_trial,
        use_gpu=settings.gpus_per_worker > 0,
        resources_per_worker=resources,
        storage_path=settings.storage_path,
        # A stable name: a restarted trial finds its Train run's checkpoints and resumes.
        name=f"{settings.sweep_name}-train/{cfg_id}-fold{fold}",
        max_failures=settings.train_max_failures,
        callbacks=[TuneReportCallback()],
    )
