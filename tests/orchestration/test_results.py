"""The sweep's scheduling figure from a Tune grid's final results (plain functions, no Ray)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestration.results import scheduling

T0 = 1_700_000_000.0


def _trial(**metrics) -> SimpleNamespace:
    return SimpleNamespace(metrics=metrics)


def test_counts_only_trials_trained_in_this_run():
    grid = [
        _trial(final=1, loop_seconds=10.0, timestamp=int(T0) + 5),
        _trial(final=1, loop_seconds=14.0, timestamp=int(T0) + 9),
        _trial(final=1, reused=1, loop_seconds=99.0, timestamp=int(T0) + 1),  # reused from MLflow
        _trial(final=1, loop_seconds=99.0, timestamp=int(T0) - 60),  # finished before a restore
        _trial(epoch=3, loop_seconds=99.0, timestamp=int(T0) + 2),  # failed mid-training: no final
        _trial(),  # errored before reporting anything
    ]
    sched = scheduling(grid, tune_seconds=18.0, max_concurrent=2, since=T0)
    assert (sched.trials, sched.loop_seconds, sched.concurrency) == (2, 24.0, 2)
    assert sched.ratio == pytest.approx(18.0 / (24.0 / 2))
    assert "2 trial(s) spent 24 s" in sched.line() and "1.50x" in sched.line()


def test_concurrency_is_capped_by_the_trials_that_ran():
    sched = scheduling([_trial(final=1, loop_seconds=8.0, timestamp=int(T0))], 10.0, 4, T0)
    assert sched.concurrency == 1 and sched.ratio == pytest.approx(10.0 / 8.0)


def test_no_trained_trial_gives_no_ratio():
    sched = scheduling([_trial(final=1, reused=1, loop_seconds=5.0)], 3.0, 2, T0)
    assert sched.trials == 0 and sched.ratio != sched.ratio  # NaN
    assert "no trial trained" in sched.line()
