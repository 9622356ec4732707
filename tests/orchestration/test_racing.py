"""Racing decisions on hand-made fold accuracies: paired on shared folds only, min-folds
respected, the leader never dropped, ties kept, and the state survives a round trip."""

from __future__ import annotations

import pytest

from orchestration.racing import RaceState


def _feed(state: RaceState, table: dict[str, list[float]], folds: int) -> list:
    """Fold by fold across configurations, as the sweep runs them; returns every drop."""
    drops = []
    for fold in range(1, folds + 1):
        for cfg, accs in table.items():
            if fold <= len(accs) and not state.is_out(cfg):
                drops += state.record(cfg, fold, accs[fold - 1])
    return drops


def test_a_clearly_worse_configuration_is_dropped_after_five_folds_by_wilcoxon():
    state = RaceState("wilcoxon", alpha=0.05, min_folds=4)
    drops = _feed(state, {"good": [0.8, 0.7, 0.9, 0.75, 0.85, 0.8], "bad": [0.6, 0.5, 0.7, 0.55, 0.65, 0.6]}, 6)
    (drop,) = drops
    # 4 shared folds: smallest one-sided p is 1/16 > 0.05; 5: 1/32 < 0.05.
    assert drop.config_id == "bad" and drop.after_folds == 5 and drop.leader == "good"
    assert drop.folds == (1, 2, 3, 4, 5) and drop.p_value == pytest.approx(1 / 32)
    assert drop.mean == pytest.approx(0.6)
    assert state.is_out("bad") and not state.is_out("good")


def test_the_t_test_can_fire_at_min_folds():
    state = RaceState("ttest", alpha=0.05, min_folds=4)
    (drop,) = _feed(state, {"good": [0.8, 0.7, 0.9, 0.75], "bad": [0.6, 0.52, 0.69, 0.56]}, 4)
    assert drop.after_folds == 4 and drop.p_value < 0.05


def test_nothing_is_dropped_before_min_folds_or_when_off():
    assert not _feed(RaceState("ttest", min_folds=6), {"a": [0.9] * 5, "b": [0.1] * 5}, 5)
    assert not _feed(RaceState("off"), {"a": [0.9] * 10, "b": [0.1] * 10}, 10)


def test_ties_are_kept_and_the_leader_is_never_dropped():
    state = RaceState("wilcoxon", min_folds=4)
    assert not _feed(state, {"a": [0.7] * 10, "b": [0.7] * 10}, 10)
    state = RaceState("ttest", min_folds=4)
    _feed(state, {"a": [0.9, 0.8, 0.85, 0.9, 0.8], "b": [0.5, 0.4, 0.45, 0.5, 0.4], "c": [0.3] * 5}, 5)
    assert state.leader() == "a" and not state.is_out("a")
    assert state.is_out("b") and state.is_out("c")


def test_comparisons_use_only_the_shared_folds():
    state = RaceState("ttest", min_folds=4)
    # "late" finished folds 5-8 only; "leader" folds 1-4 then 5-8: the test pairs folds 5-8.
    for fold, acc in zip(range(1, 5), [0.9, 0.9, 0.9, 0.9], strict=True):
        state.record("leader", fold, acc)
    for fold in range(5, 9):
        state.record("leader", fold, 0.6 + 0.01 * fold)
    drops = [d for fold in range(5, 9) for d in state.record("late", fold, 0.6 + 0.01 * fold)]
    assert not drops  # equal on every shared fold, although the leader's other folds are far higher


def test_state_round_trips_and_keeps_who_is_out():
    state = RaceState("wilcoxon", min_folds=4)
    _feed(state, {"good": [0.8, 0.7, 0.9, 0.75, 0.85], "bad": [0.6, 0.5, 0.7, 0.55, 0.65]}, 5)
    back = RaceState.from_dict(state.to_dict())
    assert back == state and back.is_out("bad")


@pytest.mark.parametrize(("kwargs", "message"), [({"method": "anova"}, "method"), ({"alpha": 0}, "alpha"),
                                                 ({"min_folds": 1}, "min_folds")])
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RaceState(**kwargs)
