"""The on-disk feature cache: keys, round trips, manifest-last completeness, no pickle."""

from __future__ import annotations

import numpy as np
import pytest

from features.cache import (
    Failure,
    concat,
    fold_entry,
    read_failure_report,
    read_fold,
    write_failure_report,
    write_fold,
)
from features.config import FeatureConfig
from features.toy import make_toy_featureset

CONFIG = FeatureConfig(frames=24)


@pytest.fixture(scope="module")
def fold3():
    fs = make_toy_featureset(frames=24)
    return fs.select(fs.folds == 3)


def test_key_depends_on_config_fold_and_file_list(tmp_path):
    base = fold_entry(tmp_path, CONFIG, 3, "fingerprint-a")
    assert fold_entry(tmp_path, CONFIG, 3, "fingerprint-a") == base
    assert fold_entry(tmp_path, CONFIG, 3, "fingerprint-b").key != base.key
    assert fold_entry(tmp_path, CONFIG, 4, "fingerprint-a").key != base.key
    other = fold_entry(tmp_path, FeatureConfig(frames=25), 3, "fingerprint-a")
    assert other.key != base.key and other.directory != base.directory


def test_round_trip_keeps_every_array_and_the_failures(tmp_path, fold3):
    entry = fold_entry(tmp_path, CONFIG, 3, "fp")
    failures = [Failure("/data/audio/fold3/1-2-0-0.wav", 3, 17, "cannot decode audio: bad header")]
    assert not entry.exists()
    write_fold(entry, CONFIG, fold3, failures, {"dataset_root": "/data"})
    assert entry.exists()
    back, back_failures = read_fold(entry)
    for name in ("features", "labels", "folds", "fs_ids", "file_names"):
        assert np.array_equal(getattr(back, name), getattr(fold3, name)), name
    assert back.features.dtype == np.float32
    assert back_failures == failures
    # No pickle in the archive: numpy reads it with allow_pickle=False (read_fold does).
    assert not list(entry.directory.glob("*.tmp*")), "temporary files left behind"


def test_a_fold_without_its_manifest_is_not_complete(tmp_path, fold3):
    entry = fold_entry(tmp_path, CONFIG, 3, "fp")
    write_fold(entry, CONFIG, fold3, [], {})
    entry.manifest.unlink()  # as if the process died before the last write
    assert entry.npz.exists() and not entry.exists()


def test_failure_report_round_trips_odd_file_names(tmp_path):
    failures = [Failure("/d/a b,é\"c.wav", 1, 2, "reason, with comma"), Failure("/d/x.wav", 10, 9000, "r")]
    path = tmp_path / "f.csv"
    write_failure_report(path, failures)
    assert read_failure_report(path) == failures
    assert read_failure_report(tmp_path / "absent.csv") == []


def test_concat_of_nothing_is_empty_but_shaped():
    empty = concat([], CONFIG)
    assert empty.features.shape == (0, *CONFIG.shape) and len(empty) == 0
