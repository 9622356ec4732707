"""The sweep's searchers (no Ray cluster): Optuna sees one score per configuration, the mean over
its folds; racing drops folds of beaten configurations, stops their running trials, and
survives a save/restore."""

from __future__ import annotations

import statistics

import pytest
from ray.tune.search.optuna import OptunaSearch

from orchestration.config import config_id, optuna_space
from orchestration.racing import RaceState, board
from orchestration.search import SCORE, FoldExpander, PairSearcher, RacingScheduler

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
    outer.on_trial_complete("t0", {"final": 1, "test_accuracy": accuracies["t0"]})
    outer.on_trial_complete("t1", {"final": 1, "test_accuracy": accuracies["t1"]})
    assert not [t for t in inner._ot_study.trials if t.state.is_finished()]  # not before the last fold
    outer.on_trial_complete("t2", {"final": 1, "test_accuracy": accuracies["t2"]})
    (done,) = [t for t in inner._ot_study.trials if t.state.is_finished()]
    assert done.value == pytest.approx(statistics.fmean(accuracies.values()))
    assert done.params["learning_rate"] == pytest.approx(trials["t0"]["params"]["learning_rate"])


def test_failed_folds_are_left_out_and_all_failed_is_an_error():
    outer, inner = _expander()
    for i in range(6):
        outer.suggest(f"t{i}")
    outer.on_trial_complete("t0", {"final": 1, "test_accuracy": 0.4})
    outer.on_trial_complete("t1", None, error=True)
    outer.on_trial_complete("t2", {"final": 1, "test_accuracy": 0.8})
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


GOOD = [0.8, 0.7, 0.9, 0.75, 0.85, 0.8, 0.7, 0.9, 0.8, 0.85]


def _run_pairs(searcher: PairSearcher, accuracy: dict[str, list[float]]) -> list[tuple[str, int]]:
    """Suggest and complete one trial at a time until the searcher is done."""
    ran = []
    for i in range(100):
        trial = searcher.suggest(f"t{i}")
        if trial is PairSearcher.FINISHED:
            return ran
        ran.append((trial["config_id"], trial["fold"]))
        searcher.on_trial_complete(f"t{i}", {"final": 1, "test_accuracy": accuracy[trial["config_id"]][trial["fold"] - 1]})
    raise AssertionError("never finished")


def test_pairs_go_fold_by_fold_and_a_beaten_configuration_loses_its_remaining_folds():
    folds = tuple(range(1, 11))
    configs = [("good", {"learning_rate": 1e-3}), ("bad", {"learning_rate": 1e-5})]
    searcher = PairSearcher(configs, folds, RaceState("wilcoxon", 0.05, 4), "sweep-a")
    ran = _run_pairs(searcher, {"good": GOOD, "bad": [a - 0.2 for a in GOOD]})
    assert ran[:4] == [("good", 1), ("bad", 1), ("good", 2), ("bad", 2)]
    assert [f for c, f in ran if c == "bad"] == [1, 2, 3, 4, 5]  # dropped after 5 shared folds
    assert [f for c, f in ran if c == "good"] == list(folds)
    assert board("sweep-a").dropped["bad"].leader == "good"


def test_racing_off_runs_every_pair():
    configs = [("good", {}), ("bad", {})]
    searcher = PairSearcher(configs, range(1, 11), RaceState("off"), "sweep-off")
    assert len(_run_pairs(searcher, {"good": GOOD, "bad": [a - 0.2 for a in GOOD]})) == 20


def test_a_restored_searcher_keeps_dropped_configurations_out(tmp_path):
    configs = [("good", {}), ("bad", {})]
    searcher = PairSearcher(configs, range(1, 11), RaceState("wilcoxon", 0.05, 4), "sweep-b")
    for i in range(10):  # folds 1-5 of both
        trial = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"final": 1, "test_accuracy": GOOD[trial["fold"] - 1] - 0.2 * (trial["config_id"] == "bad")})
    searcher.save(str(tmp_path / "s.pkl"))
    restored = PairSearcher(configs, range(1, 11), RaceState("wilcoxon", 0.05, 4), "sweep-b")
    assert not board("sweep-b").is_out("bad")  # a fresh searcher registered a fresh race
    restored.restore(str(tmp_path / "s.pkl"))
    assert board("sweep-b").is_out("bad")
    rest = [restored.suggest(f"r{i}") for i in range(6)]
    assert [t["config_id"] for t in rest[:5]] == ["good"] * 5 and rest[5] is PairSearcher.FINISHED


def test_the_scheduler_stops_running_trials_of_a_dropped_configuration():
    from types import SimpleNamespace

    race = RaceState("ttest", 0.05, 4)
    PairSearcher([("good", {}), ("bad", {})], range(1, 11), race, "sweep-c")
    scheduler = RacingScheduler("sweep-c")
    running = SimpleNamespace(config={"config_id": "bad", "fold": 6})
    assert scheduler.on_trial_result(None, running, {"epoch": 1}) == RacingScheduler.CONTINUE
    for fold in range(1, 5):
        race.record("good", fold, 0.8 + 0.01 * fold)
        race.record("bad", fold, 0.5 + 0.02 * fold)
    assert race.is_out("bad")
    assert scheduler.on_trial_result(None, running, {"epoch": 2}) == RacingScheduler.STOP
    # Its final report (the run ended on its own) is kept; other configurations go on.
    assert scheduler.on_trial_result(None, running, {"final": 1}) == RacingScheduler.CONTINUE
    other = SimpleNamespace(config={"config_id": "good", "fold": 6})
    assert scheduler.on_trial_result(None, other, {"epoch": 2}) == RacingScheduler.CONTINUE


def test_optuna_hears_the_partial_mean_of_a_raced_out_configuration():
    space = optuna_space({"learning_rate": {"loguniform": [1e-4, 1e-2]}})
    inner = OptunaSearch(space=space, metric=SCORE, mode="max", seed=1)
    folds = tuple(range(1, 11))
    outer = FoldExpander(inner, folds, RaceState("wilcoxon", 0.05, 4), "sweep-d")
    outer.set_search_properties(None, None, {})
    first = [outer.suggest(f"a{i}") for i in range(10)]
    for i, trial in enumerate(first):
        outer.on_trial_complete(f"a{i}", {"final": 1, "test_accuracy": GOOD[trial["fold"] - 1]})
    second = []
    for i in range(10):
        trial = outer.suggest(f"b{i}")
        if trial is None or trial["config_id"] == first[0]["config_id"]:
            break
        if second and trial["config_id"] != second[0]["config_id"]:
            break  # the next configuration: the second was dropped
        second.append(trial)
        outer.on_trial_complete(f"b{i}", {"final": 1, "test_accuracy": GOOD[trial["fold"] - 1] - 0.3})
    assert len(second) == 5  # dropped after its fifth fold; folds 6-10 never proposed
    finished = [t for t in inner._ot_study.trials if t.state.is_finished()]
    assert [t.value for t in finished] == pytest.approx([statistics.fmean(GOOD), statistics.fmean(GOOD[:5]) - 0.3])
