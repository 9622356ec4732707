"""After the CV trials: the best configuration trained once more on every fold, registered.

Cross-validation says how good a configuration is; the model a user runs is one more Ray Train
run of it on all ten folds (validation still whole recordings split from them, as in a fold
run; no test fold is left, so its quality is the CV estimate). It is logged as a child of the
sweep run (``us8k.kind=refit``: per-epoch metrics, the Keras model, the audio pyfunc), and
registered in the MLflow Model Registry (``orchestration.registry``).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.us8k import CLASS_NAMES
from model.checkpoints import STATE_FILE, load_model, load_report
from orchestration.plan import Plan
from orchestration.registry import Registration, register
from orchestration.results import ConfigResult
from orchestration.tracking import SweepTracker, hardware_tags
from orchestration.train_fold import RunSettings, WorkerResources, train_fold
from orchestration.trial import trial_train_config

AUDIO_MODEL_TAG = "us8k.audio_model_uri"


@dataclass(frozen=True)
class RefitOutcome:
    run_id: str
    model_uri: str
    registration: Registration | None
    note: str = ""

    def line(self) -> str:
        where = f"refit: MLflow run {self.run_id}, model {self.model_uri}"
        extra = self.registration.message if self.registration else self.note
        return where + (f"; {extra}" if extra else "")


def refit_best(plan: Plan, features_ref: Any, best: ConfigResult, tracker: SweepTracker, data_info: dict[str, str]) -> RefitOutcome:
    """Train ``best`` on all folds (a Ray Train run from the driver), log it, register it."""
    import mlflow

    from orchestration.audio_model import log_audio_model
    from orchestration.tracking_ops import download_checkpoint

    sweep = plan.spec.sweep
    config = trial_train_config(plan.spec.train.to_dict(), best.params)
    done = tracker.finished_refit(best.config_id)
    if done is not None:  # a resumed sweep whose refit had finished: not trained or registered again
        run_id, model_uri = done
        return RefitOutcome(run_id, model_uri, None, "already done before the resume")
    from orchestration.sweep_runner import fold_params

    run_id = tracker.refit_run(best.config_id, fold_params(plan.spec.train.to_dict(), best.params, plan.spec.augment))
    print(f"refit: {best.config_id} on all {len(sweep.folds)} folds ({config.epochs} epochs)", flush=True)
    resources = WorkerResources(sweep.workers_per_trial, sweep.cpus_per_worker, plan.gpus_per_worker)
    run = RunSettings(plan.storage_path, f"{plan.name}-refit/{best.config_id}", max_failures=sweep.train_max_failures)
    result = train_fold(features_ref, None, config, resources, run)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(download_checkpoint(result.checkpoint.path, plan.storage_path, Path(tmp)))
        report = load_report(local)
        state = json.loads((local / STATE_FILE).read_text())
        tracker.log_history(run_id, report["history"], result.metrics)
        tracker.client.log_batch(run_id, tags=hardware_tags(report.get("hardware")))
        mlflow.set_tracking_uri(plan.tracking_uri)
        mlflow.set_experiment(experiment_id=tracker.experiment_id)
        settings = {"feature_config": plan.spec.features.to_dict(), "normaliser": state["normaliser"],
                    "class_names": list(state.get("class_names", CLASS_NAMES))}
        model_uri = log_audio_model(run_id, load_model(local, compile=False), settings)
    registration = None
    if sweep.register_as:
        tags = {
            "us8k.sweep_id": plan.name,
            "us8k.config_id": best.config_id,
            "us8k.cv_accuracy_mean": f"{best.mean:.6f}",
            "us8k.cv_accuracy_std": f"{best.std:.6f}",
            "us8k.cv_folds": str(best.folds_completed),
            "us8k.dataset_fingerprint": data_info.get("us8k.dataset_fingerprint", ""),
            "us8k.feature_cache_keys": data_info.get("us8k.feature_cache_keys", ""),
        }
        registration = register(tracker.client, sweep.register_as, model_uri, run_id, tags)
        tracker.client.set_tag(run_id, "us8k.registered_version", registration.version)
    tracker.client.set_tag(run_id, AUDIO_MODEL_TAG, model_uri)
    tracker.client.set_terminated(run_id, "FINISHED")
    return RefitOutcome(run_id, model_uri, registration)
