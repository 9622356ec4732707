"""Driver-side Tune callback that mirrors trials into the MLflow run tree.

Tune calls it in the driver process for every trial event: trial start creates (or, on resume,
finds) the fold run; every epoch result becomes a step of its metrics; trial completion logs
test metrics, the report, figures and the model from the final checkpoint and refreshes the
configuration's CV mean/std. The writes run in order on one background thread, so Tune keeps
scheduling trials while a model is being logged (seconds per fold) and no two threads write to
the tracking store at once. The callback is pickled into Tune's experiment state: it keeps only
plain settings, rebuilds its client after a restore, and then logs any trial Tune finished
that MLflow missed (the driver died between the two).
"""

from __future__ import annotations

import logging
import tempfile
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ray.tune import Callback

from model.train_loop import FINAL_KEY
from orchestration.redact import redact
from orchestration.tracking import SweepTracker
from orchestration.trial import REUSED_KEY
from orchestration.tune_bridge import CHECKPOINT_PATH_KEY

log = logging.getLogger(__name__)


class MLflowSweepCallback(Callback):
    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        sweep_id: str,
        folds_total: int,
        fold_params: Callable[[Mapping[str, Any]], dict[str, Any]],
        config_label: Callable[[Mapping[str, Any]], str],
        searched: tuple[str, ...],
        storage_path: str,
        log_models: bool = True,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.sweep_id = sweep_id
        self.folds_total = folds_total
        self.fold_params = fold_params
        self.config_label = config_label
        self.searched = searched
        self.storage_path = storage_path
        self.log_models = log_models
        self._tracker: SweepTracker | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._reconciled = False

    def __getstate__(self) -> dict[str, Any]:
        # An MLflow client (and its DB engine) and a thread pool are not picklable.
        return {**self.__dict__, "_tracker": None, "_writer": None, "_reconciled": False}

    @property
    def tracker(self) -> SweepTracker:
        if self._tracker is None:
            self._tracker = SweepTracker(self.tracking_uri, self.experiment, self.sweep_id)
            self._tracker.start_sweep({}, {})
        return self._tracker

    def attach(self, tracker: SweepTracker) -> None:
        """Use the driver's tracker (already holding the sweep run) instead of building one."""
        self._tracker = tracker

    def flush(self) -> None:
        """Wait for every queued write (called when the experiment ends)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def _submit(self, what: str, fn: Callable[..., None], *args: Any) -> None:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-writer")
        self._writer.submit(self._guarded, what, fn, *args)

    @staticmethod
    def _guarded(what: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a tracking problem must not stop the sweep
            log.exception("MLflow logging failed: %s", what)

    # ------------------------------------------------------------------ Tune hooks

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        if not self._reconciled:
            self._reconciled = True
            finished = [(dict(t.config), final_result(t)) for t in trials
                        if t.status == "TERMINATED" and (t.last_result or {}).get(FINAL_KEY)]
            if finished:
                self._submit("reconcile", self._reconcile, finished)

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self._submit("fold run", self._fold_run, dict(trial.config))

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if result.get(FINAL_KEY) or result.get(REUSED_KEY):
            return  # the final report repeats the best epoch's numbers: not a new step
        self._submit("epoch", self._log_epoch, dict(trial.config), dict(result))

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        result = final_result(trial)
        if not result.get(REUSED_KEY):
            self._submit("fold result", self._finish, dict(trial.config), result)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        error = getattr(trial, "error_file", None) or "trial failed"
        self._submit("fold error", self._fail, dict(trial.config), f"trial {trial.trial_id} failed; see {error}")

    def on_experiment_end(self, trials: list, **info) -> None:
        self.flush()

    # ------------------------------------------------------------------ writes (writer thread)

    def _fold_run(self, config: Mapping[str, Any]) -> str:
        cfg_id, fold = config["config_id"], int(config["fold"])
        params = self.fold_params(config["params"])
        self.tracker.config_run(cfg_id, self.config_label(config["params"]), params, self.searched)
        return self.tracker.fold_run(cfg_id, fold, params)

    def _log_epoch(self, config: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        self.tracker.log_epoch(self._fold_run(config), result)

    def _finish(self, config: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        run_id = self._fold_run(config)
        if not result.get(FINAL_KEY):  # stopped by Tune before the run's final report
            self.tracker.stop_fold(run_id, "stopped before its final report (raced out, or the time budget ran out)")
            self.tracker.update_config(config["config_id"], self.folds_total)
            return
        try:
            self._log_final(run_id, config, result)
        except Exception:
            log.exception("MLflow logging of %s fold %s failed", config["config_id"], config["fold"])
            self.tracker.client.set_tag(run_id, "us8k.logging_error", redact(traceback.format_exc())[-4000:])
            self.tracker.client.set_terminated(run_id, "FINISHED")
        self.tracker.update_config(config["config_id"], self.folds_total)

    def _fail(self, config: Mapping[str, Any], message: str) -> None:
        self.tracker.fail_fold(self._fold_run(config), message)
        self.tracker.update_config(config["config_id"], self.folds_total)

    def _reconcile(self, finished: list[tuple[dict, dict]]) -> None:
        for config, result in finished:
            if not self.tracker.is_fold_finished(config["config_id"], int(config["fold"])):
                self._finish(config, result)

    def _log_final(self, run_id: str, config: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        title = f"{config['config_id']} fold {config['fold']}"
        checkpoint_path = result.get(CHECKPOINT_PATH_KEY)
        if not checkpoint_path:
            self.tracker.finish_fold(run_id, result, None, None, title)
            return
        from model.checkpoints import load_report

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(_download_checkpoint(checkpoint_path, self.storage_path, Path(tmp)))
            self.tracker.finish_fold(
                run_id, result, load_report(local), local if self.log_models else None, title
            )


def final_result(trial) -> dict[str, Any]:
    """The trial's last result, with its final checkpoint's path: a worker-group trial relays
    it in the result (``checkpoint_path``), a trial that trained in its own process reported
    the checkpoint to Tune, which keeps it as ``trial.checkpoint``."""
    result = dict(trial.last_result or {})
    checkpoint = getattr(trial, "checkpoint", None)
    if result.get(FINAL_KEY) and not result.get(CHECKPOINT_PATH_KEY) and checkpoint is not None:
        result[CHECKPOINT_PATH_KEY] = checkpoint.path
    return result


def _download_checkpoint(path: str, storage_path: str, into: Path) -> str:
    """Copy a checkpoint from the run's storage (local disk, S3, GCS...) to a local folder."""
    import pyarrow.fs
    from ray.train import Checkpoint

    local = Path(path)
    if local.is_dir():
        return str(local)
    filesystem, _ = pyarrow.fs.FileSystem.from_uri(storage_path)
    return Checkpoint(path, filesystem=filesystem).to_directory(str(into / "checkpoint"))
