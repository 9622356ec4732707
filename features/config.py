"""Feature-extraction configuration: one frozen dataclass, serialisable to and from a dict."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from features.configbase import from_dict_strict

Recipe = Literal["seed", "corrected"]
Kind = Literal["logmel", "mfcc"]


@dataclass(frozen=True)
class FeatureConfig:
    """How a clip becomes a (n_mels, frames) float32 matrix.

    ``recipe="seed"`` reproduces the reference Keras demo exactly, quirks included:
    ``amplitude_to_db`` applied to a *power* mel spectrogram (so dB values are doubled) and
    ``librosa.util.normalize`` along axis 0, which scales every frame (column) to a peak of 1.
    ``recipe="corrected"`` uses ``power_to_db`` and scales the whole clip to a peak of 1.
    ``deltas`` 1 or 2 adds delta (and delta-delta) channels (``librosa.feature.delta``, as
    Piczak's network uses), stacked along the band axis in storage (``(1 + deltas) * bands``
    rows) and reshaped into input channels by the model layer.
    """

    sample_rate: int = 22_050
    n_fft: int = 2_048
    hop_length: int = 512
    n_mels: int = 40
    frames: int = 174
    kind: Kind = "logmel"
    recipe: Recipe = "seed"
    n_mfcc: int = 40
    deltas: int = 0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "frames", "n_mfcc"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"FeatureConfig.{name} must be a positive integer, got {value!r}")
        if self.kind not in ("logmel", "mfcc"):
            raise ValueError(f"FeatureConfig.kind must be 'logmel' or 'mfcc', got {self.kind!r}")
        if self.recipe not in ("seed", "corrected"):
            raise ValueError(f"FeatureConfig.recipe must be 'seed' or 'corrected', got {self.recipe!r}")
        if self.deltas not in (0, 1, 2) or isinstance(self.deltas, bool):
            raise ValueError(f"FeatureConfig.deltas must be 0, 1 or 2, got {self.deltas!r}")
        if self.hop_length > self.n_fft:
            raise ValueError("FeatureConfig.hop_length must not exceed n_fft")

    @property
    def bands(self) -> int:
        """Rows of the feature matrix: mel bands, or MFCC coefficients."""
        return self.n_mels if self.kind == "logmel" else self.n_mfcc

    @property
    def channels(self) -> int:
        """Input channels: the features, plus their deltas and delta-deltas if asked for."""
        return 1 + self.deltas

    @property
    def shape(self) -> tuple[int, int]:
        """One clip's stored matrix: ``channels`` blocks of ``bands`` rows, then frames."""
        return (self.channels * self.bands, self.frames)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        return from_dict_strict(cls, data)

    def digest(self) -> str:
        """Stable short hash of every field, part of the feature-cache key. ``deltas=0`` is left
        out, so configs from before the field existed keep their digest (and cache)."""
        data = self.to_dict()
        if not data["deltas"]:
            del data["deltas"]
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
