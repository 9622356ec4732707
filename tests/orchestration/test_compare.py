"""Paired comparisons on the shared folds, against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from orchestration.compare import compare, shared, ttest_p, wilcoxon_p


def test_only_the_folds_both_completed_are_paired():
    folds, d = shared({1: 0.8, 2: 0.7, 3: 0.9}, {2: 0.6, 3: 0.85, 4: 0.1})
    assert folds == (2, 3) and d.tolist() == pytest.approx([0.1, 0.05])


def test_a_consistent_winner_over_ten_folds_is_distinguishable():
    best = {f: 0.80 + 0.01 * (f % 3) for f in range(1, 11)}
    other = {f: a - 0.05 - 0.002 * f for f, a in best.items()}
    result = compare(best, other)
    assert result.folds == tuple(range(1, 11))
    assert result.mean_difference == pytest.approx(0.05 + 0.011)
    assert result.ci_low > 0 and result.ci_low < result.mean_difference < result.ci_high
    assert result.wilcoxon_p == pytest.approx(2 / 2**10)  # exact: every difference positive
    assert result.distinguishable()


def test_noise_around_zero_is_not_distinguishable():
    rng = np.random.default_rng(0)
    best = {f: 0.7 + rng.normal(0, 0.05) for f in range(1, 11)}
    other = {f: a + rng.normal(0, 0.05) for f, a in best.items()}
    result = compare(best, other)
    assert result.ci_low < 0 < result.ci_high or not result.distinguishable()
    assert not result.distinguishable()


def test_confidence_interval_matches_a_t_interval():
    best, other = {1: 0.9, 2: 0.8, 3: 0.85}, {1: 0.7, 2: 0.75, 3: 0.8}
    d = np.array([0.2, 0.05, 0.05])
    low, high = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    result = compare(best, other)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high))
    assert result.ttest_p == pytest.approx(stats.ttest_rel([0.9, 0.8, 0.85], [0.7, 0.75, 0.8]).pvalue)


def test_ties_and_too_few_folds():
    assert wilcoxon_p(np.zeros(6), "greater") == 1.0 and ttest_p(np.zeros(6), "greater") == 1.0
    assert ttest_p(np.full(5, 0.1), "greater") == 0.0 and ttest_p(np.full(5, -0.1), "greater") == 1.0
    assert compare({1: 0.5}, {1: 0.4, 2: 0.3}) is None


def test_memoised_exact_path_equals_scipy_on_random_samples():
    rng = np.random.default_rng(1)
    for n in range(2, 11):
        for _ in range(20):
            d = rng.normal(0.01, 0.05, n)
            for alternative in ("two-sided", "greater"):
                assert wilcoxon_p(d, alternative) == pytest.approx(stats.wilcoxon(d, alternative=alternative).pvalue)
    tied = np.array([0.1, -0.1, 0.2, 0.0, 0.3])  # a tie and a zero: scipy's own path
    assert wilcoxon_p(tied) == pytest.approx(stats.wilcoxon(tied).pvalue)
