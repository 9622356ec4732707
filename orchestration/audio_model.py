"""The model users run: an MLflow pyfunc that takes audio, not features, and its registration.

Input: a DataFrame with one recording per row, in a ``path`` column (a file the serving process
can read) or an ``audio_base64`` column (the file's bytes, base64: what a REST client sends),
or ``waveform`` (a list of samples) with ``sample_rate``. Output: one row per input with
``top_class``, ``top_probability``, ``prob_<class>`` for every class (the mean over windows),
``windows`` (how many) and ``error`` (empty, or why the recording could not be used). Params:
``hop_seconds`` (window hop; the window is the training clip length) and ``per_window``
(True: also a ``window_predictions`` JSON column with start, end and probabilities per window).

The feature configuration, the training rows' normaliser and the class names are packed inside
(``settings.json`` beside ``model.keras``), and the model ships its own copy of the
``features`` and ``model`` packages (``code_paths``), so prediction computes exactly the
training features wherever the model is loaded.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
INPUT_COLUMNS = ("path", "audio_base64")


class AudioModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from model.predictor import AudioClassifier

        self.classifier = AudioClassifier.from_files(context.artifacts["keras_model"], context.artifacts["settings"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return predict_frame(self.classifier, model_input, params or {})


def _source(row: Mapping[str, Any]) -> str | bytes:
    path, encoded = row.get("path"), row.get("audio_base64")
    if isinstance(encoded, str) and encoded:
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("audio_base64 is not valid base64") from None
    if isinstance(path, str) and path:
        return path
    waveform = row.get("waveform")
    if waveform is not None and row.get("sample_rate"):
        import soundfile as sf

        buffer = io.BytesIO()
        sf.write(buffer, np.asarray(waveform, dtype=np.float32), int(row["sample_rate"]), subtype="FLOAT", format="WAV")
        return buffer.getvalue()
    raise ValueError("no audio: give a path, audio_base64, or waveform with sample_rate")


def predict_frame(classifier: Any, frame: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    """One output row per input row; a row whose audio is unusable gets its reason in ``error``."""
    from features.logmel import AudioDecodeError

    hop = params.get("hop_seconds")
    hop = float(hop) if hop not in (None, 0, 0.0) else None
    names = classifier.class_names
    rows = []
    for index, row in enumerate(frame.to_dict("records")):
        out: dict[str, Any] = {"top_class": None, "top_probability": float("nan"), "windows": 0, "error": ""}
        out.update({f"prob_{n}": float("nan") for n in names})
        try:
            prediction = classifier.classify(_source(row), hop)
        except (AudioDecodeError, ValueError) as exc:
            out["error"] = f"row {index}: {getattr(exc, 'reason', exc)}"
        else:
            best = int(np.argmax(prediction.probabilities))
            out.update(top_class=names[best], top_probability=float(prediction.probabilities[best]),
                       windows=len(prediction.windows))
            out.update({f"prob_{n}": float(p) for n, p in zip(names, prediction.probabilities, strict=True)})
            if params.get("per_window"):
                out["window_predictions"] = json.dumps([
                    {"start": w.start_s, "end": w.end_s, "probabilities": [round(float(p), 6) for p in w.probabilities]}
                    for w in prediction.windows
                ])
        rows.append(out)
    return pd.DataFrame(rows)


def signature(class_names: tuple[str, ...], hop_seconds: float):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("string", name, required=False) for name in INPUT_COLUMNS])
    outputs = Schema([ColSpec("string", "top_class"), ColSpec("double", "top_probability"), ColSpec("long", "windows"),
                      ColSpec("string", "error"), *(ColSpec("double", f"prob_{n}") for n in class_names)])
    params = ParamSchema([ParamSpec("hop_seconds", "double", hop_seconds), ParamSpec("per_window", "boolean", False)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def _example_wav() -> str:
    """A 1-second tone as base64 WAV: the logged input example."""
    import soundfile as sf

    t = np.arange(22_050) / 22_050
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 660 * t)).astype(np.float32), 22_050, subtype="PCM_16", format="WAV")
    return base64.b64encode(buffer.getvalue()).decode()


def log_audio_model(run_id: str, keras_model: Any, settings: Mapping[str, Any]) -> str:
    """Log the pyfunc on ``run_id`` (tracking URI and experiment already set); returns its URI."""
    from mlflow.entities import LoggedModelOutput

    from features.config import FeatureConfig
    from features.windows import window_seconds
    from orchestration.mlflow_model import model_requirements

    hop = window_seconds(FeatureConfig.from_dict(settings["feature_config"])) / 2
    # pyfunc.log_model has no run_id argument, and `with mlflow.start_run(run_id)` would mark the
    # run FINISHED on exit, before the caller has written everything: create the LoggedModel
    # for the run, log into it, and link it as the run's output (the UI's Model column).
    logged = mlflow.initialize_logged_model(name="audio_model", source_run_id=run_id)
    with tempfile.TemporaryDirectory() as tmp:
        keras_path = Path(tmp) / "model.keras"
        keras_model.save(keras_path, save_format="keras_v3")
        settings_path = Path(tmp) / "settings.json"
        settings_path.write_text(json.dumps(settings, indent=1))
        info = mlflow.pyfunc.log_model(
            name="audio_model",
            python_model=AudioModel(),
            artifacts={"keras_model": str(keras_path), "settings": str(settings_path)},
            code_paths=[str(ROOT / "features"), str(ROOT / "model")],
            signature=signature(tuple(settings["class_names"]), hop),
            input_example=pd.DataFrame({"audio_base64": [_example_wav()]}),
            pip_requirements=[*model_requirements(), "soundfile", "soxr", "scipy", "librosa", "scikit-learn", "pandas"],
            model_id=logged.model_id,
        )
    mlflow.MlflowClient().log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return info.model_uri
