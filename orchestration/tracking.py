"""MLflow run tree of a sweep: sweep -> configuration -> fold, written by the driver only.

Only the sweep driver talks to MLflow (trials report to Tune, Tune to the driver), so there are
no races between concurrent trials, worker nodes need no access to the tracking server, and
the default ``sqlite:///mlflow.db`` works on a cluster too. Every run carries deterministic
tags (``us8k.sweep_id``, ``us8k.kind``, ``us8k.config_id``, ``us8k.fold``), so a resumed sweep
finds and reuses its runs instead of duplicating them.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from model.train_loop import FINAL_METRIC_KEYS
from orchestration.redact import redact

TAG_SWEEP = "us8k.sweep_id"
TAG_KIND = "us8k.kind"
TAG_CONFIG = "us8k.config_id"
TAG_FOLD = "us8k.fold"
TAG_HARDWARE = "us8k.hardware"
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds", "samples_per_second")
FINAL_METRICS = FINAL_METRIC_KEYS


class TrackingError(RuntimeError):
    """The tracking server or store cannot be used; the message says what to change."""


def resolve_tracking_uri(uri: str | None) -> str:
    """The URI MLflow will use: the given one, else MLflow's own default resolution."""
    import mlflow

    return uri or mlflow.get_tracking_uri()


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any compute, if the tracking store cannot be reached or written."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("http", "https"):
        health = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(health, timeout=timeout_s) as response:
                if response.status != 200:
                    raise TrackingError(f"MLflow server at {uri} answered {response.status} on /health")
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"cannot reach the MLflow tracking server at {uri} ({reason}). Start it "
                "(mlflow server --host 127.0.0.1 --port 5000), fix --tracking-uri, or leave "
                "--tracking-uri out to log to ./mlflow.db"
            ) from None
    elif parsed.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db
        folder = Path(uri.removeprefix("sqlite:///").split("?")[0]).parent
        if not folder.is_dir():
            raise TrackingError(f"tracking URI {uri}: folder {folder} does not exist; create it or change --tracking-uri")
    elif parsed.scheme in ("", "file"):
        folder = Path(parsed.path if parsed.scheme == "file" else uri)
        if folder.exists() and not folder.is_dir():
            raise TrackingError(f"tracking URI {uri}: {folder} exists and is not a directory")


class SweepTracker:
    """Finds or creates the sweep's runs and logs into them (driver process only)."""

    def __init__(self, tracking_uri: str, experiment: str, sweep_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.sweep_id = sweep_id
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        if found is None or found.tags.get(EXPERIMENT_KIND_TAG) is None:
            # Without it MLflow 3's UI opens the experiment on its GenAI overview, not the runs.
            self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        self.experiment = experiment
        self.feature_keys: dict[int, str] = {}  # fold -> feature-cache key (set by the sweep)
        self.augment_keys: dict[int, str] = {}  # fold -> augmented-rows cache key (augmentation on)
        self.sweep_run_id: str | None = None
        # Tags every run gets when it is created: the UI's Source column (set by the sweep).
        self.source_tags: dict[str, str] = {}
        self._config_runs: dict[str, str] = {}
        self._fold_runs: dict[tuple[str, int], str] = {}
        self._logged_steps: dict[str, int] = {}

    # ---------------------------------------------------------------- finding and creating runs

    def _find(self, tags: Mapping[str, str]) -> str | None:
        clauses = [f"tags.`{TAG_SWEEP}` = '{self.sweep_id}'"]
        clauses += [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
        runs = self.client.search_runs(
            [self.experiment_id], " and ".join(clauses), max_results=2, order_by=["attributes.start_time ASC"]
        )
        return runs[0].info.run_id if runs else None

    def _find_or_create(self, name: str, parent: str | None, tags: dict[str, str]) -> tuple[str, bool]:
        existing = self._find(tags)
        if existing:
            return existing, False
        all_tags = {**self.source_tags, TAG_SWEEP: self.sweep_id, **tags, MLFLOW_RUN_NAME: name}
        if parent:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
        return run.info.run_id, True

    def start_sweep(self, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        run_id, created = self._find_or_create(self.sweep_id, None, {TAG_KIND: "sweep"})
        self.sweep_run_id = run_id
        if created:
            self._log_params(run_id, params)
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        return run_id

    def config_run(self, cfg_id: str, label: str, params: Mapping[str, Any], searched: Iterable[str]) -> str:
        if cfg_id in self._config_runs:
            return self._config_runs[cfg_id]
        run_id, created = self._find_or_create(
            f"{cfg_id} {label}", self.sweep_run_id, {TAG_KIND: "config", TAG_CONFIG: cfg_id}
        )
        if created:
            # Every configuration logs the same full set of parameter names, so MLflow's compare
            # view and parallel-coordinates plot line them up.
            self._log_params(run_id, params)
            self.client.set_tag(run_id, "us8k.searched", ",".join(sorted(searched)))
        self._config_runs[cfg_id] = run_id
        return run_id

    def refit_run(self, cfg_id: str, params: Mapping[str, Any]) -> str:
        """A child of the sweep run for the best configuration's refit on every fold."""
        run_id, created = self._find_or_create(f"refit {cfg_id}", self.sweep_run_id, {TAG_KIND: "refit", TAG_CONFIG: cfg_id})
        if created:
            self._log_params(run_id, params)
        else:
            self.client.update_run(run_id, status="RUNNING")
        return run_id

    def finished_refit(self, cfg_id: str) -> tuple[str, str] | None:
        """(run id, audio model URI) of this sweep's finished refit of ``cfg_id``, if any."""
        run_id = self._find({TAG_KIND: "refit", TAG_CONFIG: cfg_id})
        if run_id is None:
            return None
        run = self.client.get_run(run_id)
        uri = run.data.tags.get("us8k.audio_model_uri")
        return (run_id, uri) if run.info.status == "FINISHED" and uri else None

    def log_history(self, run_id: str, history: list[Mapping[str, Any]], final: Mapping[str, Any]) -> None:
        """Per-epoch metrics as steps, then the final ones, in batches."""
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(h[k]), now, int(h["epoch"])) for h in history for k in EPOCH_METRICS if _finite(h.get(k))]
        metrics += [Metric(k, float(final[k]), now, 0) for k in FINAL_METRICS if _finite(final.get(k))]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def fold_run(self, cfg_id: str, fold: int, params: Mapping[str, Any]) -> str:
        key = (cfg_id, fold)
        if key in self._fold_runs:
            return self._fold_runs[key]
        parent = self._config_runs[cfg_id]
        run_id, created = self._find_or_create(
            f"{cfg_id} fold {fold}", parent, {TAG_KIND: "fold", TAG_CONFIG: cfg_id, TAG_FOLD: str(fold)}
        )
        if created:
            self._log_params(run_id, {**params, "test_fold": fold})
            self._log_datasets(run_id, fold)
        elif self.client.get_run(run_id).info.status != "FINISHED":
            # An attempt interrupted before it finished: its epochs so far stay, new ones follow.
            self.client.update_run(run_id, status="RUNNING")
            self._logged_steps[run_id] = self._last_step(run_id)
        self._fold_runs[key] = run_id
        return run_id

    def _log_datasets(self, run_id: str, test_fold: int) -> None:
        """The features the fold run trained, validated and was tested on, as MLflow dataset
        inputs whose digest is the feature-cache key (the UI's Dataset column)."""
        if not self.feature_keys:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag

        train = sorted(f for f in self.feature_keys if f != test_fold)
        train_digest = hashlib.sha256(",".join(self.feature_keys[f] for f in train).encode()).hexdigest()[:16]
        val_digest, train_name = train_digest, f"us8k-features folds {','.join(map(str, train))}"
        if self.augment_keys:  # the training rows include augmented variants: their keys count too
            keys = [self.feature_keys[f] for f in train] + [self.augment_keys.get(f, "") for f in train]
            train_digest = hashlib.sha256(",".join(keys).encode()).hexdigest()[:16]
            train_name += " + augmented"
        parts = [(train_name, train_digest, "training"),
                 (f"us8k-features folds {','.join(map(str, train))} (validation recordings)", val_digest, "validation"),
                 (f"us8k-features fold {test_fold}", self.feature_keys.get(test_fold, ""), "test")]
        inputs = [DatasetInput(Dataset(name, digest, "us8k-feature-cache", json.dumps({"name": name})),
                               [InputTag("mlflow.data.context", context)]) for name, digest, context in parts]
        self.client.log_inputs(run_id, datasets=inputs)

    def _last_step(self, run_id: str) -> int:
        history = self.client.get_metric_history(run_id, "loss")
        return max((m.step for m in history), default=0)

    # ---------------------------------------------------------------- logging

    def log_epoch(self, run_id: str, result: Mapping[str, Any]) -> None:
        """One epoch's metrics at step = epoch; epochs already logged (before a resume) are skipped."""
        step = int(result.get("epoch", 0))
        if step <= self._logged_steps.get(run_id, 0):
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(result[k]), now, step) for k in EPOCH_METRICS if _finite(result.get(k))]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)
        self._logged_steps[run_id] = step

    def finish_fold(
        self,
        run_id: str,
        final: Mapping[str, Any],
        report: Mapping[str, Any] | None,
        model_dir: Path | None,
        title: str,
    ) -> None:
        """Test metrics, wall time, hardware, report, figures and the model; then mark the
        fold run FINISHED. ``wall_seconds`` is the trial's time as Tune measured it
        (``time_total_s``: start-up included, summed over retries)."""
        from orchestration.plots import confusion_matrix_png, learning_curve_png, per_class_table

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(final[k]), now, 0) for k in FINAL_METRICS if _finite(final.get(k))]
        if _finite(final.get("time_total_s")):
            metrics.append(Metric("wall_seconds", float(final["time_total_s"]), now, 0))
        self.client.log_batch(run_id, metrics=metrics, tags=hardware_tags((report or {}).get("hardware")))
        if report is not None:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                (folder / "test_report.json").write_text(json.dumps(report["test"], indent=1))
                (folder / "per_class_report.txt").write_text(per_class_table(report["test"]))
                (folder / "history.json").write_text(json.dumps(report.get("history", []), indent=1))
                confusion_matrix_png(report["test"], folder / "confusion_matrix.png", title)
                if report.get("history"):
                    learning_curve_png(report["history"], folder / "learning_curve.png", title)
                self.client.log_artifacts(run_id, tmp)
        if model_dir is not None:
            self._log_model(run_id, model_dir)
        self.client.set_terminated(run_id, "FINISHED")

    def _log_model(self, run_id: str, checkpoint_dir: Path) -> None:
        import mlflow
        import tensorflow

        from model.checkpoints import load_model

        model = load_model(checkpoint_dir, compile=False)  # for inference: no optimizer state
        if not isinstance(model, tensorflow.keras.Model):
            # TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set (sweep_runner sets
            # it): MLflow would log a bare SavedModel instead of the Keras model.
            raise RuntimeError(
                "tensorflow.keras is not tf_keras in this process: set TF_USE_LEGACY_KERAS=1 "
                "before TensorFlow is imported"
            )
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(experiment_id=self.experiment_id)  # where the LoggedModel lives
        # run_id, not `with mlflow.start_run(run_id)`: leaving that block would mark the run
        # FINISHED before finish_fold does, and write its end time twice.
        mlflow.tensorflow.log_model(
            model,
            name="model",
            run_id=run_id,
            # Explicit requirements: inferring them starts a subprocess that imports
            # TensorFlow again, ~10 CPU-seconds per fold on the driver.
            pip_requirements=_model_requirements(),
            signature=_model_signature(model),
            # tf_keras enables its native .keras format per thread, only in the thread that
            # imported it; on the callback's writer thread a "model.keras" would be HDF5.
            keras_model_kwargs={"save_format": "keras_v3"},
        )

    def fail_fold(self, run_id: str, error: str) -> None:
        self.client.set_tag(run_id, "us8k.error", redact(error)[:5000])
        self.client.set_terminated(run_id, "FAILED")

    def is_fold_finished(self, cfg_id: str, fold: int) -> bool:
        run_id = self._find({TAG_KIND: "fold", TAG_CONFIG: cfg_id, TAG_FOLD: str(fold)})
        return run_id is not None and self.client.get_run(run_id).info.status == "FINISHED"

    def fold_accuracies(self, cfg_id: str) -> dict[int, float]:
        """test_accuracy of each finished fold run of a configuration, read back from MLflow."""
        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{TAG_SWEEP}` = '{self.sweep_id}' and tags.`{TAG_KIND}` = 'fold' "
            f"and tags.`{TAG_CONFIG}` = '{cfg_id}' and attributes.status = 'FINISHED'",
            max_results=1000,
        )
        return {
            int(r.data.tags[TAG_FOLD]): r.data.metrics["test_accuracy"]
            for r in runs
            if "test_accuracy" in r.data.metrics
        }

    def update_config(self, cfg_id: str, folds_total: int) -> dict[int, float]:
        """Recompute a configuration's CV metrics from its fold runs (so they always agree)."""
        accuracies = self.fold_accuracies(cfg_id)
        run_id = self._config_runs[cfg_id]
        now = int(time.time() * 1000)
        done = len(accuracies)
        metrics = [Metric("folds_completed", done, now, done)]
        metrics += [Metric(f"fold_{f}_accuracy", a, now, 0) for f, a in sorted(accuracies.items())]
        if accuracies:
            values = list(accuracies.values())
            metrics.append(Metric("cv_accuracy_mean", statistics.fmean(values), now, done))
            metrics.append(Metric("cv_accuracy_std", statistics.pstdev(values), now, done))
        self.client.log_batch(run_id, metrics=metrics)
        if done == folds_total:
            self.client.set_terminated(run_id, "FINISHED")
        return accuracies

    def log_comparison(self, cfg_id: str, comparison: Any, words: str) -> None:
        """A configuration's paired comparison with the best (``orchestration.compare``)."""
        run_id = self._config_runs.get(cfg_id) or self._find({TAG_KIND: "config", TAG_CONFIG: cfg_id})
        if run_id is None:
            return
        self.client.set_tag(run_id, "us8k.vs_best", words[:5000])
        if comparison is not None:
            now = int(time.time() * 1000)
            values = {"vs_best_mean_difference": comparison.mean_difference, "vs_best_ci_low": comparison.ci_low,
                      "vs_best_ci_high": comparison.ci_high, "vs_best_wilcoxon_p": comparison.wilcoxon_p,
                      "vs_best_ttest_p": comparison.ttest_p}
            self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items() if _finite(v)])

    def mark_raced_out(self, cfg_id: str, dropped: Mapping[str, Any]) -> None:
        """Tags saying why a configuration left the race; its run ends KILLED (folds unrun)."""
        run_id = self._config_runs.get(cfg_id) or self._find({TAG_KIND: "config", TAG_CONFIG: cfg_id})
        if run_id is None:
            return
        tags = {
            "us8k.raced_out": "true",
            "us8k.raced_out_after_folds": str(dropped["after_folds"]),
            "us8k.raced_out_p_value": f"{dropped['p_value']:.6g}",
            "us8k.raced_out_leader": str(dropped["leader"]),
            "us8k.raced_out_folds": ",".join(map(str, dropped["folds"])),
        }
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(run_id, "KILLED")

    def stop_fold(self, run_id: str, reason: str) -> None:
        """A fold run stopped before its final report (raced out, time budget): KILLED, tagged."""
        self.client.set_tag(run_id, "us8k.stopped", redact(reason)[:5000])
        self.client.set_terminated(run_id, "KILLED")

    def finish_sweep(self, status: str, metrics: Mapping[str, float], artifacts_dir: Path | None) -> None:
        assert self.sweep_run_id is not None
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.sweep_run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v)]
        )
        if artifacts_dir is not None:
            self.client.log_artifacts(self.sweep_run_id, str(artifacts_dir), "results")
        self.client.set_terminated(self.sweep_run_id, status)

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(k, _param_value(v)) for k, v in sorted(flatten(params).items())]
        for start in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(run_id, params=items[start : start + 100])


def ui_runs_url(base: str, experiment_id: str) -> str:
    """The experiment's runs in the MLflow UI at ``base``. MLflow 3.17's UI has a browser-wide
    GenAI / Model training switch (GenAI unless the browser chose otherwise) that decides
    where an experiment opens, whatever its ``mlflow.experimentKind`` tag says: GenAI opens
    the traces overview. ``workflowType=machine_learning`` opens the runs (and flips the switch)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def hardware_tags(hardware: Mapping[str, Any] | None) -> list[RunTag]:
    """``us8k.hardware`` (the label the report groups by) and ``us8k.hw.<field>``."""
    if not hardware:
        return []
    from model.hardware import HARDWARE_KEYS, hardware_label

    tags = [RunTag(f"us8k.hw.{k}", str(hardware[k])) for k in HARDWARE_KEYS if k in hardware]
    return [RunTag(TAG_HARDWARE, hardware_label(hardware)), *tags]


def _model_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("tensorflow", "tf-keras", "numpy")]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} -> {"train.lr": 1}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    return text[:6000]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _model_signature(model: Any) -> Any:
    """float32 (batch, mel bands, frames, 1) in, class probabilities out: serving checks inputs."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def spec(shape: tuple) -> Schema:
        return Schema([TensorSpec(np.dtype(np.float32), (-1, *shape[1:]))])

    return ModelSignature(inputs=spec(model.input_shape), outputs=spec(model.output_shape))
