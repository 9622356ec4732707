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


# ---------------------------------------------------------------------------------------------
# Is the winner really better? Paired comparisons in the table, results.csv and results.json.

def _results():
    from orchestration.results import ConfigResult

    best = {f: 0.80 + 0.01 * (f % 3) for f in range(1, 11)}
    return [
        ConfigResult("cbest", {"learning_rate": 1e-3}, best, ()),
        ConfigResult("cclose", {"learning_rate": 5e-4}, {f: a + (0.01 if f % 2 else -0.012) for f, a in best.items()}, ()),
        ConfigResult("cworse", {"learning_rate": 1e-4}, {f: a - 0.2 for f, a in best.items()}, ()),
        ConfigResult("cshort", {"learning_rate": 1e-5}, {1: 0.1}, (2,)),
    ]


def test_every_configuration_is_compared_with_the_best_in_words():
    from orchestration.results import comparisons, verdict

    vs_best = comparisons(_results())
    assert set(vs_best) == {"cclose", "cworse", "cshort"}
    assert verdict(vs_best["cclose"]).startswith("not distinguishable from the best at p<0.05")
    assert verdict(vs_best["cworse"]).startswith("worse than the best (difference +0.200")
    assert "Wilcoxon p=0.00195" in verdict(vs_best["cworse"])  # 2/2**10: all ten folds agree
    assert vs_best["cshort"] is None and "not compared" in verdict(None)


def test_a_verdict_on_too_few_folds_for_wilcoxon_says_so():
    from orchestration.compare import compare
    from orchestration.results import verdict

    best = {f: 0.8 for f in range(1, 6)}
    hopeless = {f: 0.1 + 0.01 * f for f in range(1, 6)}  # worse on all 5 folds: Wilcoxon p = 2/32
    said = verdict(compare(best, hopeless))
    assert "with 5 shared folds the Wilcoxon test cannot go below p=0.0625" in said
    six = verdict(compare({**best, 6: 0.8}, {**hopeless, 6: 0.2}))  # 2/64 < 0.05: it can, and does
    assert six.startswith("worse than the best")


def test_results_files_carry_the_fold_grid_and_the_comparison(tmp_path):
    import json

    import pandas as pd

    from orchestration.config import SweepSpec
    from orchestration.plan import Plan
    from orchestration.results import write_results

    plan = Plan(SweepSpec.from_dict({}), "cv-test", str(tmp_path), "sqlite:///x.db", 0.0, 1, (), False)
    write_results(tmp_path, _results(), plan, wall_s=12.0)
    table = pd.read_csv(tmp_path / "results.csv")
    assert table["config_id"].tolist() == ["cbest", "cclose", "cworse", "cshort"]
    assert [f"fold_{f}" for f in range(1, 11)] == [c for c in table.columns if c.startswith("fold_")]
    assert pd.isna(table.loc[0, "vs_best_wilcoxon_p"]) and table.loc[2, "vs_best_mean_difference"] == pytest.approx(0.2)
    assert pd.isna(table.loc[3, "fold_2"])  # a fold it did not finish
    payload = json.loads((tmp_path / "results.json").read_text())
    worse = payload["configurations"][2]
    assert worse["vs_best"]["folds"] == list(range(1, 11)) and worse["vs_best_verdict"].startswith("worse")
    assert payload["configurations"][0]["vs_best"] is None
