"""Classify recordings with a trained fold or refit model: audio in, class probabilities out.

``AudioClassifier`` holds what prediction needs to compute exactly the training features: the
tf_keras model, the ``FeatureConfig`` the sweep extracted with, the training rows' per-band
normaliser and the class names. A recording is cut into windows of the training clip length
(``features.windows``); each window's probabilities come from the model, and the recording's
are their mean. No Ray; TensorFlow is imported when a model is loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from features.config import FeatureConfig
from features.logmel import AudioSource
from features.windows import iter_windows
from model.data import Normaliser, apply_normaliser, as_model_input

BATCH = 64  # windows per model call: bounded memory on hour-long recordings


@dataclass(frozen=True)
class WindowPrediction:
    start_s: float
    end_s: float
    probabilities: np.ndarray


@dataclass(frozen=True)
class ClipPrediction:
    probabilities: np.ndarray  # mean over the windows
    windows: tuple[WindowPrediction, ...]

    def top(self, class_names: Sequence[str], k: int = 3) -> list[tuple[str, float]]:
        order = np.argsort(-self.probabilities)[:k]
        return [(class_names[i], float(self.probabilities[i])) for i in order]


class AudioClassifier:
    def __init__(self, model: Any, feature_config: FeatureConfig, normaliser: Normaliser, class_names: Sequence[str]):
        self.model = model
        self.feature_config = feature_config
        self.normaliser = normaliser
        self.class_names = tuple(class_names)
        outputs = int(model.output_shape[-1])
        if outputs != len(self.class_names):
            raise ValueError(f"the model has {outputs} outputs but {len(self.class_names)} class names were given")

    def settings(self) -> dict[str, Any]:
        """Everything but the network: what ``from_files`` reads back."""
        return {"feature_config": self.feature_config.to_dict(), "normaliser": self.normaliser.to_dict(),
                "class_names": list(self.class_names)}

    @classmethod
    def from_files(cls, keras_model: str | os.PathLike, settings: str | os.PathLike | dict[str, Any]) -> AudioClassifier:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        import tf_keras as keras

        data = settings if isinstance(settings, dict) else json.loads(Path(settings).read_text())
        return cls(keras.models.load_model(keras_model, compile=False), FeatureConfig.from_dict(data["feature_config"]),
                   Normaliser.from_dict(data["normaliser"]), data["class_names"])

    def classify(self, source: AudioSource, hop_s: float | None = None) -> ClipPrediction:
        """Probabilities per window and their mean. Raises AudioDecodeError for unusable audio."""
        windows: list[WindowPrediction] = []
        batch: list[tuple[float, float, np.ndarray]] = []
        for window in iter_windows(source, self.feature_config, hop_s):
            batch.append((window.start_s, window.end_s, window.features))
            if len(batch) == BATCH:
                windows += self._predict(batch)
                batch = []
        if batch:
            windows += self._predict(batch)
        mean = np.mean([w.probabilities for w in windows], axis=0)
        return ClipPrediction(mean.astype(np.float32), tuple(windows))

    def _predict(self, batch: list[tuple[float, float, np.ndarray]]) -> list[WindowPrediction]:
        x = self.model_input(np.stack([f for _, _, f in batch]))
        # predict_on_batch, not predict: predict builds a new data iterator per call, and its memory
        # grew ~2 MB per call here (+77 MB over the 28 calls of an hour-long recording).
        probabilities = np.asarray(self.model.predict_on_batch(x), dtype=np.float32)
        return [WindowPrediction(s, e, p) for (s, e, _), p in zip(batch, probabilities, strict=True)]

    def model_input(self, features: np.ndarray) -> np.ndarray:
        """Stored (N, channels x bands, frames) features -> normalised (N, bands, frames, channels):
        the same steps as training (``model.data.prepare_fold``)."""
        return as_model_input(apply_normaliser(features, self.normaliser), self.feature_config.channels)

    def probabilities_of_features(self, features: np.ndarray) -> np.ndarray:
        """Probabilities of cached (N, rows, frames) features: the fold model's own view."""
        x = self.model_input(features)
        return np.asarray(self.model.predict(x, batch_size=256, verbose=0), dtype=np.float32)
