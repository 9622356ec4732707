"""model/pipeline.py: training batches are augmented, evaluation sets never are; soft labels are
one-hot everywhere (hard in evaluation); a resumed pipeline yields the uninterrupted run's
batches (order and augmentation); the default config builds exactly the old pipeline; maps stay graph functions
under the loop's tf.data debug mode."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pytest
import tensorflow as tf

from model.config import TrainConfig
from model.pipeline import make_dataset, one_hot

AUGMENTED = TrainConfig(mixup_alpha=0.4, freq_masks=1, freq_mask_width=3, time_masks=1,
                        time_mask_width=4, time_shift=2, label_smoothing=0.1)


def data(n=12, bands=6, frames=10, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(1, 2, (n, bands, frames, 1)).astype(np.float32)
    return x, (np.arange(n) % classes).astype(np.int32)


def batches(ds):
    return [(xb.numpy(), yb.numpy()) for xb, yb in ds]


def test_evaluation_sets_are_untouched_with_hard_one_hot_labels():
    x, y = data()
    out = batches(make_dataset(tf, x, y, 5, seed=0, config=AUGMENTED, num_classes=3))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in out]), x)  # in order, unchanged
    np.testing.assert_array_equal(np.concatenate([b[1] for b in out]), np.eye(3)[y])


def test_training_batches_are_augmented_with_soft_labels_summing_to_one():
    x, y = data()
    out = batches(make_dataset(tf, x, y, 4, seed=0, train_passes=2, config=AUGMENTED, num_classes=3))
    assert len(out) == 6 and all(b[0].shape == (4, 6, 10, 1) for b in out)
    labels = np.concatenate([b[1] for b in out])
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)
    assert labels.min() >= 0.1 / 3 - 1e-7 and not np.isin(labels, [0.0, 1.0]).all()
    inputs = np.concatenate([b[0] for b in out])
    assert (inputs == 0).any()  # masks
    plain = {tuple(row.ravel()) for row in x}
    assert sum(tuple(row.ravel()) in plain for row in inputs) < len(inputs)  # changed clips


def test_the_reference_config_builds_the_unaugmented_pipeline_with_sparse_labels():
    x, y = data()
    with_config = batches(make_dataset(tf, x, y, 4, seed=3, train_passes=2, config=TrainConfig(), num_classes=3))
    without = batches(make_dataset(tf, x, y, 4, seed=3, train_passes=2))
    for (xa, ya), (xb, yb) in zip(with_config, without, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert with_config[0][1].dtype == np.int32


def test_masks_only_keeps_sparse_labels_and_touches_training_inputs_only():
    x, y = data()
    masks = TrainConfig(time_masks=2, time_mask_width=3)
    train = batches(make_dataset(tf, x, y, 4, seed=0, train_passes=1, config=masks, num_classes=3))
    assert train[0][1].dtype == np.int32
    assert any((b[0] == 0).any() for b in train)
    val = batches(make_dataset(tf, x, y, 4, seed=0, config=masks, num_classes=3))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in val]), x)


def test_float16_training_rows_are_cast_before_augmentation():
    x, y = data()
    out = batches(make_dataset(tf, x.astype(np.float16), y, 4, seed=0, train_passes=1, config=AUGMENTED,
                               num_classes=3))
    assert all(b[0].dtype == np.float32 for b in out) and any((b[0] == 0).any() for b in out)


def test_a_resumed_pipeline_yields_exactly_the_uninterrupted_batches_from_its_step_on():
    # Distinct clips, three passes of 3 batches, every augmentation on: resumed after the first
    # pass and one batch (step 4), the pipeline yields batches 4..8 of the uninterrupted one,
    # in order, with the same shuffle and the same augmentation draws.
    x, y = data(n=12)
    full = batches(make_dataset(tf, x, y, 4, seed=0, train_passes=3, config=AUGMENTED, num_classes=3))
    resumed = batches(make_dataset(tf, x, y, 4, seed=0, train_passes=3, config=AUGMENTED, num_classes=3,
                                   first_step=4))
    assert len(full) == 9 and len(resumed) == 5
    for (xa, ya), (xb, yb) in zip(full[4:], resumed, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    # What a fresh pipeline of the remaining passes would give instead: the first pass's order.
    plain = batches(make_dataset(tf, x, y, 4, seed=0, train_passes=3))
    fresh = batches(make_dataset(tf, x, y, 4, seed=0, train_passes=2))
    assert not np.array_equal(fresh[0][0], plain[3][0])


def test_augmentation_maps_are_traced_once_even_inside_the_loops_debug_mode(monkeypatch):
    # train_loop builds its datasets before entering no_autotune_threads (tf.data debug mode,
    # which would run map functions eagerly, in Python, if the map were built inside).
    from model import augment_tf
    from model._tf_compat import no_autotune_threads

    calls = []
    original = augment_tf.augment_batch

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(augment_tf, "augment_batch", counting)
    x, y = data(n=40)
    ds = make_dataset(tf, x, y, 4, seed=0, train_passes=2, config=AUGMENTED, num_classes=3)
    traced = len(calls)
    with no_autotune_threads() as debug_mode:
        assert len(batches(ds)) == 20
    assert debug_mode and traced >= 1 and len(calls) == traced  # no per-batch Python call


def test_one_hot_rejects_labels_outside_the_classes():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"classIDs in \[0, 3\), got 0..3"):
        one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="need num_classes"):
        make_dataset(tf, *data(), 4, seed=0, config=AUGMENTED)
