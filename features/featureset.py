"""The in-memory feature set that extraction produces, the cache stores and training consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_META = ("labels", "folds", "fs_ids", "file_names")


@dataclass(frozen=True)
class AugmentedRows:
    """Augmented variants of clips: candidates for training rows only (``model.data`` decides).

    One row per (source clip, variant). ``features`` is (M, rows, frames), float16 by default
    (``AugmentConfig.storage``); ``labels``, ``folds``, ``fs_ids`` and ``file_names`` are the
    *source clip's*; ``augmentation`` names the variant (``features.augment.variants``);
    ``mixed_with`` is the file name of the clip whose audio was mixed in as background noise,
    or "" (its recording must not be a validation or test clip of a trial either).
    """

    features: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    fs_ids: np.ndarray
    file_names: np.ndarray
    augmentation: np.ndarray
    mixed_with: np.ndarray

    def __post_init__(self) -> None:
        _check_rows(self, (*_META, "augmentation", "mixed_with"), "AugmentedRows")

    def __len__(self) -> int:
        return len(self.features)

    def select(self, mask: np.ndarray) -> AugmentedRows:
        return AugmentedRows(**{name: getattr(self, name)[mask] for name in AUGMENTED_ARRAYS})


AUGMENTED_ARRAYS = ("features", *_META, "augmentation", "mixed_with")


@dataclass(frozen=True)
class FeatureSet:
    """Row-aligned arrays, one row per successfully extracted clip.

    ``features`` is (N, rows, frames) float32 with ``rows = channels * bands`` (``channels`` > 1
    with delta features: the blocks are stacked along axis 1); ``labels`` are classIDs 0..9;
    ``folds`` 1..10; ``fs_ids`` the Freesound recording of each clip (grouping key: clips of
    one recording must never be split across train and validation/test); ``file_names`` the
    CSV's ``slice_file_name``. ``augmented``: variants of these clips (``AugmentedRows``), or
    None (no augmentation: every row above is an original clip).
    """

    features: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    fs_ids: np.ndarray
    file_names: np.ndarray
    channels: int = 1
    augmented: AugmentedRows | None = None

    def __post_init__(self) -> None:
        _check_rows(self, _META, "FeatureSet")
        if not isinstance(self.channels, int) or self.channels < 1 or self.features.shape[1] % self.channels:
            raise ValueError(
                f"FeatureSet: {self.features.shape[1]} rows per clip cannot be {self.channels!r} channel(s)"
            )
        if self.augmented is not None and self.augmented.features.shape[1:] != self.features.shape[1:]:
            raise ValueError(
                f"FeatureSet: augmented rows are {self.augmented.features.shape[1:]}, "
                f"originals {self.features.shape[1:]}"
            )

    def __len__(self) -> int:
        return len(self.features)

    def select(self, mask: np.ndarray) -> FeatureSet:
        """Rows where ``mask`` (boolean or integer index) selects; augmented rows follow their
        source clips."""
        picked = {name: getattr(self, name)[mask] for name in ("features", *_META)}
        augmented = self.augmented
        if augmented is not None:
            augmented = augmented.select(np.isin(augmented.file_names, picked["file_names"]))
        return FeatureSet(**picked, channels=self.channels, augmented=augmented)


def _check_rows(obj, names: tuple[str, ...], label: str) -> None:
    n = len(obj.features)
    for name in names:
        if len(getattr(obj, name)) != n:
            raise ValueError(f"{label}.{name} has {len(getattr(obj, name))} rows, features has {n}")
    if obj.features.ndim != 3:
        raise ValueError(f"{label}.features must be (N, rows, frames), got shape {obj.features.shape}")
