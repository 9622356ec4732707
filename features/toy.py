"""A tiny, learnable FeatureSet (no audio, no extraction) for tests and training benchmarks.

Every class has its own spectro-temporal signature: a band of energy at a class-specific
mel position, steady for even classIDs and pulsed (class-specific period) for odd ones.
Each recording (fsID) adds its own gain and a one-band shift, and every clip adds noise, so
clips of one recording resemble each other more than clips of other recordings.
"""

from __future__ import annotations

import numpy as np

from features.featureset import FeatureSet
from features.us8k import FOLDS, NUM_CLASSES


def make_toy_featureset(
    *,
    bands: int = 40,
    frames: int = 174,
    recordings_per_class_per_fold: int = 2,
    max_clips_per_recording: int = 2,
    noise: float = 0.5,
    seed: int = 0,
) -> FeatureSet:
    """About 300 clips (10 classes x 10 folds x 2 recordings x 1-2 clips), seeded."""
    if frames < 12:  # four 3x3 convolutions and a 2x2 pool need at least this many
        raise ValueError(f"frames must be >= 12, got {frames}")
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    labels: list[int] = []
    folds: list[int] = []
    fs_ids: list[int] = []
    names: list[str] = []
    fs_id = 1000
    for fold in FOLDS:
        for cls in range(NUM_CLASSES):
            for _ in range(recordings_per_class_per_fold):
                fs_id += 1
                gain = rng.uniform(0.8, 1.2)
                shift = int(rng.integers(-1, 2))
                for slice_id in range(int(rng.integers(1, max_clips_per_recording + 1))):
                    pattern = class_pattern(
                        cls, bands, frames, shift=shift, phase=int(rng.integers(0, 8))
                    )
                    clip = gain * pattern + noise * rng.standard_normal((bands, frames))
                    rows.append((20.0 * clip - 40.0).astype(np.float32))  # dB-like range
                    labels.append(cls)
                    folds.append(fold)
                    fs_ids.append(fs_id)
                    names.append(f"{fs_id}-{cls}-0-{slice_id}.wav")
    return FeatureSet(
        features=np.stack(rows),
        labels=np.asarray(labels, dtype=np.int64),
        folds=np.asarray(folds, dtype=np.int64),
        fs_ids=np.asarray(fs_ids, dtype=np.int64),
        file_names=np.asarray(names),
    )


def class_pattern(
    cls: int, bands: int, frames: int, *, shift: int = 0, phase: int = 0
) -> np.ndarray:
    """(bands, frames) signature of ``cls``: a 3-band stripe, steady or pulsed."""
    pattern = np.zeros((bands, frames))
    centre = round(2 + cls * (bands - 5) / (NUM_CLASSES - 1)) + shift
    lo, hi = max(0, centre - 1), min(bands, centre + 2)
    if cls % 2 == 0:
        envelope = np.ones(frames)
    else:
        period = 4 + cls // 2  # 4..8 frames
        envelope = (((np.arange(frames) + phase) % period) < period // 2).astype(float)
    pattern[lo:hi, :] = envelope
    return pattern
