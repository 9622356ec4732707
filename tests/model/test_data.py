"""Evaluation protocol: fold split, grouped validation, training-only normalisation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from features.featureset import FeatureSet
from model.data import Normaliser, apply_normaliser, as_model_input, fit_normaliser, split_fold


def test_test_set_is_exactly_the_held_out_fold(tiny_featureset):
    for fold in (1, 7, 10):
        split = split_fold(tiny_featureset, fold, 0.1, seed=0)
        np.testing.assert_array_equal(split.test, np.flatnonzero(tiny_featureset.folds == fold))
        assert not np.isin(tiny_featureset.folds[split.train], [fold]).any()
        assert not np.isin(tiny_featureset.folds[split.val], [fold]).any()


def test_partition_is_complete_disjoint_and_grouped_by_recording(tiny_featureset):
    split = split_fold(tiny_featureset, 4, 0.1, seed=0)
    together = np.concatenate([split.train, split.val, split.test])
    assert sorted(together.tolist()) == list(range(len(tiny_featureset)))
    train_ids = set(tiny_featureset.fs_ids[split.train].tolist())
    val_ids = set(tiny_featureset.fs_ids[split.val].tolist())
    assert train_ids.isdisjoint(val_ids)


def test_validation_is_stratified_and_near_the_fraction(tiny_featureset):
    split = split_fold(tiny_featureset, 4, 0.1, seed=0)
    pool = len(split.train) + len(split.val)
    # Whole recordings of 1-2 clips each: the fraction can be missed by a clip per class.
    assert abs(len(split.val) - 0.1 * pool) <= 10
    val_classes = set(tiny_featureset.labels[split.val].tolist())
    assert val_classes == set(tiny_featureset.labels.tolist())


def test_split_is_deterministic_per_seed(tiny_featureset):
    a = split_fold(tiny_featureset, 2, 0.1, seed=3)
    b = split_fold(tiny_featureset, 2, 0.1, seed=3)
    c = split_fold(tiny_featureset, 2, 0.1, seed=4)
    np.testing.assert_array_equal(a.val, b.val)
    np.testing.assert_array_equal(a.train, b.train)
    assert not np.array_equal(a.val, c.val)


def _tamper_with_fold(fs: FeatureSet, fold: int, seed: int) -> FeatureSet:
    """Same training folds; the test fold gets new features, labels and fsIDs that even
    collide with training recordings."""
    rng = np.random.default_rng(seed)
    rows = fs.folds == fold
    features = fs.features.copy()
    features[rows] = rng.normal(50.0, 30.0, size=features[rows].shape).astype(np.float32)
    labels = fs.labels.copy()
    labels[rows] = rng.integers(0, 10, size=rows.sum())
    fs_ids = fs.fs_ids.copy()
    fs_ids[rows] = rng.choice(fs.fs_ids[~rows], size=rows.sum())
    return dataclasses.replace(fs, features=features, labels=labels, fs_ids=fs_ids)


def test_test_fold_data_cannot_change_split_or_normaliser(tiny_featureset):
    fold = 5
    tampered = _tamper_with_fold(tiny_featureset, fold, seed=1)
    original = split_fold(tiny_featureset, fold, 0.1, seed=0)
    changed = split_fold(tampered, fold, 0.1, seed=0)
    np.testing.assert_array_equal(original.train, changed.train)
    np.testing.assert_array_equal(original.val, changed.val)
    np.testing.assert_array_equal(original.test, changed.test)
    a = fit_normaliser(tiny_featureset.features[original.train])
    b = fit_normaliser(tampered.features[changed.train])
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)


def test_normaliser_is_per_band_training_statistics(tiny_featureset):
    split = split_fold(tiny_featureset, 1, 0.1, seed=0)
    train = tiny_featureset.features[split.train]
    normaliser = fit_normaliser(train)
    np.testing.assert_allclose(
        normaliser.mean, train.astype(np.float64).mean(axis=(0, 2)), rtol=1e-5
    )
    np.testing.assert_allclose(normaliser.std, train.astype(np.float64).std(axis=(0, 2)), rtol=1e-5)
    scaled = apply_normaliser(train, normaliser)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.mean(axis=(0, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(scaled.std(axis=(0, 2)), 1.0, atol=1e-3)
    # Validation and test rows are scaled with training statistics, so they are not exactly 0/1.
    val_scaled = apply_normaliser(tiny_featureset.features[split.val], normaliser)
    assert np.abs(val_scaled.mean(axis=(0, 2))).max() > 1e-3


def test_normaliser_round_trip_and_constant_band():
    x = np.ones((3, 2, 5), np.float32)
    x[:, 1, :] = np.arange(5)
    normaliser = fit_normaliser(x)
    assert normaliser.std[0] > 0  # a constant band must not divide by zero
    restored = Normaliser.from_dict(normaliser.to_dict())
    np.testing.assert_array_equal(restored.mean, normaliser.mean)
    assert np.isfinite(apply_normaliser(x, restored)).all()
    assert as_model_input(x).shape == (3, 2, 5, 1)


def test_recording_with_mixed_classes_stays_whole():
    # Recording 7 has clips of classes 1, 1 and 2: it is stratified as class 1, never split.
    labels = np.array([1, 1, 2, 1, 1, 2, 2, 2, 0, 0])
    fs_ids = np.array([7, 7, 7, 8, 9, 10, 11, 12, 13, 14])
    folds = np.array([1] * 8 + [2] * 2)
    fs = FeatureSet(
        features=np.zeros((10, 2, 3), np.float32),
        labels=labels,
        folds=folds,
        fs_ids=fs_ids,
        file_names=np.array([f"{i}.wav" for i in range(10)]),
    )
    for seed in range(20):
        split = split_fold(fs, 2, 0.3, seed=seed)
        rec7 = np.flatnonzero(fs_ids == 7)
        assert np.isin(rec7, split.val).all() or np.isin(rec7, split.train).all()


def test_clear_errors_for_bad_requests(tiny_featureset):
    with pytest.raises(ValueError, match="test fold 11 has no clips"):
        split_fold(tiny_featureset, 11, 0.1, seed=0)
    with pytest.raises(ValueError, match="val_fraction"):
        split_fold(tiny_featureset, 1, 1.5, seed=0)
    with pytest.raises(ValueError, match="bands"):
        apply_normaliser(np.zeros((2, 3, 4), np.float32), Normaliser.identity(40))
