"""The racing simulation: a small run prints one row per size, saving trials without losing the
best more often than the targets allow; replaying a recorded results.json."""

from __future__ import annotations

import json
import re

import numpy as np

from benchmarks.racing import Model, main, race, replay, simulate, summary_row


def test_the_fold_model_shares_a_fold_effect_across_configurations():
    means, acc = Model(fold_sd=0.05, noise_sd=0.0).draw(4, np.random.default_rng(0))
    centred = acc - means[:, None]
    assert np.allclose(centred, centred[0])  # no noise: every configuration moves with the folds


def test_racing_saves_trials_on_sixteen_configurations_and_rarely_drops_the_best():
    row = summary_row(16, simulate(16, 200, Model(), "wilcoxon", 0.05, 4, seed=1))
    assert row["saved"] >= 0.30
    assert row["best_dropped"] <= 0.08
    assert row["winner_rank"] <= row["full_winner_rank"] + 0.2


def test_two_identical_configurations_are_never_dropped():
    state = race(np.tile(np.linspace(0.6, 0.8, 10), (2, 1)), "wilcoxon", 0.05, 4)
    assert not state.dropped


def test_replay_of_a_recorded_sweep(tmp_path):
    good = {str(f): 0.8 + 0.01 * (f % 3) for f in range(1, 11)}
    bad = {f: a - 0.2 for f, a in good.items()}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"configurations": [{"config_id": "good", "fold_accuracy": good},
                                                   {"config_id": "bad", "fold_accuracy": bad}]}))
    result = replay(path, "wilcoxon", 0.05, 4)
    assert result["dropped"] == ["bad"] and result["trials"] == 15 and result["full"] == 20
    assert result["best_dropped"] is False


def test_cli_prints_a_row_per_size(capsys):
    assert main(["--sweeps", "20", "--configs", "4", "8"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if re.match(r"^\|\s+\d+ \|", line)]
    assert [int(r.split("|")[1]) for r in rows] == [4, 8]
