"""Optimizers and learning-rate schedules from a TrainConfig (pure tf_keras, no Ray).

- ``optimizer``: ``adam`` (as the reference demo), ``adamw`` (``tf_keras.optimizers.AdamW``:
  decoupled weight decay, ``w -= weight_decay * lr * w`` every step, lr being the scheduled
  rate, as PyTorch's AdamW) or ``sgd`` (``momentum``, optional ``weight_decay``). Biases and
  batch-norm scales/offsets are excluded from weight decay (variable names ``bias``, ``gamma``,
  ``beta``), the usual practice.
- ``lr_schedule``, in optimizer steps (``steps_per_epoch`` x epochs; a step is one global
  batch): ``constant``; ``cosine`` (``tf_keras.optimizers.schedules.CosineDecay``: linear
  warm-up from 0 to ``learning_rate`` over ``warmup_epochs``, then cosine decay to 0 at the
  last epoch); ``onecycle`` (``OneCycle`` below: Smith & Topin 2019 as PyTorch's
  ``OneCycleLR`` with its defaults: cosine rise from ``learning_rate``/25 to
  ``learning_rate`` over ``warmup_epochs``, cosine fall to ``learning_rate``/25e4; no momentum
  cycling).

A schedule is a function of the optimizer's ``iterations`` variable, which checkpoints save
with the other optimizer variables, so a resumed run continues at the step it stopped at.
Under float16 the optimizer is wrapped in a ``LossScaleOptimizer`` (the schedule stays on the
inner optimizer; ``iterations`` is the inner one's, and counts the steps it skips on
non-finite gradients too, so the schedule stays aligned with the epochs).
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf
import tf_keras as keras

from model.config import TrainConfig

NO_WEIGHT_DECAY = ["bias", "gamma", "beta"]
ONECYCLE_DIV = 25.0  # start at peak / 25 (PyTorch OneCycleLR div_factor)
ONECYCLE_FINAL_DIV = 1e4  # end at start / 1e4 (final_div_factor)


@keras.saving.register_keras_serializable(package="us8k")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine rise from ``peak / div`` to ``peak`` over ``warmup_steps``, then cosine fall to
    ``peak / div / final_div`` at ``total_steps`` (held there after)."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int,
                 div: float = ONECYCLE_DIV, final_div: float = ONECYCLE_FINAL_DIV) -> None:
        super().__init__()
        if not 0 < warmup_steps < total_steps:
            raise ValueError(
                f"OneCycle: warmup_steps must be in (0, total_steps={total_steps}), got {warmup_steps}"
            )
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.div = float(div)
        self.final_div = float(final_div)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        start = self.peak / self.div
        end = start / self.final_div
        rise = tf.minimum(step / self.warmup_steps, 1.0)
        fall = tf.clip_by_value(
            (step - self.warmup_steps) / (self.total_steps - self.warmup_steps), 0.0, 1.0
        )
        up = start + (self.peak - start) * 0.5 * (1.0 - tf.cos(math.pi * rise))
        down = end + (self.peak - end) * 0.5 * (1.0 + tf.cos(math.pi * fall))
        return tf.where(step < self.warmup_steps, up, down)

    def get_config(self) -> dict:
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "div": self.div, "final_div": self.final_div}


def learning_rate(config: TrainConfig, steps_per_epoch: int | None, world_size: int = 1):
    """A float (``constant``) or a LearningRateSchedule over ``config.epochs`` epochs, peaking
    at ``config.scaled_learning_rate(world_size)`` (``lr_scaling``)."""
    peak = config.scaled_learning_rate(world_size)
    if config.lr_schedule == "constant":
        return peak
    if not steps_per_epoch or steps_per_epoch < 1:
        raise ValueError(
            f"lr_schedule {config.lr_schedule!r} needs the steps per epoch (a positive integer), "
            f"got {steps_per_epoch!r}"
        )
    total = config.epochs * steps_per_epoch
    warmup = round(config.warmup_epochs * steps_per_epoch)
    if config.lr_schedule == "cosine":
        if warmup == 0:
            return keras.optimizers.schedules.CosineDecay(peak, total)
        return keras.optimizers.schedules.CosineDecay(
            0.0, max(1, total - warmup), warmup_target=peak, warmup_steps=warmup
        )
    return OneCycle(peak, total, min(max(1, warmup), total - 1))


def make_optimizer(
    config: TrainConfig,
    *,
    steps_per_epoch: int | None = None,
    loss_scale: bool = False,
    initial_loss_scale: float | None = None,
    world_size: int = 1,
) -> keras.optimizers.Optimizer:
    """The configured optimizer; wrapped for dynamic loss scaling under float16, starting at
    ``initial_loss_scale`` (a resumed run's saved scale) or Keras's default 2**15.
    ``world_size``: workers in the run, for ``lr_scaling``."""
    rate = learning_rate(config, steps_per_epoch, world_size)
    if config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=rate, beta_1=config.beta_1, beta_2=config.beta_2)
    elif config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(
            learning_rate=rate, weight_decay=config.weight_decay, beta_1=config.beta_1, beta_2=config.beta_2
        )
    else:
        optimizer = keras.optimizers.SGD(
            learning_rate=rate, momentum=config.momentum, weight_decay=config.weight_decay or None
        )
    if optimizer.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    if not loss_scale:
        return optimizer
    if initial_loss_scale is None:
        return keras.mixed_precision.LossScaleOptimizer(optimizer)
    return keras.mixed_precision.LossScaleOptimizer(optimizer, initial_scale=initial_loss_scale)

