"""Search over configurations where every configuration is scored by its folds, with racing.

A trial is one (configuration, fold) pair. Two Ray Tune searchers make them:

- ``PairSearcher`` (grid and random search with ``--racing``): the given configurations, fold
  by fold across configurations (every configuration on fold 1, then fold 2, ...), skipping
  the folds of configurations the race dropped.
- ``FoldExpander`` wraps a searcher that proposes configurations (``OptunaSearch``): each
  proposal becomes one trial per fold; once its folds are done (or it is raced out) the inner
  searcher hears one score, ``cv_accuracy_mean``, the mean test accuracy over the folds it
  finished, so Optuna models configurations, not folds, and learns from raced-out ones too.

Both record every finished fold in a ``RaceState`` (``orchestration.racing``; racing ``off``
records without dropping), keep it in their saved state so a resumed sweep does not bring a
dropped configuration back, and register it by sweep name for ``RacingScheduler``, which stops
the running trials of a configuration once it is dropped.
"""

from __future__ import annotations

import pickle
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from model.train_loop import FINAL_KEY
from orchestration.config import config_id, plain_params
from orchestration.racing import RaceState, board, register

SCORE = "cv_accuracy_mean"
FOLD_METRIC = "test_accuracy"


def _finished_accuracy(result: dict | None, error: bool) -> float | None:
    if error or not result or not result.get(FINAL_KEY) or FOLD_METRIC not in result:
        return None
    return float(result[FOLD_METRIC])


class _RacingSearcher(Searcher):
    """What both searchers share: the race, its registration, and pickled save/restore."""

    def __init__(self, race: RaceState, sweep: str) -> None:
        # No metric at the Tune level: trials report per-fold numbers (the race reads them).
        super().__init__(metric=None, mode=None)
        self.race = race
        self.sweep = sweep
        register(sweep, race)

    def get_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "inner"}

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        register(self.sweep, self.race)  # the restored race, who is out included

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump({"self": self.get_state()}, fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.set_state(pickle.load(fh)["self"])


class PairSearcher(_RacingSearcher):
    def __init__(self, configurations: Sequence[tuple[str, dict[str, Any]]], folds: Sequence[int],
                 race: RaceState, sweep: str) -> None:
        super().__init__(race, sweep)
        self.params = {cfg: dict(params) for cfg, params in configurations}
        self.order = [(cfg, int(fold)) for fold in folds for cfg, _ in configurations]
        self.next = 0
        self.pairs: dict[str, tuple[str, int]] = {}  # trial id -> (config id, fold)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        while self.next < len(self.order):
            cfg, fold = self.order[self.next]
            self.next += 1
            if not self.race.is_out(cfg):
                self.pairs[trial_id] = (cfg, fold)
                return {"config_id": cfg, "fold": fold, "params": self.params[cfg]}
        return Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pair = self.pairs.pop(trial_id, None)
        accuracy = _finished_accuracy(result, error)
        if pair is not None and accuracy is not None:
            self.race.record(*pair, accuracy)


class FoldExpander(_RacingSearcher):
    def __init__(self, inner: Searcher, folds: tuple[int, ...], race: RaceState | None = None,
                 sweep: str = "") -> None:
        super().__init__(race or RaceState("off"), sweep)
        self.inner = inner
        self.folds = tuple(folds)
        self._queue: list[dict[str, Any]] = []  # fold trials of suggested configs not yet handed out
        self._inner_of: dict[str, tuple[str, int]] = {}  # our trial id -> (inner trial id, fold)
        self._pending: dict[str, set[int]] = {}  # inner trial id -> folds not yet finished
        self._config_of: dict[str, str] = {}  # inner trial id -> config id
        self._count = 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        # Tune passes the trial-level metric; the inner searcher optimises the CV mean.
        return self.inner.set_search_properties(SCORE, "max", config, **spec)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        self._queue = [t for t in self._queue if not self.race.is_out(t["config_id"])]
        if not self._queue:
            inner_id = f"cfg{self._count:04d}"
            params = self.inner.suggest(inner_id)
            if params is None or params is Searcher.FINISHED:
                return params
            self._count += 1
            params = plain_params(params)
            cfg = config_id(params)
            self._pending[inner_id] = set(self.folds)
            self._config_of[inner_id] = cfg
            self._queue = [{"config_id": cfg, "fold": fold, "params": params, "_inner": inner_id} for fold in self.folds]
        trial = self._queue.pop(0)
        self._inner_of[trial_id] = (trial.pop("_inner"), trial["fold"])
        return trial

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._inner_of:
            return
        inner_id, fold = self._inner_of.pop(trial_id)
        cfg = self._config_of[inner_id]
        accuracy = _finished_accuracy(result, error)
        if accuracy is not None:
            self.race.record(cfg, fold, accuracy)
        self._pending[inner_id].discard(fold)
        if self.race.is_out(cfg):  # its other folds will never run
            self._pending[inner_id] &= {f for t_inner, f in self._inner_of.values() if t_inner == inner_id}
        if not self._pending[inner_id]:
            self._tell(inner_id, cfg)

    def _tell(self, inner_id: str, cfg: str) -> None:
        del self._pending[inner_id]
        scores = list(self.race.scores.get(cfg, {}).values())
        if scores:
            self.inner.on_trial_complete(inner_id, {SCORE: statistics.fmean(scores)})
        else:
            self.inner.on_trial_complete(inner_id, None, error=True)

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


class RacingScheduler(FIFOScheduler):
    """FIFO, except that a running trial of a raced-out configuration is stopped at its next
    report (Tune's scheduler API; the trial's Train run is then aborted by
    ``orchestration.tune_bridge``)."""

    def __init__(self, sweep: str) -> None:
        super().__init__()
        self.sweep = sweep

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        race = board(self.sweep)
        if race is not None and race.is_out(trial.config.get("config_id")) and not result.get(FINAL_KEY):
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE
