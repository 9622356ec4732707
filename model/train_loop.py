"""Per-worker training function for ``ray.train.tensorflow.TensorflowTrainer`` (Ray Train V2).

One fold: split (test fold held out, grouped validation from the training folds), normalise
with training-only statistics, train the CNN under MultiWorkerMirroredStrategy, report every
epoch, checkpoint, stop early, then evaluate the test fold once with the best-epoch weights.

Checkpoint directory layout (written by rank 0 only):
  state.json        epoch counter, best-so-far, history, normaliser, configs
  weights.npz       current model weights (w0000, w0001, ... in model.get_weights() order)
  optimizer.npz     optimizer variables (+ dynamic loss scale under mixed precision)
  best_weights.npz  weights of the best val_loss epoch
  model.keras       final checkpoint only: best-epoch model, loadable with tf_keras
  report.json       final checkpoint only: test-fold classification report + summary

Reports: every worker calls ``ray.train.report`` once per epoch (V2 treats it as a barrier)
with rank 0's numbers (broadcast), and only rank 0 attaches checkpoints; Ray keeps rank 0's
metrics. Per epoch: epoch, loss, accuracy, val_loss, val_accuracy, epoch_seconds,
samples_per_second (training phase, all workers together), best_epoch, best_val_loss. The
final report repeats those keys with the *best* epoch's values (epoch = epochs trained) and
adds final=1, test_loss, test_accuracy, test_macro_f1/precision/recall, epochs_trained and
resumes (attempts that resumed from a checkpoint); V2's Result.metrics is that report.

Resuming (``ray.train.get_checkpoint()``) restores weights, optimizer state, best-so-far and
the epoch counter, and continues with the next epoch. The shuffle order and dropout masks
after a resume are seeded but not those of an uninterrupted run.

TensorFlow is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.train
from ray.train.collective import broadcast_from_rank_zero

from features.featureset import FeatureSet
from features.us8k import CLASS_NAMES
from model.config import TrainConfig
from model.data import (
    FoldSplit,
    Normaliser,
    apply_normaliser,
    as_model_input,
    fit_normaliser,
    split_fold,
)
from model.metrics import classification_report

# Test-only failure hook: world rank 1 exits hard at the start of this (1-based) epoch,
# once: the marker file records that the failure already happened.
ENV_FAIL_AT_EPOCH = "US8K_FAIL_AT_EPOCH"
ENV_FAIL_MARKER = "US8K_FAIL_MARKER"

STATE_FILE = "state.json"
WEIGHTS_FILE = "weights.npz"
OPTIMIZER_FILE = "optimizer.npz"
BEST_WEIGHTS_FILE = "best_weights.npz"
MODEL_FILE = "model.keras"
REPORT_FILE = "report.json"

EPOCH_METRIC_KEYS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "epoch_seconds",
    "samples_per_second",
    "best_epoch",
    "best_val_loss",
)

_LOOP_KEYS = ("features", "test_fold", "train_config", "use_gpu", "intra_op_threads", "class_names")


def make_loop_config(
    features: Any,
    test_fold: int,
    train_config: TrainConfig,
    *,
    use_gpu: bool = False,
    intra_op_threads: int | None = None,
    class_names: tuple[str, ...] = CLASS_NAMES,
) -> dict[str, Any]:
    """The ``train_loop_config`` dict: ``features`` is an ObjectRef to a FeatureSet (or one)."""
    return {
        "features": features,
        "test_fold": int(test_fold),
        "train_config": train_config.to_dict(),
        "use_gpu": bool(use_gpu),
        "intra_op_threads": intra_op_threads,
        "class_names": list(class_names),
    }


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


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point; every worker runs it with the same ``config``."""
    timer = _PhaseTimer()
    _staged.clear()  # a previous run's final checkpoint in this process belongs to its caller
    settings = _parse_loop_config(config)
    train_config = TrainConfig.from_dict(settings["train_config"])
    tf, keras = _import_tensorflow(settings["intra_op_threads"], train_config)
    strategy = _make_strategy(tf)
    timer.mark("tensorflow_and_strategy")

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    features = _resolve_features(settings["features"])
    fold = _prepare_fold(features, settings["test_fold"], train_config)
    model = _build_model(strategy, fold, settings, train_config)
    state, best_weights = _restore_or_start(model, train_config)
    state.attempt_start_epochs.append(state.epoch)
    timer.mark("data_model_restore")

    if state.epoch < train_config.epochs and not state.stopped_early:
        best_weights = _fit(
            tf, keras, model, fold, state, best_weights, settings, train_config, rank, world_size
        )
    timer.mark("fit")
    _finish(model, state, best_weights, fold, settings, train_config, rank, world_size, timer)


def _fit(tf, keras, model, fold, state, best_weights, settings, train_config, rank, world_size):
    """Train the remaining epochs; returns the best-epoch weights (None if never validated)."""
    global_batch = train_config.batch_size * world_size
    steps = len(fold.y_train) // global_batch
    remaining = train_config.epochs - state.epoch
    train_ds, val_ds = _make_datasets(
        tf, fold, global_batch, train_config, settings["test_fold"], remaining
    )
    reporter = _EpochReporter(
        model=model,
        state=state,
        best_weights=best_weights,
        rank=rank,
        train_config=train_config,
        snapshot=lambda: _snapshot_extras(settings, fold, train_config, world_size),
        samples_per_epoch=steps * global_batch,
    )
    with _no_autotune_threads():
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=train_config.epochs,
            initial_epoch=state.epoch,
            steps_per_epoch=steps,
            callbacks=[reporter.as_callback(keras)],
            verbose=0,
        )
    return reporter.best_weights


@contextlib.contextmanager
def _no_autotune_threads():
    """Iterators created inside get no tf.data autotune thread (tf.data debug mode).

    Why: destroying an iterator joins its autotune thread, and that thread can miss the
    wake-up (TF 2.21: Model::OptimizeLoop re-checks IsCancelled() before
    CancellationManager sets it, so it sleeps out its period, which doubles up to 60 s). At
    the end of fit() that cost 10-50 s with 1 CPU. options.autotune.enabled=False cannot
    reach the per-device datasets MultiWorkerMirroredStrategy's MultiDeviceIterator builds
    with default options; debug mode can. Our pipelines are built before entering and have
    no map functions (which debug mode would run eagerly); inside, it also drops the
    strategy's 1-element device prefetch. It is process-global, hence restored on exit.
    """
    from tensorflow.python.data.ops import debug_mode  # no public way to turn it off again

    previous = debug_mode.DEBUG_MODE
    debug_mode.toggle_debug_mode(True)
    try:
        yield
    finally:
        debug_mode.toggle_debug_mode(previous)


class _PhaseTimer:
    """Wall-clock seconds per named phase of this attempt (start-up cost is worth watching)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = self._last = time.perf_counter()

    def total(self) -> float:
        """Seconds since the loop started (TensorFlow's import included)."""
        return round(time.perf_counter() - self._start, 3)

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._last, 3)
        self._last = now


# --------------------------------------------------------------------------- setup


def _parse_loop_config(config: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(config) - set(_LOOP_KEYS))
    missing = sorted({"features", "test_fold", "train_config"} - set(config))
    if unknown or missing:
        raise ValueError(
            f"train_loop_config: unknown key(s) {unknown}, missing key(s) {missing}; expected {list(_LOOP_KEYS)}"
        )
    settings = {"use_gpu": False, "intra_op_threads": None, "class_names": list(CLASS_NAMES)}
    settings.update(config)
    return settings


def _import_tensorflow(intra_op_threads: int | None, train_config: TrainConfig):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    import tf_keras as keras

    if intra_op_threads:
        # Size TF's pools to the CPUs Ray reserved, not to the whole machine.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra_op_threads))
            tf.config.threading.set_inter_op_parallelism_threads(max(2, int(intra_op_threads)))
        except RuntimeError:
            pass  # TF already initialised in this process (Train local mode): keep its pools
    keras.utils.set_random_seed(train_config.seed)
    if train_config.deterministic:
        tf.config.experimental.enable_op_determinism()
    return tf, keras


def _make_strategy(tf):
    """MultiWorkerMirroredStrategy under Ray Train workers (their backend sets TF_CONFIG);
    the default strategy in Train's local mode (num_workers=0), where there is no cluster."""
    if "TF_CONFIG" in os.environ:
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _resolve_features(features: Any) -> FeatureSet:
    if isinstance(features, ray.ObjectRef):
        features = ray.get(features)
    if not isinstance(features, FeatureSet):
        raise TypeError(
            f"train_loop_config['features'] must be a FeatureSet or an ObjectRef to one, got {type(features).__name__}"
        )
    return features


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


def _prepare_fold(featureset: FeatureSet, test_fold: int, config: TrainConfig) -> PreparedFold:
    split = split_fold(featureset, test_fold, config.val_fraction, config.seed)
    train_features = featureset.features[split.train]
    bands = featureset.features.shape[1]
    normaliser = fit_normaliser(train_features) if config.normalise else Normaliser.identity(bands)

    def inputs(rows: np.ndarray) -> np.ndarray:
        return as_model_input(apply_normaliser(featureset.features[rows], normaliser))

    labels = np.asarray(featureset.labels, dtype=np.int32)
    return PreparedFold(
        split=split,
        normaliser=normaliser,
        x_train=inputs(split.train),
        y_train=labels[split.train],
        x_val=inputs(split.val),
        y_val=labels[split.val],
        x_test=inputs(split.test),
        y_test=labels[split.test],
    )


def _make_datasets(
    tf, fold: PreparedFold, global_batch: int, config: TrainConfig, test_fold: int, passes: int
):
    if len(fold.y_train) < global_batch:
        raise ValueError(
            f"test fold {test_fold}: {len(fold.y_train)} training clips, fewer than the global "
            f"batch {global_batch} (batch_size {config.batch_size} x workers)"
        )
    train_ds = make_dataset(
        tf, fold.x_train, fold.y_train, global_batch, seed=config.seed, train_passes=passes
    )
    val_ds = make_dataset(tf, fold.x_val, fold.y_val, global_batch, seed=config.seed)
    return train_ds, val_ds


def _build_model(strategy, fold: PreparedFold, settings: Mapping[str, Any], config: TrainConfig):
    from model.cnn import build_cnn, compile_model

    mixed = config.use_mixed_precision(settings["use_gpu"])
    with strategy.scope():
        network = build_cnn(
            fold.input_shape, len(settings["class_names"]), config, mixed_precision=mixed
        )
        model = compile_model(network, config)
        # Built now, not at the first step, so a checkpoint's slots can be restored into it.
        model.optimizer.build(model.trainable_variables)
    return model


def make_dataset(
    tf, x: np.ndarray, y: np.ndarray, global_batch: int, *, seed: int, train_passes: int = 0
):
    """In-memory tf.data pipeline of *global* batches, sharded per worker by DATA.

    Every worker builds the same pipeline (same seeded order), and the DATA auto-shard
    policy gives each its slice of every global batch. ``train_passes=0``: one pass in
    order, last batch partial (evaluation). ``train_passes=k``: k passes, each reshuffled,
    last partial batch dropped so all workers run the same steps. Training runs its k
    remaining epochs through one iterator because fit() otherwise rebuilds the distributed
    iterator (and re-runs the auto-shard rewrite) every epoch, seconds each with two
    workers; a finite k rather than repeat() lets that iterator end cleanly (the stall once
    seen tearing down an endless one was the autotune race that _no_autotune_threads avoids).
    """
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if train_passes:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(global_batch, drop_remainder=True).repeat(train_passes)
    else:
        ds = ds.batch(global_batch)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


# --------------------------------------------------------------------------- per epoch


class _EpochReporter:
    """Reports every epoch to Ray Train, checkpoints, and stops early on val_loss.

    Every worker runs the same decisions from rank 0's numbers (broadcast), because the
    collective reads inside ``get_weights()`` must be called by all workers or none.
    Wrapped in a LambdaCallback by ``as_callback`` so this module imports no TensorFlow.
    """

    def __init__(
        self,
        *,
        model,
        state: TrainState,
        best_weights,
        rank: int,
        train_config: TrainConfig,
        snapshot,
        samples_per_epoch: int,
    ):
        self._model_ref = model
        self.state = state
        self.best_weights = best_weights
        self.rank = rank
        self.config = train_config
        self.snapshot = snapshot
        self.samples_per_epoch = samples_per_epoch
        self._epoch_start = 0.0
        self._train_seconds = 0.0

    def as_callback(self, keras):
        return keras.callbacks.LambdaCallback(
            on_epoch_begin=self.on_epoch_begin,
            on_epoch_end=self.on_epoch_end,
            on_test_begin=self.on_test_begin,
        )

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        _maybe_fail(epoch + 1, self.rank)
        self._epoch_start = time.perf_counter()
        self._train_seconds = 0.0

    def on_test_begin(self, logs=None) -> None:
        # Keras runs validation inside fit(); time until here is the training phase.
        self._train_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = dict(logs or {})
        elapsed = time.perf_counter() - self._epoch_start
        train_seconds = self._train_seconds or elapsed
        local = {
            "epoch": epoch + 1,
            "loss": float(logs["loss"]),
            "accuracy": float(logs["accuracy"]),
            "val_loss": float(logs["val_loss"]),
            "val_accuracy": float(logs["val_accuracy"]),
            "epoch_seconds": elapsed,
            "samples_per_second": self.samples_per_epoch / train_seconds
            if train_seconds > 0
            else 0.0,
        }
        metrics = broadcast_from_rank_zero(local)
        self._update_state(metrics)
        metrics["best_epoch"] = self.state.best_epoch
        metrics["best_val_loss"] = self.state.best_val_loss
        self.state.history.append(dict(metrics))
        self.state.epoch = metrics["epoch"]

        improved = self.state.best_epoch == metrics["epoch"]
        last = metrics["epoch"] >= self.config.epochs or self.state.stopped_early
        periodic = (
            self.config.checkpoint_every and metrics["epoch"] % self.config.checkpoint_every == 0
        )
        if improved or periodic or last:
            _report_with_checkpoint(
                self._model_ref, self.state, self.best_weights, self.rank, metrics, self.snapshot()
            )
        else:
            ray.train.report(metrics)
        if self.state.stopped_early:
            self._model_ref.stop_training = True

    def _update_state(self, metrics: dict[str, float]) -> None:
        val_loss = metrics["val_loss"]
        if math.isfinite(val_loss) and val_loss < self.state.best_val_loss:
            self.state.best_val_loss = val_loss
            self.state.best_epoch = metrics["epoch"]
            self.state.epochs_since_best = 0
            self.best_weights = self._model_ref.get_weights()
        else:
            self.state.epochs_since_best += 1
            if self.config.patience and self.state.epochs_since_best >= self.config.patience:
                self.state.stopped_early = True


def _maybe_fail(epoch: int, rank: int) -> None:
    fail_at = os.environ.get(ENV_FAIL_AT_EPOCH)
    marker = os.environ.get(ENV_FAIL_MARKER)
    if rank != 1 or not fail_at or not marker or int(fail_at) != epoch or os.path.exists(marker):
        return
    Path(marker).write_text(f"rank 1 exited at the start of epoch {epoch}\n")
    os._exit(1)


# --------------------------------------------------------------------------- checkpoints


def _optimizer_variables(optimizer) -> list:
    variables = list(optimizer.variables)
    loss_scale = getattr(optimizer, "_loss_scale", None)
    # Dynamic loss scale state lives outside .variables; without it a resumed run would
    # restart from the initial scale of 2**15 and skip steps re-finding it.
    for name in ("_current_loss_scale", "_counter"):
        if hasattr(loss_scale, name):
            variables.append(getattr(loss_scale, name))
    return variables


def _save_arrays(path: Path, arrays: list[np.ndarray]) -> None:
    np.savez(path, **{f"w{i:04d}": a for i, a in enumerate(arrays)})


def _load_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files)]


def _report_with_checkpoint(
    model,
    state: TrainState,
    best_weights,
    rank: int,
    metrics: dict[str, Any],
    extras: dict[str, Any],
) -> None:
    # get_weights() reads sync-on-read variables (BatchNorm statistics) with a collective,
    # so every worker reads them; only rank 0 writes and hands Ray a checkpoint.
    weights = model.get_weights()
    optimizer_values = [np.asarray(v.numpy()) for v in _optimizer_variables(model.optimizer)]
    if rank != 0:
        ray.train.report(metrics)
        return
    directory = Path(tempfile.mkdtemp(prefix="us8k_ckpt_"))
    _save_arrays(directory / WEIGHTS_FILE, weights)
    _save_arrays(directory / OPTIMIZER_FILE, optimizer_values)
    if best_weights is not None:
        _save_arrays(directory / BEST_WEIGHTS_FILE, best_weights)
    payload = {"state": state.to_json(), **extras}
    (directory / STATE_FILE).write_text(json.dumps(payload, indent=1))
    _report_checkpoint(metrics, directory)


_staged: list[Path] = []  # this worker's last staging directory (see _report_checkpoint)


def _report_checkpoint(metrics: dict[str, Any], directory: Path) -> None:
    # Ray deletes the staging directory once it is persisted. In Train's local mode nothing
    # is persisted: the directory is the checkpoint, so keep the newest and drop the one
    # before (already gone in distributed mode).
    ray.train.report(
        metrics,
        checkpoint=ray.train.Checkpoint.from_directory(str(directory)),
        delete_local_checkpoint_after_upload=True,
    )
    while _staged:
        shutil.rmtree(_staged.pop(), ignore_errors=True)
    _staged.append(directory)


def _restore_or_start(
    model, train_config: TrainConfig
) -> tuple[TrainState, list[np.ndarray] | None]:
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return TrainState(), None
    with checkpoint.as_directory() as tmp:
        directory = Path(tmp)
        payload = json.loads((directory / STATE_FILE).read_text())
        saved_config = payload.get("train_config")
        if saved_config is not None and saved_config != train_config.to_dict():
            raise ValueError(
                f"checkpoint {checkpoint.path}: it was written with a different TrainConfig "
                f"({saved_config}) than this run's ({train_config.to_dict()})"
            )
        state = TrainState.from_json(payload["state"])
        model.set_weights(_load_arrays(directory / WEIGHTS_FILE))
        _assign_all(
            _optimizer_variables(model.optimizer),
            _load_arrays(directory / OPTIMIZER_FILE),
            checkpoint.path,
        )
        best_path = directory / BEST_WEIGHTS_FILE
        best_weights = _load_arrays(best_path) if best_path.exists() else None
    return state, best_weights


def _assign_all(variables: list, values: list[np.ndarray], where: str) -> None:
    if len(variables) != len(values):
        raise ValueError(
            f"checkpoint {where}: {len(values)} optimizer arrays saved, the optimizer has {len(variables)} variables"
        )
    for variable, value in zip(variables, values, strict=True):
        if tuple(variable.shape) != value.shape:
            raise ValueError(
                f"checkpoint {where}: optimizer variable {variable.name} has shape {tuple(variable.shape)}, "
                f"saved array has {value.shape}"
            )
        variable.assign(value)


def _snapshot_extras(
    settings: Mapping[str, Any], fold: PreparedFold, train_config: TrainConfig, world_size: int
) -> dict[str, Any]:
    return {
        "train_config": train_config.to_dict(),
        "test_fold": settings["test_fold"],
        "world_size": world_size,
        "class_names": list(settings["class_names"]),
        "input_shape": list(fold.input_shape),
        "split_sizes": {
            "train": len(fold.split.train),
            "val": len(fold.split.val),
            "test": len(fold.split.test),
        },
        "normaliser": fold.normaliser.to_dict(),
    }


# --------------------------------------------------------------------------- final evaluation


def _finish(
    model,
    state: TrainState,
    best_weights,
    fold: PreparedFold,
    settings: Mapping[str, Any],
    train_config: TrainConfig,
    rank: int,
    world_size: int,
    timer: _PhaseTimer,
) -> None:
    """Evaluate the test fold once, with the best-epoch weights, and write the final checkpoint.

    Only rank 0 evaluates, on a plain (non-distributed) float32 copy of the model: that
    copy needs no collectives, and it is the model the final checkpoint ships.
    """
    extras = _snapshot_extras(settings, fold, train_config, world_size)
    weights = best_weights if best_weights is not None else model.get_weights()
    # Every worker reads the same (collective) state for the final checkpoint.
    current = model.get_weights()
    optimizer_values = [np.asarray(v.numpy()) for v in _optimizer_variables(model.optimizer)]
    last = state.history[-1] if state.history else {}
    if rank != 0:
        ray.train.report({"epoch": state.epoch})
        return

    from model.cnn import build_cnn, compile_model

    local = compile_model(
        build_cnn(fold.input_shape, len(settings["class_names"]), train_config), train_config
    )
    local.set_weights(weights)
    test_loss, _ = local.evaluate(fold.x_test, fold.y_test, batch_size=256, verbose=0)
    predictions = local.predict(fold.x_test, batch_size=256, verbose=0).argmax(axis=1)
    report = classification_report(
        fold.y_test, predictions, len(settings["class_names"]), settings["class_names"]
    )
    best = next((h for h in state.history if h["epoch"] == state.best_epoch), last)
    summary = {
        "test_fold": settings["test_fold"],
        "test_loss": float(test_loss),
        "best_epoch": state.best_epoch,
        "best_val_loss": None if math.isinf(state.best_val_loss) else state.best_val_loss,
        "epochs_trained": state.epoch,
        "stopped_early": state.stopped_early,
        "attempt_start_epochs": state.attempt_start_epochs,
        "phase_seconds_last_attempt": timer.seconds,
        "history": state.history,
        "test": report,
    }
    metrics = {key: best.get(key, 0.0) for key in EPOCH_METRIC_KEYS}
    metrics.update(
        {
            "epoch": state.epoch,
            "final": 1,
            "test_loss": float(test_loss),
            "test_accuracy": report["accuracy"],
            "test_macro_f1": report["macro_f1"],
            "test_macro_precision": report["macro_precision"],
            "test_macro_recall": report["macro_recall"],
            "epochs_trained": state.epoch,
            "resumes": len(state.attempt_start_epochs) - 1,
            # This attempt's time inside the loop, so far: what the sweep compares its wall
            # time with (its orchestration overhead is the rest).
            "loop_seconds": timer.total(),
        }
    )
    directory = Path(tempfile.mkdtemp(prefix="us8k_final_"))
    _save_arrays(directory / WEIGHTS_FILE, current)
    _save_arrays(directory / OPTIMIZER_FILE, optimizer_values)
    _save_arrays(directory / BEST_WEIGHTS_FILE, weights)
    (directory / STATE_FILE).write_text(
        json.dumps({"state": state.to_json(), "final": True, **extras}, indent=1)
    )
    (directory / REPORT_FILE).write_text(json.dumps(summary, indent=1))
    local.save(directory / MODEL_FILE)
    _report_checkpoint(metrics, directory)


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
