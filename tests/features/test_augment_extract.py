"""Augmented variants as Ray tasks: equal to the serial computation, cached, no work on a hit."""

from __future__ import annotations

import numpy as np
import pytest

from features.augment import AugmentConfig, augment_clip
from features.augment_extract import augment_batch, augment_features, plan_rows
from features.config import FeatureConfig
from features.dataset import load_dataset
from features.extract import extract_features

CONFIG = FeatureConfig(frames=87)
AUGMENT = AugmentConfig(pitch_shift=(2.0,), drc=("radio",), noise_mixes=1, noise_snr_db=(5.0, 15.0), seed=1)


@pytest.fixture(scope="module")
def two_folds(tiny_dataset):
    return load_dataset(tiny_dataset.root, folds=(2, 5))


@pytest.fixture(scope="module")
def base(ray_local, two_folds, tmp_path_factory):
    return extract_features(two_folds, CONFIG, tmp_path_factory.mktemp("base"), progress=False).featureset


def test_rows_carry_their_source_and_variant_and_equal_serial(ray_local, two_folds, base, tmp_path):
    result = augment_features(two_folds, CONFIG, AUGMENT, base, tmp_path, progress=False)
    rows = result.rows
    assert result.augmented_clips == len(base) and result.augmented_folds == (2, 5) and not result.failures
    assert len(rows) == 3 * len(base) and rows.features.dtype == np.float16
    assert rows.features.shape[1:] == CONFIG.shape
    by_name = {n: i for i, n in enumerate(base.file_names)}
    src = np.array([by_name[n] for n in rows.file_names])
    np.testing.assert_array_equal(rows.labels, base.labels[src])
    np.testing.assert_array_equal(rows.folds, base.folds[src])
    np.testing.assert_array_equal(rows.fs_ids, base.fs_ids[src])
    assert sorted(set(rows.augmentation.tolist())) == ["bg0:clips", "drc:radio", "ps+2"]
    # Background partners: the same fold, another recording.
    bg = rows.augmentation == "bg0:clips"
    partner = np.array([by_name[n] for n in rows.mixed_with[bg]])
    assert (base.folds[partner] == rows.folds[bg]).all() and (base.fs_ids[partner] != rows.fs_ids[bg]).all()
    assert (rows.mixed_with[~bg] == "").all()
    # A Ray row equals the serial computation of the same clip (same seed, same partner).
    table = two_folds.table.set_index("slice_file_name")
    name = rows.file_names[bg][3]
    partner_path = table.loc[rows.mixed_with[bg][3], "path"]
    names, feats = augment_clip(table.loc[name, "path"], CONFIG, AUGMENT, name, {"bg0:clips": partner_path})
    mine = rows.features[rows.file_names == name]
    assert names == rows.augmentation[rows.file_names == name].tolist()
    np.testing.assert_allclose(mine.astype(np.float32), feats.astype(np.float32), atol=2e-3)


def test_second_run_does_no_augmentation_work(ray_local, two_folds, base, tmp_path):
    first = augment_features(two_folds, CONFIG, AUGMENT, base, tmp_path, progress=False)
    files = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    second = augment_features(two_folds, CONFIG, AUGMENT, base, tmp_path, progress=False)
    assert second.augmented_clips == 0 and second.augmented_folds == () and second.cached_folds == (2, 5)
    assert second.nodes == ()  # no task ran
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == files  # nothing written
    np.testing.assert_array_equal(first.rows.features, second.rows.features)
    np.testing.assert_array_equal(first.rows.augmentation, second.rows.augmentation)
    # Another augmentation config or feature config is another key.
    other = augment_features(two_folds, CONFIG, AugmentConfig(drc=("speech",)), base, tmp_path, progress=False)
    assert other.augmented_clips == len(base) and len(other.rows) == len(base)


def test_bytes_transport_equals_path_transport(ray_local, two_folds, base, tmp_path):
    config = AugmentConfig(drc=("speech",), noise_mixes=1)
    sub = base.select(base.folds == 5)
    index = load_dataset(two_folds.root, folds=(5,))
    by_path = augment_features(index, CONFIG, config, sub, tmp_path / "p", transport="path", progress=False)
    by_bytes = augment_features(index, CONFIG, config, sub, tmp_path / "b", transport="bytes", progress=False)
    np.testing.assert_array_equal(by_path.rows.features, by_bytes.rows.features)
    np.testing.assert_array_equal(by_path.rows.mixed_with, by_bytes.rows.mixed_with)


def test_undecodable_clip_is_a_reported_failure_not_a_crash(two_folds):
    rows = two_folds.table.head(2)
    good = rows["path"].iloc[0]
    items = [(0, good, "a.wav", {}), (1, b"not a wav", "b.wav", {})]
    ids, feats, failed = augment_batch(items, CONFIG, AugmentConfig(drc=("speech",)))
    assert ids.tolist() == [0] and feats.shape == (1, 1, *CONFIG.shape)
    assert failed[0][0] == 1 and "decode" in failed[0][1]


def test_plan_partners_are_seeded_and_from_the_same_fold(two_folds):
    rows = two_folds.table.sort_values("fold", kind="stable").reset_index(drop=True)
    config = AugmentConfig(noise_mixes=2)
    a, b = plan_rows(rows, config), plan_rows(rows, config)
    assert a == b
    folds = dict(zip(rows["slice_file_name"], rows["fold"], strict=True))
    for name, mixed in zip(rows["slice_file_name"], a.mixed_with, strict=True):
        assert len(mixed) == 2 and all(folds[m] == folds[name] for m in mixed)


def test_empty_config_is_refused(two_folds, base):
    with pytest.raises(ValueError, match="no variant"):
        augment_features(two_folds, CONFIG, AugmentConfig(), base)
