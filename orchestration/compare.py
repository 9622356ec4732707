"""Paired comparisons of configurations over the folds both completed (pure: scipy, no Ray).

Cross-validation folds are shared by every configuration, and UrbanSound8K's folds differ in
difficulty by ~10 points, so configurations are compared fold by fold (paired), never by
their means alone: the Wilcoxon signed-rank test (no normality assumption; with n folds its
smallest two-sided p is 2/2^n, one-sided 1/2^n) and the paired t-test, plus the mean difference
with a t confidence interval. Used for the results table (is the winner really better?) and by
``orchestration.racing`` (one-sided, to drop configurations already beaten).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Alternative = Literal["two-sided", "greater"]


@dataclass(frozen=True)
class PairedComparison:
    """``reference`` minus ``other`` over ``folds`` (both completed them)."""

    folds: tuple[int, ...]
    mean_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    wilcoxon_p: float
    ttest_p: float

    def distinguishable(self, alpha: float = 0.05) -> bool:
        """True when both paired tests reject equality at ``alpha`` (two-sided)."""
        return self.wilcoxon_p < alpha and self.ttest_p < alpha

    def to_dict(self) -> dict[str, object]:
        return {
            "folds": list(self.folds),
            "mean_difference": self.mean_difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "confidence": self.confidence,
            "wilcoxon_p": self.wilcoxon_p,
            "ttest_p": self.ttest_p,
        }


def shared(reference: Mapping[int, float], other: Mapping[int, float]) -> tuple[tuple[int, ...], np.ndarray]:
    """The folds both completed and the differences reference - other on them."""
    folds = tuple(sorted(set(reference) & set(other)))
    return folds, np.asarray([reference[f] - other[f] for f in folds], dtype=float)


def wilcoxon_p(differences: np.ndarray, alternative: Alternative = "two-sided") -> float:
    """Signed-rank p-value; 1.0 when every difference is zero (nothing tells them apart).

    Without zeros or tied magnitudes scipy's p is exact and depends only on (n, W+), the sum of
    the ranks of the positive differences; that case is memoised per (n, W+), which a sweep
    (and the racing simulation) asks for again and again.
    """
    d = np.asarray(differences, dtype=float)
    if len(d) == 0 or not np.any(d):
        return 1.0
    magnitudes = np.abs(d)
    if np.all(d != 0) and len(np.unique(magnitudes)) == len(d):
        ranks = magnitudes.argsort().argsort() + 1
        return _exact_wilcoxon_p(len(d), int(ranks[d > 0].sum()), alternative)
    return float(stats.wilcoxon(d, alternative=alternative).pvalue)


@functools.lru_cache(maxsize=4096)
def _exact_wilcoxon_p(n: int, w_plus: int, alternative: Alternative) -> float:
    """scipy's p for any sample of n distinct non-zero magnitudes with this W+: ranks 1..n,
    positive on a subset of rank sum ``w_plus`` (greedy from the largest rank)."""
    sample, left = -np.arange(1, n + 1, dtype=float), w_plus
    for rank in range(n, 0, -1):
        if rank <= left:
            sample[rank - 1], left = rank, left - rank
    return float(stats.wilcoxon(sample, alternative=alternative).pvalue)


def ttest_p(differences: np.ndarray, alternative: Alternative = "two-sided") -> float:
    """Paired t-test p-value on the differences; with no spread, 0 if they all favour one side
    (in the tested direction), 1 otherwise."""
    if len(differences) < 2:
        return 1.0
    if np.ptp(differences) < 1e-12:  # no spread (up to float rounding): t is undefined
        mean = float(differences.mean())
        if abs(mean) < 1e-12:
            return 1.0
        return 0.0 if (alternative == "two-sided" or mean > 0) else 1.0
    return float(stats.ttest_1samp(differences, 0.0, alternative=alternative).pvalue)


def compare(
    reference: Mapping[int, float], other: Mapping[int, float], confidence: float = 0.95
) -> PairedComparison | None:
    """Two-sided paired comparison over the shared folds; None with fewer than 2 of them."""
    folds, d = shared(reference, other)
    if len(folds) < 2:
        return None
    mean = float(d.mean())
    sem = statistics.stdev(d) / math.sqrt(len(d))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1)) * sem
    return PairedComparison(folds, mean, mean - half, mean + half, confidence, wilcoxon_p(d), ttest_p(d))
