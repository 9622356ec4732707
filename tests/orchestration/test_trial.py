"""What a trial reserves and trains: CPU shares that add up, stable pair keys, the trial's TrainConfig."""

from __future__ import annotations

import pytest

from orchestration.trial import TRIAL_DRIVER_CPU, pair_key, trial_train_config, worker_cpus


@pytest.mark.parametrize(("cpus", "workers"), [(1.0, 1), (1.0, 2), (2.0, 4), (0.5, 1)])
def test_a_trial_reserves_exactly_workers_times_cpus(cpus, workers):
    assert workers * worker_cpus(cpus, workers) + TRIAL_DRIVER_CPU == pytest.approx(workers * cpus)


def test_pair_keys_are_stable_and_distinct():
    assert pair_key("c1", 3) == pair_key("c1", 3) != pair_key("c1", 4) != pair_key("c2", 3)


def test_trial_config_is_the_base_with_the_searched_values():
    config = trial_train_config({"epochs": 5, "batch_size": 32}, {"learning_rate": 3e-4})
    assert (config.epochs, config.batch_size, config.learning_rate) == (5, 32, 3e-4)
    with pytest.raises(ValueError, match="unknown key"):
        trial_train_config({}, {"learnig_rate": 1e-3})
