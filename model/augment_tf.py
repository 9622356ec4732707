"""On-the-fly augmentation of training batches (pure TensorFlow: no Ray, no Python per sample).

``augment_batch`` is mapped over the *training* dataset's batches by ``model.pipeline`` (never
over validation or test sets): it runs as a traced graph inside tf.data, vectorised over the
batch, on the host CPU (tf.data's device; on GPU workers it overlaps the model's steps through
the prefetch). Inputs are (batch, bands, frames, channels); every op treats channels alike.

Randomness is stateless: batch number ``step`` and ``TrainConfig.seed`` give each batch its
seed, so a pipeline replays exactly (op determinism holds) and every worker of a
multi-worker run draws the same augmentation for the same global batch before taking its
slice. In order:

1. ``time_shift``: each clip rolls circularly along time by s ~ U{-S..S} frames (content at
   frame t moves to t + s mod frames; roll rather than crop + pad: nothing is lost and no
   padding value has to be chosen).
2. SpecAugment (Park et al. 2019; no time warping): per clip, ``freq_masks`` bands of width
   w ~ U{0..F} starting at f0 ~ U{0..bands - w}, and ``time_masks`` likewise along frames,
   set to 0 (after the loop's per-band normalisation 0 is the band's training mean).
3. mixup (Zhang et al. 2018): each clip i is mixed with clip perm[i] of the same batch,
   x = lam x_i + (1 - lam) x_perm[i], y likewise, lam ~ Beta(alpha, alpha) drawn per clip.
4. label smoothing: y = (1 - eps) y + eps / classes (what Keras's ``label_smoothing`` does
   inside the loss; here it stays out of validation losses).

Mixup and smoothing need one-hot float labels (``model.pipeline`` provides them).
"""

from __future__ import annotations

import tensorflow as tf

from model.config import TrainConfig

_SALT = 0x5EED  # keeps augmentation seeds apart from the shuffle's and the model's


def batch_seed(seed: int, step) -> tf.Tensor:
    """The stateless seed (shape [2]) of batch number ``step``."""
    base = tf.constant([seed, _SALT], dtype=tf.int64)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int64))


def draw_spans(batch, count: int, max_width: int, size, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """(starts, widths), each (batch, count) int32: width ~ U{0..max_width},
    start ~ U{0..size - width}."""
    width_seed, start_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    u = tf.random.stateless_uniform([batch, count], seed=width_seed)
    widths = tf.minimum(tf.cast(tf.floor(u * (max_width + 1)), tf.int32), max_width)
    room = tf.cast(size, tf.int32) - widths + 1
    v = tf.random.stateless_uniform([batch, count], seed=start_seed)
    starts = tf.minimum(tf.cast(tf.floor(v * tf.cast(room, tf.float32)), tf.int32), room - 1)
    return starts, widths


def span_mask(starts, widths, size) -> tf.Tensor:
    """(batch, size) bool: True inside any of each row's spans."""
    positions = tf.range(size, dtype=tf.int32)[None, None, :]
    inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])
    return tf.reduce_any(inside, axis=1)


def draw_masks(batch, bands, frames, freq_masks: int, freq_width: int, time_masks: int, time_width: int,
               seed) -> tuple[tf.Tensor, tf.Tensor]:
    """(band_mask (batch, bands), frame_mask (batch, frames)), bool: True where zeroed."""
    freq_seed, time_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    band_mask = tf.zeros([batch, bands], dtype=tf.bool)
    frame_mask = tf.zeros([batch, frames], dtype=tf.bool)
    if freq_masks and freq_width:
        band_mask = span_mask(*draw_spans(batch, freq_masks, freq_width, bands, freq_seed), bands)
    if time_masks and time_width:
        frame_mask = span_mask(*draw_spans(batch, time_masks, time_width, frames, time_seed), frames)
    return band_mask, frame_mask


def apply_masks(x, band_mask, frame_mask) -> tf.Tensor:
    """x with every masked band and every masked frame of each clip set to 0 (all channels)."""
    masked = band_mask[:, :, None] | frame_mask[:, None, :]
    return tf.where(masked[..., None], tf.zeros_like(x), x)


def spec_augment(x, freq_masks: int, freq_width: int, time_masks: int, time_width: int, seed):
    """Zero ``freq_masks`` band spans and ``time_masks`` frame spans of every clip."""
    shape = tf.shape(x)
    masks = draw_masks(shape[0], shape[1], shape[2], freq_masks, freq_width, time_masks, time_width, seed)
    return apply_masks(x, *masks)


def draw_shifts(batch, max_shift: int, seed) -> tf.Tensor:
    """(batch,) int32 shifts ~ U{-max_shift..max_shift}."""
    u = tf.random.stateless_uniform([batch], seed=seed)
    return tf.minimum(tf.cast(tf.floor(u * (2 * max_shift + 1)), tf.int32), 2 * max_shift) - max_shift


def roll_frames(x, shifts) -> tf.Tensor:
    """Clip i rolled along frames (axis 2) by ``shifts[i]``: out[:, :, t] = x[:, :, t - s]."""
    frames = tf.shape(x)[2]
    source = tf.math.floormod(tf.range(frames)[None, :] - shifts[:, None], frames)
    return tf.gather(x, source, axis=2, batch_dims=1)


def time_shift(x, max_shift: int, seed) -> tf.Tensor:
    return roll_frames(x, draw_shifts(tf.shape(x)[0], max_shift, seed))


def draw_mixup(batch, alpha: float, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """(lam, perm): lam (batch,) float32 ~ Beta(alpha, alpha), perm a permutation of the batch."""
    a_seed, b_seed, perm_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    # Beta from two gammas, in float64: small alphas put gamma draws near 0.
    a = tf.random.stateless_gamma([batch], seed=a_seed, alpha=alpha, dtype=tf.float64)
    b = tf.random.stateless_gamma([batch], seed=b_seed, alpha=alpha, dtype=tf.float64)
    total = a + b
    lam = tf.where(total > 0, a / tf.where(total > 0, total, 1.0), 1.0)
    perm = tf.argsort(tf.random.stateless_uniform([batch], seed=perm_seed))
    return tf.cast(lam, tf.float32), perm


def mix(x, y, lam, perm) -> tuple[tf.Tensor, tf.Tensor]:
    """x_i and y_i mixed with the clip at perm[i] in proportions lam_i : 1 - lam_i."""
    lam_x = tf.reshape(lam, [-1] + [1] * (len(x.shape) - 1))
    lam_y = tf.reshape(lam, [-1, 1])
    x_mixed = lam_x * x + (1.0 - lam_x) * tf.gather(x, perm)
    y_mixed = lam_y * y + (1.0 - lam_y) * tf.gather(y, perm)
    return x_mixed, y_mixed


def mixup(x, y, alpha: float, seed) -> tuple[tf.Tensor, tf.Tensor]:
    lam, perm = draw_mixup(tf.shape(x)[0], alpha, seed)
    return mix(x, y, lam, perm)


def smooth_labels(y, epsilon: float) -> tf.Tensor:
    classes = tf.cast(tf.shape(y)[-1], y.dtype)
    return y * (1.0 - epsilon) + epsilon / classes


def augment_batch(x, y, step, config: TrainConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """One training batch through every augmentation ``config`` turns on (module docstring)."""
    shift_seed, mask_seed, mix_seed = tf.unstack(
        tf.random.experimental.stateless_split(batch_seed(config.seed, step), 3)
    )
    if config.time_shift:
        x = time_shift(x, config.time_shift, shift_seed)
    if config.freq_masks or config.time_masks:
        x = spec_augment(
            x, config.freq_masks, config.freq_mask_width, config.time_masks, config.time_mask_width, mask_seed
        )
    if config.mixup_alpha > 0:
        x, y = mixup(x, y, config.mixup_alpha, mix_seed)
    if config.label_smoothing > 0:
        y = smooth_labels(y, config.label_smoothing)
    return x, y
