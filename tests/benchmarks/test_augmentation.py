"""The augmentation benchmark in smoke mode: the table's shape, and figures derived from the
two measured durations (not that it is fast)."""

from __future__ import annotations

import pytest

from benchmarks.augmentation import TARGET_PER_CPU, format_table, report, run, spread_over_folds


def test_ratio_and_rates_come_from_the_measured_seconds():
    r = report(clips=10, variants=12, cpus=4, serial_s=40.0, ray_s=12.5, failures=0)
    assert r["ratio"] == pytest.approx(3.2) and r["target"] == pytest.approx(4 * TARGET_PER_CPU)
    assert r["rows"][0][1:] == (pytest.approx(0.25), pytest.approx(3.0))
    assert r["rows"][1][1:] == (pytest.approx(0.8), pytest.approx(9.6))
    assert "3.20x (target >= 3.2x: met)" in format_table(r)
    assert "NOT met" in format_table(report(10, 12, 4, 40.0, 20.0, 0))


def test_clips_are_spread_over_the_folds_so_every_fold_has_a_noise_partner():
    import pandas as pd

    # Ordered as a CSV can be: all of fold 1 first, a single clip of fold 2 at the end.
    table = pd.DataFrame({"slice_file_name": [f"{i}.wav" for i in range(12)], "fold": [1] * 9 + [3, 3, 2]})
    picked = spread_over_folds(table, 6)
    assert picked["fold"].tolist() == [1, 2, 3, 1, 3, 1]
    assert picked["slice_file_name"].tolist() == ["0.wav", "11.wav", "9.wav", "1.wav", "10.wav", "2.wav"]
    assert len(spread_over_folds(table, 100)) == 12


@pytest.mark.slow
def test_smoke_run_prints_both_methods(ray_local, tiny_dataset_root):
    r = run(tiny_dataset_root, clips=4, smoke=True)
    assert r["clips"] == 4 and r["variants"] == 2 and r["failures"] == 0 and r["cpus"] == 2
    names = [name for name, _, _ in r["rows"]]
    assert names[0].startswith("librosa serial") and names[1].startswith("project Ray job")
    serial_cps, ray_cps = r["rows"][0][1], r["rows"][1][1]
    assert r["ratio"] == pytest.approx(ray_cps / serial_cps)
    table = format_table(r)
    assert table.count("\n| ") == 2 and "Ray / serial" in table
