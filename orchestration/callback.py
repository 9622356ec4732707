"""Driver-side Tune callback that mirrors trials into the MLflow run tree.

Tune calls it in the driver process for every trial event: trial start creates (or, on resume,
finds) the fold run; every epoch result becomes a step of its metrics; trial completion logs
test metrics, the report, figures and the model from the final checkpoint and refreshes the
configuration's CV mean/std. Each event becomes a unit of the sweep's MLflow spool
(``orchestration.spool``): written to a journal on disk, then applied in order by one writer
thread, so Tune keeps scheduling trials while a model is being logged (seconds per fold) or
while the tracking server is away (the writer waits it out with backoff), and no two threads
write to the tracking store at once. The callback is pickled into Tune's experiment state: it
keeps only plain settings, finds the driver's writer again after a restore (or makes its own),
and then logs any trial Tune finished that MLflow missed (the driver died between the two).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ray.tune import Callback

from model.train_loop import FINAL_KEY
from orchestration.spool import Spool, TrackingWriter, register_writer, registered_writer
from orchestration.tracking import SweepTracker
from orchestration.tracking_ops import apply_unit, fold_args, spool_files
from orchestration.trial import REUSED_KEY
from orchestration.tune_bridge import CHECKPOINT_PATH_KEY

log = logging.getLogger(__name__)


def make_writer(tracker: SweepTracker, spool_dir: str) -> TrackingWriter:
    """The sweep's MLflow writer over its spool (pending units of an earlier driver first)."""
    spool = Spool(spool_dir, {"tracking_uri": tracker.tracking_uri, "experiment": tracker.experiment,
                              "sweep_id": tracker.sweep_id})
    writer = TrackingWriter(spool, tracker.tracking_uri, lambda unit: apply_unit(tracker, unit), spool_files)
    register_writer(writer)
    return writer


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
        spool_dir: str,
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
        self.spool_dir = spool_dir
        self.log_models = log_models
        self._writer: TrackingWriter | None = None
        self._reconciled = False

    def __getstate__(self) -> dict[str, Any]:
        # A writer (its thread, its MLflow client and DB engine) is not picklable.
        return {**self.__dict__, "_writer": None, "_reconciled": False}

    @property
    def writer(self) -> TrackingWriter:
        if self._writer is None:
            # A callback pickled before sweeps had a spool (no spool_dir): the driver's writer.
            self._writer = registered_writer(getattr(self, "spool_dir", None))
        if self._writer is None:  # not started by run_sweep (tests, or a foreign driver)
            tracker = SweepTracker(self.tracking_uri, self.experiment, self.sweep_id)
            tracker.attach_sweep()
            self._writer = make_writer(tracker, self.spool_dir)
        return self._writer

    def attach(self, writer: TrackingWriter) -> None:
        """Use the driver's writer (its tracker already holds the sweep run)."""
        self._writer = writer

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait for every queued write; False if some still wait for the tracking server."""
        return self.writer.drain(timeout_s) if self._writer is not None else True

    def _submit(self, op: str, args: dict[str, Any]) -> None:
        self.writer.submit(op, args, int(time.time() * 1000))

    def _fold(self, config: Mapping[str, Any], full: bool) -> dict[str, Any]:
        if not full:
            return fold_args(config)
        params = config["params"]
        return fold_args(config, self.fold_params(params), self.config_label(params), self.searched)

    # ------------------------------------------------------------------ Tune hooks

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        if not self._reconciled:
            self._reconciled = True
            for trial in trials:  # finished in Tune: its unit is a no-op if MLflow has it
                if trial.status == "TERMINATED" and (trial.last_result or {}).get(FINAL_KEY):
                    self._complete(trial)

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self._submit("fold_start", self._fold(trial.config, full=True))

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if result.get(FINAL_KEY) or result.get(REUSED_KEY):
            return  # the final report repeats the best epoch's numbers: not a new step
        self._submit("epoch", {**self._fold(trial.config, full=False), "result": _plain(result)})

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._complete(trial)

    def _complete(self, trial) -> None:
        result = final_result(trial)
        if result.get(REUSED_KEY):
            return  # MLflow has it (that is why it was reused)
        args = {**self._fold(trial.config, full=True), "result": _plain(result),
                "folds_total": self.folds_total, "log_models": self.log_models,
                "checkpoint": result.get(CHECKPOINT_PATH_KEY), "storage_path": self.storage_path}
        self._submit("finish", args)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        error = getattr(trial, "error_file", None) or "trial failed"
        self._submit("fail", {**self._fold(trial.config, full=True), "folds_total": self.folds_total,
                              "message": f"trial {trial.trial_id} failed; see {error}"})

    def on_experiment_end(self, trials: list, **info) -> None:
        pass  # the driver drains the writer (run_sweep), and waits out an outage there


def final_result(trial) -> dict[str, Any]:
    """The trial's last result, with its final checkpoint's path: a worker-group trial relays
    it in the result (``checkpoint_path``), a trial that trained in its own process reported
    the checkpoint to Tune, which keeps it as ``trial.checkpoint``."""
    result = dict(trial.last_result or {})
    checkpoint = getattr(trial, "checkpoint", None)
    if result.get(FINAL_KEY) and not result.get(CHECKPOINT_PATH_KEY) and checkpoint is not None:
        result[CHECKPOINT_PATH_KEY] = checkpoint.path
    return result


def _plain(result: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-able scalars of a Tune result (numbers, strings, flags; no nested config)."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in result.items()
            if isinstance(v, (int, float, str, bool)) or (hasattr(v, "item") and getattr(v, "ndim", 1) == 0)}
