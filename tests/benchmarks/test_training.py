"""Smoke test of the training benchmark on tiny settings: it runs end to end and prints a
table with the plain row and one row per Ray Train worker count (not a timed test)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks.training import TEST_FOLD, main, make_bench_featureset, prepare_arrays
from model.config import TrainConfig

pytestmark = pytest.mark.slow

ROW = re.compile(
    r"^(?P<name>plain tf_keras fit .*?|Ray Train \d+ workers? x \d+ CPU)\s+"
    r"(?P<rate>\S+)\s+(?P<ratio>\S+)x\s+(?P<wall>\S+)\s+(?P<per_epoch>\S+)$"
)


def test_featureset_gives_about_the_requested_training_clips():
    config = TrainConfig()
    arrays = prepare_arrays(make_bench_featureset(300, seed=1), config)
    assert 290 <= len(arrays["y_train"]) <= 310
    assert arrays["x_train"].shape[1:] == (40, 174, 1)
    assert len(arrays["y_val"]) > 0
    assert len(arrays["y_test"]) > 0
    assert make_bench_featureset(300, seed=1).folds.tolist().count(TEST_FOLD) == len(
        arrays["y_test"]
    )
    # Seeded: the same seed gives the same clips, another seed other clips.
    again = prepare_arrays(make_bench_featureset(300, seed=1), config)
    assert np.array_equal(arrays["x_train"], again["x_train"])
    other = make_bench_featureset(300, seed=2).features
    assert not np.array_equal(make_bench_featureset(300, seed=1).features, other)


def test_bench_prints_the_plain_and_ray_rows_with_positive_numbers(ray_local, capsys):
    # One worker count keeps the smoke short; two workers are trained in test_train_fold.py.
    code = main(["--epochs", "1", "--warmup", "1", "--samples", "64", "--batch-size", "8", "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [m for m in (ROW.match(line) for line in out.splitlines()) if m]
    names = [m["name"] for m in rows]
    assert len(rows) == 2, out
    assert names[0].startswith("plain tf_keras fit")
    assert names[1] == "Ray Train 1 worker x 2 CPU"
    for m in rows:
        for key in ("rate", "ratio", "wall", "per_epoch"):
            assert float(m[key]) > 0, (key, m[0])
    # Each ratio is its own rate over the plain row's, to the printed precision.
    plain = float(rows[0]["rate"])
    for m in rows[1:]:
        assert float(m["ratio"]) == pytest.approx(float(m["rate"]) / plain, abs=0.006)
    assert out.startswith("machine: ") and " SIMD " in out.splitlines()[0]
    assert "target: Ray Train (1 worker) >= 0.9x plain:" in out
    assert "CPU 60 s/epoch, 1 GPU 2 s/epoch, 2 GPUs 1 s/epoch" in out


AUGMENT_ROW = re.compile(r"^augmentation: (?P<name>\w+)\s+(?P<rate>\S+)\s+(?P<ratio>\S+)x\s+(?P<wall>\S+)$")


def test_augmentation_rows_print_a_ratio_against_unaugmented(capsys):
    code = main(["--augmentation", "all", "--epochs", "1", "--warmup", "0", "--samples", "64", "--batch-size", "32"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [m for m in (AUGMENT_ROW.match(line) for line in out.splitlines()) if m]
    assert [m["name"] for m in rows] == ["none", "all"], out  # none always first
    assert float(rows[0]["ratio"]) == 1.0
    # The ratio is of the unrounded rates; the printed rates are rounded to 0.1.
    rate, base = float(rows[1]["rate"]), float(rows[0]["rate"])
    assert (rate - 0.05) / (base + 0.05) - 0.005 <= float(rows[1]["ratio"]) <= (rate + 0.05) / (base - 0.05) + 0.005
    assert "target: all augmentations >= 0.9x none:" in out
    assert "mixup_alpha=0.2" in out and "time_shift=20" in out


def test_augmentation_settings_fit_small_inputs_and_unknown_ones_are_refused():
    from benchmarks.augment_training import SETTINGS, fitted_settings

    fitted = fitted_settings((6, 10, 1))
    assert fitted["all"]["freq_mask_width"] == 6 and fitted["all"]["time_shift"] == 10
    assert fitted["mixup"] == SETTINGS["mixup"]
    with pytest.raises(SystemExit):
        main(["--augmentation", "cutout"])
