"""Honest evaluation protocol helpers (pure numpy): fold split, grouped validation, normaliser.

Protocol: the held-out fold is the test set and is touched only by the final evaluation.
Validation is carved out of the *training* folds by recording (fsID), so clips of one
recording never sit on both sides, and normalisation statistics come from training rows
only. Nothing here reads the test fold's features or fsIDs, so changing them cannot change
the split or the statistics.

Augmented rows (``FeatureSet.augmented``, variants made offline by ``features.augment``) are
training rows only: the split is made on the original clips alone, exactly as without
augmentation, and a variant joins a trial's training rows only when its source clip, and the
clip mixed into it as background noise if any, are training clips of that trial. No variant of
a validation or test clip ever enters training, validation or test; validation and test are
original clips; the normaliser is fitted on the original training rows only, so augmented
rows cannot move it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from features.featureset import FeatureSet
from model.config import TrainConfig

_STD_FLOOR = 1e-6
_CHUNK_ROWS = 1024


@dataclass(frozen=True)
class FoldSplit:
    """Row indices into the FeatureSet, each sorted ascending; ``train_augmented`` indexes
    ``FeatureSet.augmented`` (the variants that may join training)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_augmented: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def split_fold(featureset: FeatureSet, test_fold: int | None, val_fraction: float, seed: int) -> FoldSplit:
    """Test = every clip of ``test_fold``; validation = whole recordings from the other folds.

    ``test_fold=None`` is the refit of a chosen configuration: every fold trains (validation
    still whole recordings, as in a fold run) and there is no test set.

    Recordings are assigned a class (their clips' majority label); per class, recordings are
    shuffled with ``seed`` and moved to validation while that brings the class's validation
    clip count closer to ``val_fraction`` of its training-fold clips. Classes with a single
    recording keep it in training.
    """
    folds = np.asarray(featureset.folds)
    if test_fold is not None and test_fold not in set(folds.tolist()):
        raise ValueError(
            f"split_fold: test fold {test_fold} has no clips (folds present: {sorted(set(folds.tolist()))})"
        )
    if not 0 < val_fraction < 1:
        raise ValueError(f"split_fold: val_fraction must be in (0, 1), got {val_fraction!r}")
    test = np.flatnonzero(folds == test_fold) if test_fold is not None else np.zeros(0, np.int64)
    pool = np.flatnonzero(folds != test_fold) if test_fold is not None else np.arange(len(folds))
    if len(pool) == 0:
        raise ValueError(f"split_fold: no training clips outside test fold {test_fold}")
    in_val = _grouped_val_mask(
        np.asarray(featureset.labels)[pool], np.asarray(featureset.fs_ids)[pool], val_fraction, seed
    )
    if not in_val.any():
        raise ValueError(
            f"split_fold: validation is empty for test fold {test_fold} (val_fraction={val_fraction}); "
            "every class has a single recording or recordings too large for the fraction"
        )
    train = pool[~in_val]
    return FoldSplit(train=train, val=pool[in_val], test=test,
                     train_augmented=augmented_training_rows(featureset, train))


def augmented_training_rows(featureset: FeatureSet, train: np.ndarray) -> np.ndarray:
    """Indices of the augmented rows whose source clip, and background-noise clip if any, are
    among the original rows ``train``: the only variants a trial may train on."""
    augmented = featureset.augmented
    if augmented is None or len(augmented) == 0:
        return np.zeros(0, np.int64)
    names = np.asarray(featureset.file_names)
    if len(np.unique(names)) != len(names):
        raise ValueError("split_fold: file names of the original clips are not unique; augmented rows "
                         "are matched to their source clips by file name")
    allowed = names[train]
    ok = np.isin(augmented.file_names, allowed)
    mixed = np.asarray(augmented.mixed_with)
    ok &= (mixed == "") | np.isin(mixed, allowed)
    return np.flatnonzero(ok)


def _grouped_val_mask(
    labels: np.ndarray, groups: np.ndarray, val_fraction: float, seed: int
) -> np.ndarray:
    """Boolean mask over the pool rows: True where the row's recording goes to validation."""
    rng = np.random.default_rng(seed)
    unique_groups, group_of_row = np.unique(groups, return_inverse=True)
    group_sizes = np.bincount(group_of_row, minlength=len(unique_groups))
    group_class = _majority_label(labels, group_of_row, len(unique_groups))
    val_groups = np.zeros(len(unique_groups), dtype=bool)
    for cls in np.unique(group_class):
        members = np.flatnonzero(group_class == cls)
        if len(members) < 2:
            continue
        target = val_fraction * group_sizes[members].sum()
        taken = 0
        for g in rng.permutation(members)[:-1]:  # always leave one recording for training
            if abs(taken + group_sizes[g] - target) < abs(taken - target):
                val_groups[g] = True
                taken += group_sizes[g]
    return val_groups[group_of_row]


def _majority_label(labels: np.ndarray, group_of_row: np.ndarray, n_groups: int) -> np.ndarray:
    labels = labels.astype(np.int64)
    counts = np.zeros((n_groups, int(labels.max()) + 1), dtype=np.int64)
    np.add.at(counts, (group_of_row, labels), 1)
    return counts.argmax(axis=1)  # ties go to the lowest classID, deterministically


@dataclass(frozen=True)
class Normaliser:
    """Per-band standardisation: ``(x - mean[band]) / std[band]``."""

    mean: np.ndarray
    std: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normaliser:
        unknown = sorted(set(data) - {"mean", "std"})
        if unknown or "mean" not in data or "std" not in data:
            raise ValueError(f"Normaliser: expected keys mean, std; got {sorted(data)}")
        mean = np.asarray(data["mean"], dtype=np.float32)
        std = np.asarray(data["std"], dtype=np.float32)
        if mean.shape != std.shape or mean.ndim != 1:
            raise ValueError(
                f"Normaliser: mean {mean.shape} and std {std.shape} must be equal 1-D shapes"
            )
        return cls(mean=mean, std=std)

    @classmethod
    def identity(cls, bands: int) -> Normaliser:
        return cls(mean=np.zeros(bands, np.float32), std=np.ones(bands, np.float32))


def fit_normaliser(train_features: np.ndarray) -> Normaliser:
    """Mean/std per band (axis 1) over training rows and frames, accumulated in float64."""
    x = np.asarray(train_features)
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(
            f"fit_normaliser: expected non-empty (N, bands, frames), got shape {x.shape}"
        )
    count = x.shape[0] * x.shape[2]
    mean = np.zeros(x.shape[1], np.float64)
    for start in range(0, len(x), _CHUNK_ROWS):
        mean += x[start : start + _CHUNK_ROWS].sum(axis=(0, 2), dtype=np.float64)
    mean /= count
    sq = np.zeros(x.shape[1], np.float64)
    for start in range(0, len(x), _CHUNK_ROWS):
        dev = x[start : start + _CHUNK_ROWS].astype(np.float64) - mean[None, :, None]
        sq += np.square(dev).sum(axis=(0, 2))
    std = np.maximum(np.sqrt(sq / count), _STD_FLOOR)
    return Normaliser(mean=mean.astype(np.float32), std=std.astype(np.float32))


def apply_normaliser(features: np.ndarray, normaliser: Normaliser) -> np.ndarray:
    """Standardised float32 copy of (N, bands, frames) ``features``."""
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 3 or x.shape[1] != len(normaliser.mean):
        raise ValueError(
            f"apply_normaliser: features shape {x.shape} does not match {len(normaliser.mean)} bands"
        )
    return (x - normaliser.mean[None, :, None]) / normaliser.std[None, :, None]


def as_model_input(features: np.ndarray, channels: int = 1, dtype: Any = np.float32) -> np.ndarray:
    """(N, channels x bands, frames) -> (N, bands, frames, channels): the CNN's input.

    Delta features (``FeatureConfig.deltas``) are stored as ``channels`` blocks of rows; here
    they become input channels, in order (features, delta, delta-delta).
    """
    x = np.asarray(features, dtype=dtype)
    if channels == 1:
        return x[..., np.newaxis]
    n, rows, frames = x.shape
    if rows % channels:
        raise ValueError(f"as_model_input: {rows} rows per clip cannot be {channels} channels")
    return np.ascontiguousarray(x.reshape(n, channels, rows // channels, frames).transpose(0, 2, 3, 1))


@dataclass(frozen=True)
class PreparedFold:
    split: FoldSplit
    normaliser: Normaliser
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


def prepare_fold(featureset: FeatureSet, test_fold: int | None, config: TrainConfig) -> PreparedFold:
    """Split, fit the normaliser on the original training rows only, and build the model inputs.

    With augmented rows, ``x_train`` is the original training rows followed by the variants
    allowed in training (``FoldSplit.train_augmented``), built chunk by chunk in the augmented
    rows' storage dtype (float16 by default: half the memory; the input pipeline casts each
    batch to float32), so no float32 copy of all augmented rows is ever made.
    """
    split = split_fold(featureset, test_fold, config.val_fraction, config.seed)
    bands = featureset.features.shape[1]
    train_features = featureset.features[split.train]
    normaliser = fit_normaliser(train_features) if config.normalise else Normaliser.identity(bands)
    channels = featureset.channels

    def inputs(rows: np.ndarray) -> np.ndarray:
        return as_model_input(apply_normaliser(featureset.features[rows], normaliser), channels)

    labels = np.asarray(featureset.labels, dtype=np.int32)
    x_train, y_train = inputs(split.train), labels[split.train]
    if len(split.train_augmented):
        augmented = featureset.augmented
        x_train = _stack_inputs(x_train, augmented.features, split.train_augmented, normaliser, channels)
        y_train = np.concatenate([y_train, np.asarray(augmented.labels, np.int32)[split.train_augmented]])
    return PreparedFold(
        split=split,
        normaliser=normaliser,
        x_train=x_train,
        y_train=y_train,
        x_val=inputs(split.val),
        y_val=labels[split.val],
        x_test=inputs(split.test),
        y_test=labels[split.test],
    )


def _stack_inputs(
    originals: np.ndarray, features: np.ndarray, rows: np.ndarray, normaliser: Normaliser, channels: int
) -> np.ndarray:
    """``originals`` then the normalised ``features[rows]``, in ``features``' dtype, chunk by chunk."""
    dtype = features.dtype if features.dtype == np.float16 else np.float32
    out = np.empty((len(originals) + len(rows), *originals.shape[1:]), dtype)
    out[: len(originals)] = originals
    for start in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[start : start + _CHUNK_ROWS]
        at = len(originals) + start
        out[at : at + len(chunk)] = as_model_input(apply_normaliser(features[chunk], normaliser), channels)
    return out
