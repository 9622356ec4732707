"""A fold's trained Keras model logged to MLflow once, however many times it is tried.

MLflow 3 makes a new LoggedModel on every ``log_model`` call, so a write retried after the
tracking server went away mid-upload would leave two models on the run. ``log_keras_model``
first looks for the run's models: a READY one means it is done; PENDING or FAILED ones (an
upload that died) are deleted before the model is logged again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# The models are tf_keras models: TensorFlow must see this before its first import in the
# process (the sweep driver sets it too; a replay process may import TensorFlow here first).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

MODEL_NAME = "model"


def run_models(client: Any, experiment_id: str, run_id: str) -> list[Any]:
    """The LoggedModels named ``model`` whose source is ``run_id`` (deleted ones excluded)."""
    found = client.search_logged_models(experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'")
    return [m for m in found if m.name == MODEL_NAME and m.source_run_id == run_id]


def log_keras_model(client: Any, tracking_uri: str, experiment_id: str, run_id: str, checkpoint_dir: Path) -> None:
    import mlflow
    import tensorflow
    from mlflow.entities import LoggedModelStatus

    from model.checkpoints import load_model

    existing = run_models(client, experiment_id, run_id)
    if any(m.status == LoggedModelStatus.READY for m in existing):
        return
    for half_written in existing:
        client.delete_logged_model(half_written.model_id)
    model = load_model(checkpoint_dir, compile=False)  # for inference: no optimizer state
    if not isinstance(model, tensorflow.keras.Model):
        # TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set (sweep_runner sets
        # it): MLflow would log a bare SavedModel instead of the Keras model.
        raise RuntimeError(
            "tensorflow.keras is not tf_keras in this process: set TF_USE_LEGACY_KERAS=1 "
            "before TensorFlow is imported"
        )
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment_id=experiment_id)  # where the LoggedModel lives
    # run_id, not `with mlflow.start_run(run_id)`: leaving that block would mark the run
    # FINISHED before finish_fold does, and write its end time twice.
    mlflow.tensorflow.log_model(
        model,
        name=MODEL_NAME,
        run_id=run_id,
        # Explicit requirements: inferring them starts a subprocess that imports
        # TensorFlow again, ~10 CPU-seconds per fold on the driver.
        pip_requirements=model_requirements(),
        signature=model_signature(model),
        # tf_keras enables its native .keras format per thread, only in the thread that
        # imported it; on the callback's writer thread a "model.keras" would be HDF5.
        keras_model_kwargs={"save_format": "keras_v3"},
    )


def model_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("tensorflow", "tf-keras", "numpy")]


def model_signature(model: Any) -> Any:
    """float32 (batch, mel bands, frames, 1) in, class probabilities out: serving checks inputs."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def spec(shape: tuple) -> Schema:
        return Schema([TensorSpec(np.dtype(np.float32), (-1, *shape[1:]))])

    return ModelSignature(inputs=spec(model.input_shape), outputs=spec(model.output_shape))
