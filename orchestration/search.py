"""Search over configurations where every configuration is scored by its mean over folds.

A trial is one (configuration, fold) pair. ``FoldExpander`` wraps any Ray Tune searcher (here
``OptunaSearch``): each configuration it suggests becomes one trial per fold, and once all of
them have finished the inner searcher is told a single score, ``cv_accuracy_mean``, the mean
test accuracy over the folds that completed. So Optuna models configurations, not folds.
"""

from __future__ import annotations

import pickle
import statistics
import tempfile
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from orchestration.config import config_id, plain_params

SCORE = "cv_accuracy_mean"


class FoldExpander(Searcher):
    def __init__(self, inner: Searcher, folds: tuple[int, ...], fold_metric: str = "test_accuracy") -> None:
        # No metric at the Tune level: trials report per-fold numbers, never SCORE itself (Tune
        # would reject every result for lacking it); the inner searcher gets SCORE below.
        super().__init__(metric=None, mode=None)
        self.inner = inner
        self.folds = tuple(folds)
        self.fold_metric = fold_metric
        self._queue: list[dict[str, Any]] = []  # fold trials of suggested configs not yet handed out
        self._inner_of: dict[str, tuple[str, int]] = {}  # our trial id -> (inner trial id, fold)
        self._pending: dict[str, set[int]] = {}  # inner trial id -> folds still running
        self._scores: dict[str, list[float]] = {}
        self._count = 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        # Tune passes the trial-level metric; the inner searcher optimises the CV mean.
        return self.inner.set_search_properties(SCORE, "max", config, **spec)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if not self._queue:
            inner_id = f"cfg{self._count:04d}"
            params = self.inner.suggest(inner_id)
            if params is None or params is Searcher.FINISHED:
                return params
            self._count += 1
            params = plain_params(params)
            cfg = config_id(params)
            self._pending[inner_id] = set(self.folds)
            self._scores[inner_id] = []
            self._queue = [
                {"config_id": cfg, "fold": fold, "params": params, "_inner": inner_id} for fold in self.folds
            ]
        trial = self._queue.pop(0)
        self._inner_of[trial_id] = (trial.pop("_inner"), trial["fold"])
        return trial

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._inner_of:
            return
        inner_id, fold = self._inner_of.pop(trial_id)
        if not error and result and self.fold_metric in result:
            self._scores[inner_id].append(float(result[self.fold_metric]))
        self._pending[inner_id].discard(fold)
        if not self._pending[inner_id]:
            scores = self._scores.pop(inner_id)
            del self._pending[inner_id]
            if scores:
                self.inner.on_trial_complete(inner_id, {SCORE: statistics.fmean(scores)})
            else:
                self.inner.on_trial_complete(inner_id, None, error=True)

    def get_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "inner"}

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        # OptunaSearch has no get_state, only save/restore to a file: nest its file's bytes.
        inner_path = Path(checkpoint_path + ".inner")
        self.inner.save(str(inner_path))
        with open(checkpoint_path, "wb") as fh:
            pickle.dump({"self": self.get_state(), "inner": inner_path.read_bytes()}, fh)
        inner_path.unlink()

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            state = pickle.load(fh)
        self.set_state(state["self"])
        with tempfile.TemporaryDirectory() as tmp:
            inner_path = Path(tmp) / "inner.pkl"
            inner_path.write_bytes(state["inner"])
            self.inner.restore(str(inner_path))
