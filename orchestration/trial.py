"""One Ray Tune trial = one (configuration, fold) pair = one training run, in one of two shapes.

- Worker group (the default on a cluster): the trial function runs in a Tune trial actor that
  only drives training: it builds a ``TensorflowTrainer`` (via ``train_fold``) whose workers
  hold the CPUs/GPUs, relays the workers' per-epoch reports to Tune
  (``orchestration.tune_bridge``) and never imports TensorFlow itself. Any number of workers;
  a crashed worker group restarts from its last checkpoint.
- In the trial (``in_trial``; the default for 1-worker CPU trials on a one-node Ray the sweep
  started): the trial function runs the same loop itself (``model.train_loop`` with the Tune
  session), holding the worker's CPUs. No Train controller, worker process or report queue per
  trial, and the trial process (reused by the next trial) imports TensorFlow once: seconds per
  trial on a small machine. A crashed trial is retried by Tune from its last checkpoint.
 A pair that MLflow already records as finished (a resumed sweep whose Tune state
lagged behind) reports its stored result instead of training again, so every pair trains once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from model.config import TrainConfig
from model.train_loop import FINAL_KEY

# The Tune trial only drives Ray Train; its workers hold the CPUs/GPUs. Ray needs a positive
# CPU share for the driver, so it is taken out of the workers' reservation: a trial of N workers
# x C CPUs reserves exactly N x C CPUs, and two 1-CPU trials fit a 2-CPU machine side by side.
TRIAL_DRIVER_CPU = 0.01

# Set on the final result of a pair reused from MLflow (not trained in this run).
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
    in_trial: bool = False  # train in the trial process (one worker) instead of a worker group

    def trial_resources(self) -> dict[str, float]:
        """What the Tune trial actor reserves: a driver's share, or the whole worker in_trial."""
        if not self.in_trial:
            return {"CPU": TRIAL_DRIVER_CPU}
        return {"CPU": self.cpus_per_worker, **({"GPU": self.gpus_per_worker} if self.gpus_per_worker else {})}


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

    from orchestration.train_fold import RunSettings, WorkerResources, train_fold
    from orchestration.tune_bridge import fit_with_tune_reports

    cfg_id, fold = config["config_id"], int(config["fold"])
    done = settings.finished.get(pair_key(cfg_id, fold))
    if done is not None:
        tune.report({**done, FINAL_KEY: 1, REUSED_KEY: 1})
        return
    train_config = trial_train_config(settings.base_train, config["params"])
    if settings.in_trial:
        _train_in_trial(features, fold, train_config, settings)
        return
    resources = WorkerResources(
        workers=settings.workers_per_trial,
        cpus=worker_cpus(settings.cpus_per_worker, settings.workers_per_trial),
        gpus=settings.gpus_per_worker,
    )
    # A stable name: a restarted trial finds its Train run's checkpoints and resumes.
    name = f"{settings.sweep_name}-train/{cfg_id}-fold{fold}"
    run = RunSettings(settings.storage_path, name, max_failures=settings.train_max_failures)
    fit_with_tune_reports(
        lambda callbacks: train_fold(features, fold, train_config, resources, run, callbacks=callbacks),
        name,
    )


def _train_in_trial(features: Any, fold: int, train_config: TrainConfig, settings: TrialSettings) -> None:
    """The loop in this process, reporting to Tune (checkpoints persisted by Tune)."""
    from model.train_loop import make_loop_config, train_loop_per_worker

    loop_config = make_loop_config(
        features, fold, train_config,
        use_gpu=settings.gpus_per_worker > 0,
        intra_op_threads=max(1, round(settings.cpus_per_worker)),
        session="tune",
    )
    train_loop_per_worker(loop_config)
