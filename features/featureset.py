"""The in-memory feature set that extraction produces, the cache stores and training consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureSet:
    """Row-aligned arrays, one row per successfully extracted clip.

    ``features`` is (N, bands, frames) float32; ``labels`` are classIDs 0..9; ``folds`` 1..10;
    ``fs_ids`` the Freesound recording of each clip (grouping key: clips of one recording
    must never be split across train and validation/test); ``file_names`` the CSV's
    ``slice_file_name``.
    """

    features: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    fs_ids: np.ndarray
    file_names: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.features)
        for name in ("labels", "folds", "fs_ids", "file_names"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FeatureSet.{name} has {len(getattr(self, name))} rows, features has {n}")
        if self.features.ndim != 3:
            raise ValueError(f"FeatureSet.features must be (N, bands, frames), got shape {self.features.shape}")

    def __len__(self) -> int:
        return len(self.features)

    def select(self, mask: np.ndarray) -> FeatureSet:
        """Rows where ``mask`` (boolean or integer index) selects."""
        return FeatureSet(
            features=self.features[mask],
            labels=self.labels[mask],
            folds=self.folds[mask],
            fs_ids=self.fs_ids[mask],
            file_names=self.file_names[mask],
        )
