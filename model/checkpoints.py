"""A fold run's checkpoints: what is saved, how a resumed attempt reads it back, the final model.

Checkpoint directory layout (written by rank 0 only):
  state.json        epoch counter, best-so-far, history, normaliser, configs, loss scale
  weights.npz       current model weights (w0000, w0001, ... in model.get_weights() order)
  optimizer.npz     optimizer variables (Adam's moments and iteration count)
  best_weights.npz  weights of the best val_loss epoch
  model.keras       final checkpoint only: best-epoch model, loadable with tf_keras
  report.json       final checkpoint only: test-fold classification report + summary

Only public tf_keras APIs: under mixed precision the dynamic loss scale is saved as its value
and counter (``LossScaleOptimizer.loss_scale`` / ``dynamic_counter``) and a resumed attempt
builds its optimizer with that ``initial_scale``, so it does not restart from 2**15 and skip
steps re-finding it. TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "state.json"
WEIGHTS_FILE = "weights.npz"
OPTIMIZER_FILE = "optimizer.npz"
BEST_WEIGHTS_FILE = "best_weights.npz"
MODEL_FILE = "model.keras"
REPORT_FILE = "report.json"


@dataclass
class TrainState:
    """Everything besides tensors that a resumed run needs; JSON round-trips via asdict."""

    epoch: int = 0  # epochs completed
    best_epoch: int = 0
    best_val_loss: float = math.inf
    epochs_since_best: int = 0
    stopped_early: bool = False
    attempt_start_epochs: list[int] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # JSON has no infinity; None means "no validated epoch yet".
        data["best_val_loss"] = None if math.isinf(self.best_val_loss) else self.best_val_loss
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainState:
        data = dict(data)
        if data.get("best_val_loss") is None:
            data["best_val_loss"] = math.inf
        return cls(**data)


@dataclass
class Resumed:
    """What a checkpoint gives a new attempt (``None`` fields: not in the checkpoint)."""

    state: TrainState
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    best_weights: list[np.ndarray] | None
    loss_scale: dict[str, float] | None
    where: str


def save_arrays(path: Path, arrays: list[np.ndarray]) -> None:
    np.savez(path, **{f"w{i:04d}": a for i, a in enumerate(arrays)})


def load_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files)]


def optimizer_values(optimizer: Any) -> list[np.ndarray]:
    return [np.asarray(v.numpy()) for v in optimizer.variables]


def loss_scale_state(optimizer: Any) -> dict[str, float | int] | None:
    """Value and counter of a dynamic loss scale (mixed precision), else None."""
    if not getattr(optimizer, "dynamic", False):
        return None
    return {"scale": float(optimizer.loss_scale), "counter": int(optimizer.dynamic_counter)}


def write_checkpoint(
    directory: Path,
    state: TrainState,
    arrays: Mapping[str, list[np.ndarray] | None],
    extras: Mapping[str, Any],
) -> None:
    """``arrays``: file name -> arrays (None: not written); state.json holds state + extras."""
    for name, values in arrays.items():
        if values is not None:
            save_arrays(directory / name, values)
    (directory / STATE_FILE).write_text(json.dumps({"state": state.to_json(), **extras}, indent=1))


def staging_directory(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def read_resumed(checkpoint: Any, train_config_dict: dict[str, Any]) -> Resumed | None:
    """The attempt's starting point from ``checkpoint`` (the session's ``get_checkpoint()``), or
    None (fresh start)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as tmp:
        directory = Path(tmp)
        payload = json.loads((directory / STATE_FILE).read_text())
        saved_config = payload.get("train_config")
        if saved_config is not None and saved_config != train_config_dict:
            raise ValueError(
                f"checkpoint {checkpoint.path}: it was written with a different TrainConfig "
                f"({saved_config}) than this run's ({train_config_dict})"
            )
        best_path = directory / BEST_WEIGHTS_FILE
        return Resumed(
            state=TrainState.from_json(payload["state"]),
            weights=load_arrays(directory / WEIGHTS_FILE),
            optimizer=load_arrays(directory / OPTIMIZER_FILE),
            best_weights=load_arrays(best_path) if best_path.exists() else None,
            loss_scale=payload.get("loss_scale"),
            where=str(checkpoint.path),
        )


def restore_into(model: Any, resumed: Resumed) -> None:
    """Weights, optimizer variables and loss-scale counter of ``resumed`` into a built model."""
    model.set_weights(resumed.weights)
    variables = list(model.optimizer.variables)
    if len(variables) != len(resumed.optimizer):
        raise ValueError(
            f"checkpoint {resumed.where}: {len(resumed.optimizer)} optimizer arrays saved, "
            f"the optimizer has {len(variables)} variables"
        )
    for variable, value in zip(variables, resumed.optimizer, strict=True):
        if tuple(variable.shape) != value.shape:
            raise ValueError(
                f"checkpoint {resumed.where}: optimizer variable {variable.name} has shape "
                f"{tuple(variable.shape)}, saved array has {value.shape}"
            )
        variable.assign(value)
    if resumed.loss_scale and getattr(model.optimizer, "dynamic", False):
        model.optimizer.dynamic_counter.assign(int(resumed.loss_scale["counter"]))


def load_report(checkpoint_dir: str | os.PathLike) -> dict[str, Any]:
    """The final checkpoint's report.json (test-fold report, history, summary)."""
    path = Path(checkpoint_dir) / REPORT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a final checkpoint (no {REPORT_FILE})")
    return json.loads(path.read_text())


def load_model(checkpoint_dir: str | os.PathLike, *, compile: bool = True):
    """The final checkpoint's best-epoch model (tf_keras; compiled unless ``compile=False``)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras as keras

    path = Path(checkpoint_dir) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a final checkpoint (no {MODEL_FILE})")
    return keras.models.load_model(path, compile=compile)
