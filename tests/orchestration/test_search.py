"""FoldExpander: Optuna sees one score per configuration, the mean over its folds (no Ray cluster)."""

from __future__ import annotations

import statistics

import pytest
from ray.tune.search.optuna import OptunaSearch

from orchestration.config import config_id, optuna_space
from orchestration.search import SCORE, FoldExpander

FOLDS = (1, 2, 3)


def _expander() -> tuple[FoldExpander, OptunaSearch]:
    space = optuna_space({"learning_rate": {"loguniform": [1e-4, 1e-2]}})
    inner = OptunaSearch(space=space, metric=SCORE, mode="max", seed=1)
    outer = FoldExpander(inner, FOLDS)
    outer.set_search_properties(None, None, {})
    return outer, inner


def test_each_configuration_becomes_one_trial_per_fold():
    outer, _ = _expander()
    trials = [outer.suggest(f"t{i}") for i in range(6)]
    assert [t["fold"] for t in trials] == [1, 2, 3, 1, 2, 3]
    first, second = trials[:3], trials[3:]
    assert len({t["params"]["learning_rate"] for t in first}) == 1
    assert first[0]["params"] != second[0]["params"]
    assert all(t["config_id"] == config_id(t["params"]) for t in trials)


def test_optuna_is_told_the_mean_over_folds_once_all_folds_finish():
    outer, inner = _expander()
    trials = {f"t{i}": outer.suggest(f"t{i}") for i in range(3)}
    accuracies = {"t0": 0.5, "t1": 0.7, "t2": 0.6}
    outer.on_trial_complete("t0", {"test_accuracy": accuracies["t0"]})
    outer.on_trial_complete("t1", {"test_accuracy": accuracies["t1"]})
    assert not [t for t in inner._ot_study.trials if t.state.is_finished()]  # not before the last fold
    outer.on_trial_complete("t2", {"test_accuracy": accuracies["t2"]})
    (done,) = [t for t in inner._ot_study.trials if t.state.is_finished()]
    assert done.value == pytest.approx(statistics.fmean(accuracies.values()))
    assert done.params["learning_rate"] == pytest.approx(trials["t0"]["params"]["learning_rate"])


def test_failed_folds_are_left_out_and_all_failed_is_an_error():
    outer, inner = _expander()
    for i in range(6):
        outer.suggest(f"t{i}")
    outer.on_trial_complete("t0", {"test_accuracy": 0.4})
    outer.on_trial_complete("t1", None, error=True)
    outer.on_trial_complete("t2", {"test_accuracy": 0.8})
    for i in range(3, 6):
        outer.on_trial_complete(f"t{i}", None, error=True)
    states = [(t.state.name, t.value) for t in inner._ot_study.trials]
    assert states[0] == ("COMPLETE", pytest.approx(0.6))
    assert states[1][0] == "FAIL"


def test_state_round_trips_for_resume(tmp_path):
    outer, _ = _expander()
    outer.suggest("t0")
    outer.save(str(tmp_path / "searcher.pkl"))
    restored, _ = _expander()
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.suggest("t1") == outer.suggest("t1")
