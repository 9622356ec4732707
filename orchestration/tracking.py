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
from mlflow.exceptions import MlflowException
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


def find_or_create_experiment(client: MlflowClient, name: str):
    """The experiment called ``name``, created if missing. Two sweeps started at once both find
    none and both create it: the second create fails with RESOURCE_ALREADY_EXISTS, and then the
    experiment the other sweep created is the one (found again by name)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found
    try:
        return client.get_experiment(client.create_experiment(name))
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    found = client.get_experiment_by_name(name)
    if found is None:  # created and deleted in between: not a race this can settle
        raise TrackingError(f"MLflow experiment {name!r} was created by another client and is gone again; run again")
    return found


class SweepTracker:
    """Finds or creates the sweep's runs and logs into them (driver process only)."""

    def __init__(self, tracking_uri: str, experiment: str, sweep_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.sweep_id = sweep_id
        found = find_or_create_experiment(self.client, experiment)
        self.experiment_id = found.experiment_id
        if found.tags.get(EXPERIMENT_KIND_TAG) is None:
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
        self._finished: set[str] = set()  # fold runs known FINISHED: never written again

    # ---------------------------------------------------------------- finding and creating runs

    def _find(self, tags: Mapping[str, str]) -> Any:
        """This sweep's run with these tags (the oldest, should a duplicate exist), or None."""
        clauses = [f"tags.`{TAG_SWEEP}` = '{self.sweep_id}'"]
        clauses += [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
        runs = self.client.search_runs(
            [self.experiment_id], " and ".join(clauses), max_results=2, order_by=["attributes.start_time ASC"]
        )
        return runs[0] if runs else None

    def _find_or_create(
        self, name: str, parent: str | None, tags: dict[str, str], params: Mapping[str, Any] | None = None
    ) -> tuple[str, Any]:
        """(run id, the run found, or None if created now). Idempotent: a run is found by its
        tags, and only the params it lacks are logged, so a create retried after an attempt
        that died halfway (the tracking server went away) completes that run, never a second."""
        found = self._find(tags)
        if found is None:
            all_tags = {**self.source_tags, TAG_SWEEP: self.sweep_id, **tags, MLFLOW_RUN_NAME: name}
            if parent:
                all_tags[MLFLOW_PARENT_RUN_ID] = parent
            run_id = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name).info.run_id
        else:
            run_id = found.info.run_id
        if params is not None and (found is None or found.info.status != "FINISHED"):
            self._log_params(run_id, params, found.data.params if found is not None else {})
        return run_id, found

    def start_sweep(self, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        run_id, found = self._find_or_create(self.sweep_id, None, {TAG_KIND: "sweep"}, params if params else None)
        self.sweep_run_id = run_id
        if found is not None:
            self.client.update_run(run_id, status="RUNNING")
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        return run_id

    def attach_sweep(self) -> str:
        """Find (or create) the sweep run without reopening it: for writes replayed later."""
        if self.sweep_run_id is None:
            self.sweep_run_id, _ = self._find_or_create(self.sweep_id, None, {TAG_KIND: "sweep"})
        return self.sweep_run_id

    def config_run(self, cfg_id: str, label: str, params: Mapping[str, Any], searched: Iterable[str]) -> str:
        if cfg_id in self._config_runs:
            return self._config_runs[cfg_id]
        # Every configuration logs the same full set of parameter names, so MLflow's compare
        # view and parallel-coordinates plot line them up.
        run_id, found = self._find_or_create(
            f"{cfg_id} {label}", self.attach_sweep(), {TAG_KIND: "config", TAG_CONFIG: cfg_id}, params
        )
        if found is None or "us8k.searched" not in found.data.tags:
            self.client.set_tag(run_id, "us8k.searched", ",".join(sorted(searched)))
        self._config_runs[cfg_id] = run_id
        return run_id

    def refit_run(self, cfg_id: str, params: Mapping[str, Any]) -> str:
        """A child of the sweep run for the best configuration's refit on every fold."""
        run_id, found = self._find_or_create(
            f"refit {cfg_id}", self.sweep_run_id, {TAG_KIND: "refit", TAG_CONFIG: cfg_id}, params
        )
        if found is not None:
            self.client.update_run(run_id, status="RUNNING")
        return run_id

    def finished_refit(self, cfg_id: str) -> tuple[str, str] | None:
        """(run id, audio model URI) of this sweep's finished refit of ``cfg_id``, if any."""
        run = self._find({TAG_KIND: "refit", TAG_CONFIG: cfg_id})
        if run is None:
            return None
        uri = run.data.tags.get("us8k.audio_model_uri")
        return (run.info.run_id, uri) if run.info.status == "FINISHED" and uri else None

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
        run_id, found = self._find_or_create(
            f"{cfg_id} fold {fold}", parent, {TAG_KIND: "fold", TAG_CONFIG: cfg_id, TAG_FOLD: str(fold)},
            {**params, "test_fold": fold},
        )
        if found is None or (not found.inputs.dataset_inputs and found.info.status != "FINISHED"):
            self._log_datasets(run_id, fold)
        return self._adopt(key, run_id, found)

    def fold_run_id(self, cfg_id: str, fold: int) -> str:
        """The fold run a unit written earlier created (found by its tags, not created)."""
        key = (cfg_id, fold)
        if key not in self._fold_runs:
            found = self._find({TAG_KIND: "fold", TAG_CONFIG: cfg_id, TAG_FOLD: str(fold)})
            if found is None:
                raise LookupError(f"sweep {self.sweep_id} has no MLflow run for {cfg_id} fold {fold}")
            self._adopt(key, found.info.run_id, found)
        return self._fold_runs[key]

    def _adopt(self, key: tuple[str, int], run_id: str, found: Any) -> str:
        if found is not None and found.info.status == "FINISHED":
            self._finished.add(run_id)  # complete: nothing is ever written to it again
        elif found is not None:
            # An attempt interrupted before it finished: its epochs so far stay, new ones follow.
            if found.info.status != "RUNNING":
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

    def log_epoch(self, run_id: str, result: Mapping[str, Any], time_ms: int | None = None) -> None:
        """One epoch's metrics at step = epoch; epochs already logged (before a resume) are
        skipped. ``time_ms`` (when the epoch was reported) makes a retried write identical to
        the first, which MLflow stores once."""
        step = int(result.get("epoch", 0))
        if run_id in self._finished or step <= self._logged_steps.get(run_id, 0):
            return
        now = time_ms or _now_ms()
        metrics = [Metric(k, float(result[k]), now, step) for k in EPOCH_METRICS if _finite(result.get(k))]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)
        self._logged_steps[run_id] = step

    def is_finished(self, run_id: str) -> bool:
        if run_id not in self._finished and self.client.get_run(run_id).info.status == "FINISHED":
            self._finished.add(run_id)
        return run_id in self._finished

    def finish_fold(
        self,
        run_id: str,
        final: Mapping[str, Any],
        report: Mapping[str, Any] | None,
        model_dir: Path | None,
        title: str,
        time_ms: int | None = None,
    ) -> None:
        """Test metrics, wall time, hardware, report, figures and the model; then, last, mark
        the fold run FINISHED. ``wall_seconds`` is the trial's time as Tune measured it
        (``time_total_s``: start-up included, summed over retries).

        Idempotent, so a retry after a tracking outage or a crash completes the run: metrics
        carry ``time_ms`` (identical rows are stored once), artifacts overwrite, a model is
        logged unless a complete one is there, and a run already FINISHED is left alone."""
        from orchestration.mlflow_model import log_keras_model
        from orchestration.plots import confusion_matrix_png, learning_curve_png, per_class_table

        if self.is_finished(run_id):
            return
        now = time_ms or _now_ms()
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
            log_keras_model(self.client, self.tracking_uri, self.experiment_id, run_id, model_dir)
        self.client.set_terminated(run_id, "FINISHED")
        self._finished.add(run_id)

    def fail_fold(self, run_id: str, error: str) -> None:
        if self.is_finished(run_id):
            return  # finished (a retried trial that failed later): its results stand
        self.client.set_tag(run_id, "us8k.error", redact(error)[:5000])
        self.client.set_terminated(run_id, "FAILED")

    def is_fold_finished(self, cfg_id: str, fold: int) -> bool:
        run = self._find({TAG_KIND: "fold", TAG_CONFIG: cfg_id, TAG_FOLD: str(fold)})
        return run is not None and run.info.status == "FINISHED"

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

    def update_config(self, cfg_id: str, folds_total: int, time_ms: int | None = None) -> dict[int, float]:
        """Recompute a configuration's CV metrics from its fold runs (so they always agree)."""
        accuracies = self.fold_accuracies(cfg_id)
        run_id = self._config_runs[cfg_id]
        now = time_ms or _now_ms()
        done = len(accuracies)
        metrics = [Metric("folds_completed", done, now, done)]
        metrics += [Metric(f"fold_{f}_accuracy", a, now, 0) for f, a in sorted(accuracies.items())]
        if accuracies:
            values = list(accuracies.values())
            metrics.append(Metric("cv_accuracy_mean", statistics.fmean(values), now, done))
            metrics.append(Metric("cv_accuracy_std", statistics.pstdev(values), now, done))
        run = self.client.get_run(run_id)
        if any(run.data.metrics.get(m.key) != m.value for m in metrics):  # a replay changes nothing
            self.client.log_batch(run_id, metrics=metrics)
        if done == folds_total and run.info.status != "FINISHED":
            self.client.set_terminated(run_id, "FINISHED")
        return accuracies

    def _config_run_id(self, cfg_id: str) -> str | None:
        if cfg_id in self._config_runs:
            return self._config_runs[cfg_id]
        run = self._find({TAG_KIND: "config", TAG_CONFIG: cfg_id})
        return run.info.run_id if run is not None else None

    def log_comparison(self, cfg_id: str, values: Mapping[str, float] | None, words: str, time_ms: int | None = None) -> None:
        """A configuration's paired comparison with the best (``orchestration.compare``):
        ``values`` are its ``vs_best_*`` metrics, ``words`` the verdict."""
        run_id = self._config_run_id(cfg_id)
        if run_id is None:
            return
        self.client.set_tag(run_id, "us8k.vs_best", words[:5000])
        if values:
            now = time_ms or _now_ms()
            self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items() if _finite(v)])

    def mark_raced_out(self, cfg_id: str, dropped: Mapping[str, Any]) -> None:
        """Tags saying why a configuration left the race; its run ends KILLED (folds unrun)."""
        run_id = self._config_run_id(cfg_id)
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
        if self.client.get_run(run_id).info.status != "KILLED":
            self.client.set_terminated(run_id, "KILLED")

    def stop_fold(self, run_id: str, reason: str) -> None:
        """A fold run stopped before its final report (raced out, time budget): KILLED, tagged."""
        if self.is_finished(run_id):
            return
        self.client.set_tag(run_id, "us8k.stopped", redact(reason)[:5000])
        self.client.set_terminated(run_id, "KILLED")

    def finish_sweep(self, status: str, metrics: Mapping[str, float], files: Iterable[Path] = (),
                     time_ms: int | None = None) -> None:
        """The sweep's metrics and result files (under ``results/``), then its status."""
        run_id = self.attach_sweep()
        now = time_ms or _now_ms()
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v)])
        for path in files:
            self.client.log_artifact(run_id, str(path), "results")
        self.client.set_terminated(run_id, status, end_time=time_ms)

    def _log_params(self, run_id: str, params: Mapping[str, Any], logged: Mapping[str, str] | None = None) -> None:
        """The params the run does not have yet (all of them for a new run)."""
        logged = logged or {}
        items = [Param(k, _param_value(v)) for k, v in sorted(flatten(params).items()) if k not in logged]
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


def _now_ms() -> int:
    return int(time.time() * 1000)


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
