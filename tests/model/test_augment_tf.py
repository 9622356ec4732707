"""On-the-fly augmentation (model/augment_tf.py) on inputs with known answers: masks zero exactly
the drawn bands and frames and nothing else, a shift moves content by the drawn amount, mixup
labels are the drawn convex combinations and sum to 1, smoothing matches Keras's, seeds replay."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pytest
import tensorflow as tf

from model import augment_tf as aug
from model.config import TrainConfig

SEED = aug.batch_seed(7, 3)


def positive_batch(batch=6, bands=20, frames=30, channels=2, seed=0) -> np.ndarray:
    """Values in [1, 2): a zero in the output can only come from a mask."""
    return np.random.default_rng(seed).uniform(1, 2, (batch, bands, frames, channels)).astype(np.float32)


def numpy_span_mask(starts: np.ndarray, widths: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((starts.shape[0], size), dtype=bool)
    for row in range(starts.shape[0]):
        for start, width in zip(starts[row], widths[row], strict=True):
            mask[row, start : start + width] = True
    return mask


def test_explicit_masks_zero_exactly_those_bands_and_frames_on_every_channel():
    x = positive_batch(batch=2, bands=8, frames=10)
    band = aug.span_mask(tf.constant([[2], [0]]), tf.constant([[3], [0]]), 8)
    frame = aug.span_mask(tf.constant([[7], [1]]), tf.constant([[2], [1]]), 10)
    assert band.numpy().tolist() == [[False, False, True, True, True, False, False, False], [False] * 8]
    out = aug.apply_masks(tf.constant(x), band, frame).numpy()
    expected = x.copy()
    expected[0, 2:5, :, :] = 0  # bands 2, 3, 4 of clip 0
    expected[0, :, 7:9, :] = 0  # frames 7, 8 of clip 0
    expected[1, :, 1:2, :] = 0  # frame 1 of clip 1; its band mask has width 0
    np.testing.assert_array_equal(out, expected)


def test_drawn_masks_zero_exactly_the_drawn_spans_and_nothing_else():
    x = positive_batch()
    batch, bands, frames, _ = x.shape
    freq_seed, time_seed = tf.unstack(tf.random.experimental.stateless_split(SEED, 2))
    f_starts, f_widths = (t.numpy() for t in aug.draw_spans(batch, 2, 5, bands, freq_seed))
    t_starts, t_widths = (t.numpy() for t in aug.draw_spans(batch, 3, 6, frames, time_seed))
    zeroed = (
        numpy_span_mask(f_starts, f_widths, bands)[:, :, None]
        | numpy_span_mask(t_starts, t_widths, frames)[:, None, :]
    )
    out = aug.spec_augment(tf.constant(x), 2, 5, 3, 6, SEED).numpy()
    assert zeroed.any() and not zeroed.all()  # the seed masks something, not everything
    np.testing.assert_array_equal(out[zeroed], 0.0)
    np.testing.assert_array_equal(out[~zeroed], x[~zeroed])  # everything else unchanged


def test_span_draws_stay_inside_and_cover_every_width():
    starts, widths = (t.numpy() for t in aug.draw_spans(4000, 1, 7, 40, SEED))
    assert widths.min() == 0 and widths.max() == 7
    assert set(np.unique(widths)) == set(range(8))  # U{0..7}: each width drawn
    assert starts.min() == 0 and (starts + widths).max() == 40
    assert ((starts >= 0) & (starts + widths <= 40)).all()


def test_time_shift_rolls_each_clip_by_its_drawn_amount():
    batch, frames = 5, 12
    x = np.zeros((batch, 3, frames, 1), np.float32)
    x[:, :, 4, 0] = 1.0  # a click at frame 4
    x[:, 1, 0, 0] = 2.0  # and a marker at frame 0 of band 1
    shifts = aug.draw_shifts(batch, 5, SEED).numpy()
    assert np.abs(shifts).max() <= 5 and len(set(shifts.tolist())) > 1
    out = aug.time_shift(tf.constant(x), 5, SEED).numpy()
    for clip, s in enumerate(shifts):
        np.testing.assert_array_equal(out[clip], np.roll(x[clip], s, axis=1))
        assert out[clip, 0, :, 0].argmax() == (4 + s) % frames  # the click moved by s
    assert aug.draw_shifts(2000, 3, SEED).numpy().tolist().count(-3) > 0  # both ends drawn


def test_mixup_with_given_lambda_and_partner():
    x = np.stack([np.full((2, 3, 1), v, np.float32) for v in (10.0, 20.0, 30.0)])
    y = np.eye(3, dtype=np.float32)
    lam, perm = tf.constant([0.25, 1.0, 0.5]), tf.constant([1, 2, 0])
    x_mixed, y_mixed = (t.numpy() for t in aug.mix(tf.constant(x), tf.constant(y), lam, perm))
    np.testing.assert_allclose(x_mixed[:, 0, 0, 0], [0.25 * 10 + 0.75 * 20, 20.0, 0.5 * 30 + 0.5 * 10])
    np.testing.assert_allclose(y_mixed, [[0.25, 0.75, 0], [0, 1, 0], [0.5, 0, 0.5]])


def test_drawn_mixup_labels_are_lambda_and_one_minus_lambda_of_two_sources_and_sum_to_one():
    batch, classes = 64, 10
    rng = np.random.default_rng(1)
    labels = rng.integers(0, classes, batch)
    y = np.eye(classes, dtype=np.float32)[labels]
    x = rng.normal(size=(batch, 4, 5, 1)).astype(np.float32)
    lam, perm = (t.numpy() for t in aug.draw_mixup(batch, 0.4, SEED))
    x_mixed, y_mixed = (t.numpy() for t in aug.mixup(tf.constant(x), tf.constant(y), 0.4, SEED))
    np.testing.assert_allclose(y_mixed.sum(axis=1), 1.0, atol=1e-6)
    assert sorted(perm.tolist()) == list(range(batch)) and (perm != np.arange(batch)).any()
    assert ((lam >= 0) & (lam <= 1)).all()
    for i in range(batch):
        expected = np.zeros(classes)
        expected[labels[i]] += lam[i]
        expected[labels[perm[i]]] += 1 - lam[i]
        np.testing.assert_allclose(y_mixed[i], expected, atol=1e-6)
        np.testing.assert_allclose(x_mixed[i], lam[i] * x[i] + (1 - lam[i]) * x[perm[i]], atol=1e-5)


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_mixup_lambda_follows_beta_alpha_alpha(alpha):
    lam = aug.draw_mixup(20000, alpha, SEED)[0].numpy()
    assert lam.mean() == pytest.approx(0.5, abs=0.01)
    assert lam.var() == pytest.approx(1 / (4 * (2 * alpha + 1)), abs=0.01)  # Beta(a, a) variance


def test_label_smoothing_equals_keras_label_smoothing_in_the_loss():
    import tf_keras as keras

    y = np.eye(10, dtype=np.float32)[[3, 1, 7]]
    p = np.random.default_rng(0).dirichlet(np.ones(10), 3).astype(np.float32)
    smoothed = aug.smooth_labels(tf.constant(y), 0.1).numpy()
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0, atol=1e-6)
    assert smoothed.max() == pytest.approx(0.91) and smoothed.min() == pytest.approx(0.01)
    ours = keras.losses.CategoricalCrossentropy()(smoothed, p).numpy()
    theirs = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(y, p).numpy()
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_augment_batch_replays_per_step_and_differs_between_steps():
    config = TrainConfig(mixup_alpha=0.3, freq_masks=2, freq_mask_width=4, time_masks=2,
                         time_mask_width=5, time_shift=3, label_smoothing=0.05)
    x = tf.constant(positive_batch(batch=8))
    y = tf.constant(np.eye(10, dtype=np.float32)[np.arange(8)])
    first = [t.numpy() for t in aug.augment_batch(x, y, 4, config)]
    again = [t.numpy() for t in aug.augment_batch(x, y, 4, config)]
    other = [t.numpy() for t in aug.augment_batch(x, y, 5, config)]
    reseeded = [t.numpy() for t in aug.augment_batch(x, y, 4, config.replace(seed=1))]
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0]) and not np.array_equal(first[0], reseeded[0])
    np.testing.assert_allclose(first[1].sum(axis=1), 1.0, atol=1e-6)
    assert first[1].min() >= 0.05 / 10 - 1e-7  # smoothing floor on every class


def test_an_off_config_changes_nothing():
    x = tf.constant(positive_batch(batch=3))
    y = tf.constant(np.arange(3, dtype=np.int32))
    x_out, y_out = aug.augment_batch(x, y, 0, TrainConfig())
    np.testing.assert_array_equal(x_out.numpy(), x.numpy())
    np.testing.assert_array_equal(y_out.numpy(), y.numpy())
