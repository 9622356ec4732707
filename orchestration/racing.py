"""Fold racing: drop a configuration once its finished folds show it worse than the leader.

Pure (scipy through ``orchestration.compare``, no Ray): the sweep's searcher asks ``RaceState``
after every finished fold trial, and never proposes the remaining folds of a configuration it
dropped. Rules:

- the leader is the alive configuration with the best mean over its finished folds, among
  those with at least ``min_folds`` of them; it is never dropped;
- every other alive configuration with at least ``min_folds`` finished folds is compared with
  the leader on the folds both finished, by a one-sided paired test (H1: the leader is better):
  Wilcoxon signed-rank (``scipy.stats.wilcoxon``; its smallest p after n folds is 1/2^n, so at
  alpha 0.05 it can first fire after 5 shared folds) or the paired t-test;
- p < ``alpha`` drops it; a tie (every difference zero) gives p = 1 and keeps it.

``alpha`` bounds the chance of a wrong drop per test, not per sweep: a configuration is tested
after each of its folds, up to 10 - min_folds + 1 times, and against a leader that may change,
so the chance of dropping the eventual winner is larger than alpha. The simulation benchmark
(``python -m benchmarks.racing``) measures it.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from orchestration.compare import shared, ttest_p, wilcoxon_p

Method = Literal["off", "wilcoxon", "ttest"]
METHODS: tuple[str, ...] = ("off", "wilcoxon", "ttest")


@dataclass(frozen=True)
class Dropped:
    """Why a configuration left the race."""

    config_id: str
    after_folds: int  # finished folds when it was dropped
    folds: tuple[int, ...]  # the shared folds the test ran on
    p_value: float
    leader: str
    mean: float  # its partial mean over its finished folds


@dataclass
class RaceState:
    """Fold accuracies seen so far and who is out (picklable: the searcher's saved state)."""

    method: Method = "wilcoxon"
    alpha: float = 0.05
    min_folds: int = 4
    scores: dict[str, dict[int, float]] = field(default_factory=dict)
    dropped: dict[str, Dropped] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"racing method must be one of {METHODS}, got {self.method!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"racing alpha must be in (0, 1), got {self.alpha!r}")
        if self.min_folds < 2:
            raise ValueError(f"racing min_folds must be >= 2, got {self.min_folds!r}")

    def is_out(self, config_id: str) -> bool:
        return config_id in self.dropped

    def leader(self) -> str | None:
        ready = [c for c, s in self.scores.items() if c not in self.dropped and len(s) >= self.min_folds]
        return max(ready, key=lambda c: (statistics.fmean(self.scores[c].values()), c), default=None)

    def record(self, config_id: str, fold: int, accuracy: float) -> list[Dropped]:
        """Add one finished fold; returns the configurations this drops (possibly none).

        Only comparisons whose inputs changed are re-run: the recorded configuration against
        the leader, or every configuration when the leader changed or got a new fold.
        """
        before = self.leader()
        self.scores.setdefault(config_id, {})[int(fold)] = float(accuracy)
        leader = self.leader()
        if self.method == "off" or leader is None:
            return []
        if leader != before or config_id == leader:
            candidates = [c for c in self.scores if c != leader and c not in self.dropped]
        else:
            candidates = [config_id] if config_id not in self.dropped else []
        out = []
        for candidate in candidates:
            drop = self._test(candidate, leader)
            if drop is not None:
                self.dropped[candidate] = drop
                out.append(drop)
        return out

    def _test(self, candidate: str, leader: str) -> Dropped | None:
        scores = self.scores[candidate]
        if len(scores) < self.min_folds:
            return None
        folds, differences = shared(self.scores[leader], scores)
        if len(folds) < self.min_folds:
            return None
        test = wilcoxon_p if self.method == "wilcoxon" else ttest_p
        p = test(differences, alternative="greater")
        if p >= self.alpha:
            return None
        return Dropped(candidate, len(scores), folds, p, leader, statistics.fmean(scores.values()))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scores"] = {c: {str(f): a for f, a in s.items()} for c, s in self.scores.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RaceState:
        state = cls(data["method"], data["alpha"], data["min_folds"])
        state.scores = {c: {int(f): float(a) for f, a in s.items()} for c, s in data["scores"].items()}
        state.dropped = {c: Dropped(**{**d, "folds": tuple(d["folds"])}) for c, d in data["dropped"].items()}
        return state


# The race of each sweep running in this (driver) process, by sweep name: the searcher that
# owns it registers it (again after a restore); the scheduler that stops raced-out trials and
# the results stage read it.
_BOARD: dict[str, RaceState] = {}


def register(sweep: str, state: RaceState) -> None:
    _BOARD[sweep] = state


def board(sweep: str) -> RaceState | None:
    return _BOARD.get(sweep)
