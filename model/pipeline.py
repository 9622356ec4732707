"""The train loop's in-memory tf.data pipelines (no Ray; TensorFlow is passed in as ``tf``).

Evaluation sets (validation, test) are batched as they are; only the training set is
shuffled, repeated and, when the TrainConfig asks for it, augmented per batch
(``model.augment_tf``). When the config makes soft labels (mixup, label smoothing) every set
``fit`` sees carries one-hot float labels, so one categorical cross-entropy serves training and
validation; the validation labels stay exactly one-hot (hard), the smoothing and mixing happen
to training batches only.
"""

from __future__ import annotations

import numpy as np

from model.config import TrainConfig


def one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) integer classIDs -> (N, classes) float32 one-hot rows."""
    labels = np.asarray(y)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"one_hot: labels must be classIDs in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    return np.eye(num_classes, dtype=np.float32)[labels.astype(np.int64)]


def make_dataset(
    tf,
    x: np.ndarray,
    y: np.ndarray,
    global_batch: int,
    *,
    seed: int,
    train_passes: int = 0,
    config: TrainConfig | None = None,
    num_classes: int | None = None,
    first_step: int = 0,
    prefetch: bool = True,
    autotune: bool = True,
    shard_policy: str = "DATA",
):
    """In-memory tf.data pipeline of *global* batches, sharded per worker by DATA.

    Every worker builds the same pipeline (same seeded order), and the DATA auto-shard
    policy gives each its slice of every global batch. ``train_passes=0``: one pass in
    order, last batch partial (evaluation). ``train_passes=k``: the run's k passes (all its
    epochs), each reshuffled, last partial batch dropped so all workers run the same steps.
    Training runs its epochs through one iterator because fit() otherwise rebuilds the
    distributed iterator (and re-runs the auto-shard rewrite) every epoch, seconds each with
    two workers; a finite k rather than repeat() lets that iterator end cleanly.

    ``first_step``: batches already trained (a resumed run's epoch x steps per epoch). They are
    skipped, not dropped from the count, so a resumed run gets exactly the batches, in the same
    order, that the uninterrupted run got from that step on: the n-th reshuffle is the n-th
    whichever process draws it. Skipping still draws the skipped passes' batches (about a
    memory copy of the training set per skipped epoch, paid once per resume). ``config``: its
    augmentation applies to training batches (numbered from ``first_step`` on, so a resumed run
    draws what the uninterrupted one would have at that step); with soft labels, labels
    become one-hot over ``num_classes`` in every set.

    ``prefetch``, ``autotune`` and ``shard_policy`` (a ``tf.data.experimental.AutoShardPolicy``
    name) are the loop's defaults; the training benchmark changes them one at a time.
    """
    if config is not None and config.soft_labels:
        if not num_classes:
            raise ValueError("make_dataset: soft labels (mixup, label smoothing) need num_classes")
        y = one_hot(y, num_classes)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if train_passes:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(global_batch, drop_remainder=True).repeat(train_passes)
        if first_step:
            ds = ds.skip(first_step)
    else:
        ds = ds.batch(global_batch)
    if x.dtype == np.float16:  # augmented training rows are held as float16: cast per batch
        ds = ds.map(lambda xb, yb: (tf.cast(xb, tf.float32), yb), num_parallel_calls=tf.data.AUTOTUNE)
    if train_passes and config is not None and config.augments_batches:
        from model.augment_tf import augment_batch

        # After the cast: augmentation computes in float32 on training batches only.
        ds = ds.enumerate(start=first_step).map(
            lambda step, batch: augment_batch(batch[0], batch[1], step, config),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(tf.data.experimental.AutoShardPolicy, shard_policy)
    if not autotune:
        options.autotune.enabled = False
    return (ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds).with_options(options)
