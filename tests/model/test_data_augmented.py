"""The augmentation protocol: variants are training rows only, and only of training clips;
the normaliser comes from original training rows; delta channels reach the model as channels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from features.featureset import AugmentedRows, FeatureSet
from model.config import TrainConfig
from model.data import as_model_input, prepare_fold, split_fold

CONFIG = TrainConfig(val_fraction=0.2, seed=1)


def _with_augmented(fs: FeatureSet, per_clip: int = 3, seed: int = 0) -> FeatureSet:
    """Every clip gets ``per_clip`` variants; the last one has another clip of its fold (another
    recording) mixed in, as a ``bg`` variant would."""
    rng = np.random.default_rng(seed)
    src = np.repeat(np.arange(len(fs)), per_clip)
    kinds = np.tile([f"v{i}" for i in range(per_clip - 1)] + ["bg0:clips"], len(fs))
    mixed = []
    for i, kind in zip(src, kinds, strict=True):
        if kind.startswith("bg"):
            pool = np.flatnonzero((fs.folds == fs.folds[i]) & (fs.fs_ids != fs.fs_ids[i]))
            mixed.append(fs.file_names[rng.choice(pool)])
        else:
            mixed.append("")
    feats = (fs.features[src] + rng.normal(0, 5, size=(len(src), *fs.features.shape[1:]))).astype(np.float16)
    rows = AugmentedRows(features=feats, labels=fs.labels[src], folds=fs.folds[src], fs_ids=fs.fs_ids[src],
                         file_names=fs.file_names[src], augmentation=kinds, mixed_with=np.asarray(mixed))
    return dataclasses.replace(fs, augmented=rows)


@pytest.fixture(scope="module")
def augmented(tiny_featureset):
    return _with_augmented(tiny_featureset)


def test_no_variant_of_a_validation_or_test_clip_is_ever_used(augmented):
    aug = augmented.augmented
    checked = 0
    for fold in [*range(1, 11), None]:
        split = split_fold(augmented, fold, CONFIG.val_fraction, CONFIG.seed)
        held_out = set(augmented.file_names[np.concatenate([split.val, split.test])].tolist())
        train = set(augmented.file_names[split.train].tolist())
        used = split.train_augmented
        assert len(used) > 0
        for i in used.tolist():
            assert aug.file_names[i] in train and aug.file_names[i] not in held_out
            assert aug.mixed_with[i] == "" or (aug.mixed_with[i] in train and aug.mixed_with[i] not in held_out)
        # And every variant that is allowed is used (the rule is not stricter than stated).
        allowed = [i for i in range(len(aug)) if aug.file_names[i] in train
                   and (aug.mixed_with[i] == "" or aug.mixed_with[i] in train)]
        assert used.tolist() == allowed
        # Variants whose *background* comes from a validation clip are out too.
        checked += sum(1 for i in range(len(aug)) if aug.file_names[i] in train and aug.mixed_with[i] in held_out)
        # The originals' split is the one without augmentation.
        plain = split_fold(dataclasses.replace(augmented, augmented=None), fold, CONFIG.val_fraction, CONFIG.seed)
        for name in ("train", "val", "test"):
            np.testing.assert_array_equal(getattr(split, name), getattr(plain, name))
    assert checked > 0  # the background rule was exercised


def test_prepared_fold_trains_on_allowed_variants_and_validates_and_tests_on_originals(augmented):
    fold = prepare_fold(augmented, 3, CONFIG)
    plain = prepare_fold(dataclasses.replace(augmented, augmented=None), 3, CONFIG)
    n_orig, n_aug = len(plain.y_train), len(fold.split.train_augmented)
    assert len(fold.y_train) == n_orig + n_aug and n_aug > 0
    assert fold.x_train.dtype == np.float16  # the augmented rows' storage dtype
    np.testing.assert_allclose(fold.x_train[:n_orig].astype(np.float32), plain.x_train, atol=1e-2, rtol=1e-3)
    np.testing.assert_array_equal(fold.y_train[n_orig:], augmented.augmented.labels[fold.split.train_augmented])
    # Validation and test: exactly the originals, float32, as without augmentation.
    for name in ("x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(fold, name), getattr(plain, name))
    assert fold.x_val.dtype == np.float32


def test_augmented_rows_do_not_move_the_normaliser(augmented):
    a = prepare_fold(augmented, 5, CONFIG).normaliser
    other = _with_augmented(dataclasses.replace(augmented, augmented=None), seed=9)
    scaled = dataclasses.replace(other.augmented, features=(other.augmented.features * 3 + 100).astype(np.float16))
    b = prepare_fold(dataclasses.replace(augmented, augmented=scaled), 5, CONFIG).normaliser
    c = prepare_fold(dataclasses.replace(augmented, augmented=None), 5, CONFIG).normaliser
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, c.std)
    # ... while changing the original training rows does move it (the check can fail).
    shifted = dataclasses.replace(augmented, features=augmented.features + 1)
    assert not np.allclose(prepare_fold(shifted, 5, CONFIG).normaliser.mean, a.mean)


def test_float16_storage_error_is_small_against_the_normalised_scale(augmented):
    """Casting augmented features to float16 moves normalised inputs by < 0.01 (their std is 1)."""
    fold = prepare_fold(augmented, 2, CONFIG)
    rows = fold.split.train_augmented[:200]
    exact32 = dataclasses.replace(augmented.augmented, features=augmented.augmented.features.astype(np.float32))
    exact = prepare_fold(dataclasses.replace(augmented, augmented=exact32), 2, CONFIG)
    n = len(fold.y_train) - len(fold.split.train_augmented)
    diff = np.abs(fold.x_train[n : n + len(rows)].astype(np.float32) - exact.x_train[n : n + len(rows)])
    assert exact.x_train.dtype == np.float32 and 0 < diff.max() < 0.01


def test_delta_channels_become_input_channels():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3 * 4, 5)  # 3 channels of 4 bands
    out = as_model_input(x, channels=3)
    assert out.shape == (2, 4, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], x[:, 4 * c : 4 * (c + 1)])
    np.testing.assert_array_equal(as_model_input(x), x[..., None])
    with pytest.raises(ValueError, match="channels"):
        as_model_input(x, channels=5)


def test_prepare_fold_reshapes_stacked_deltas(tiny_featureset):
    fs = tiny_featureset
    stacked = dataclasses.replace(fs, features=np.concatenate([fs.features, fs.features * 0.5], axis=1), channels=2)
    fold = prepare_fold(stacked, 1, CONFIG)
    assert fold.input_shape == (fs.features.shape[1], fs.features.shape[2], 2)
    assert len(fold.normaliser.mean) == 2 * fs.features.shape[1]  # per stored row, deltas included
