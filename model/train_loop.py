"""Per-worker training function for ``ray.train.tensorflow.TensorflowTrainer`` (Ray Train V2),
also run directly by a Ray Tune trial that trains in its own process (``session="tune"``,
``model.session``: the same loop, reporting through ``ray.tune``).

One fold: split (test fold held out, grouped validation from the training folds), normalise
with training-only statistics, train the CNN (under MultiWorkerMirroredStrategy with several
workers, the default strategy with one: ``model/runtime.py``), report every epoch,
checkpoint (``model.checkpoints``), stop early, then evaluate the test fold once with the
best-epoch weights.

Reports: every worker calls ``ray.train.report`` once per epoch (V2 treats it as a barrier)
with rank 0's numbers (broadcast), and only rank 0 attaches checkpoints; Ray keeps rank 0's
metrics. Per epoch: ``EPOCH_METRIC_KEYS`` and ``train_cpu_cores`` (the worker process's CPU
seconds per training-phase second: how much of its CPUs it got). The final report repeats those keys with the
*best* epoch's values (epoch = epochs trained) and adds ``FINAL_KEY`` = 1, test_loss,
test_accuracy, test_macro_f1/precision/recall, epochs_trained, resumes (attempts that
resumed from a checkpoint), loop_seconds and seconds_per_epoch (mean over the epochs trained);
V2's Result.metrics is that report. The final checkpoint's report also names the hardware
(``model.hardware``).

Resuming (the session's ``get_checkpoint()``) restores weights, optimizer state, best-so-far and
the epoch counter, and continues with the next epoch on exactly the batches (order and
augmentation) the uninterrupted run trains on from there (model/pipeline.py): with op
determinism on and no dropout, a resumed fold ends bit-identical to an uninterrupted one
(benchmarks/fault_determinism.py checks it through three interruptions). Dropout masks after a
resume are not the uninterrupted run's: tf_keras's Dropout draws from a stateful
``tf.random.Generator`` whose state is not among the model's weights, so no checkpoint holds it.

TensorFlow is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray

from features.featureset import FeatureSet
from features.us8k import CLASS_NAMES
from model import checkpoints as ckpt
from model.config import TrainConfig
from model.data import PreparedFold, prepare_fold
from model.pipeline import make_dataset

# Test-only failure hook: world rank US8K_FAIL_RANK (default 1) exits hard at the start of
# this (1-based) epoch, once: the marker file records that the failure already happened.
ENV_FAIL_AT_EPOCH = "US8K_FAIL_AT_EPOCH"
ENV_FAIL_MARKER = "US8K_FAIL_MARKER"
ENV_FAIL_RANK = "US8K_FAIL_RANK"

FINAL_KEY = "final"  # set to 1 on a run's final report
EPOCH_METRIC_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds",
    "samples_per_second", "best_epoch", "best_val_loss")
FINAL_METRIC_KEYS = ("test_accuracy", "test_loss", "test_macro_f1", "test_macro_precision",
    "test_macro_recall", "best_epoch", "best_val_loss", "epochs_trained", "resumes",
    "loop_seconds", "seconds_per_epoch")


@dataclass(frozen=True)
class LoopSettings:
    """The ``train_loop_config`` every worker gets (``features``: a FeatureSet or an ObjectRef)."""

    features: Any
    test_fold: int | None  # None: a refit on every fold, no test set
    train_config: TrainConfig
    use_gpu: bool = False
    intra_op_threads: int | None = None
    class_names: tuple[str, ...] = CLASS_NAMES
    # Which runtime the loop reports to (model.session): "train" in a Ray Train worker (or
    # Train's local mode), "tune" when a Tune trial function runs the loop itself.
    session: str = "train"

    def to_loop_config(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "test_fold": None if self.test_fold is None else int(self.test_fold),
            "train_config": self.train_config.to_dict(),
            "use_gpu": bool(self.use_gpu),
            "intra_op_threads": self.intra_op_threads,
            "class_names": list(self.class_names),
            "session": self.session,
        }

    @classmethod
    def from_loop_config(cls, config: Mapping[str, Any]) -> LoopSettings:
        known = ("features", "test_fold", "train_config", "use_gpu", "intra_op_threads", "class_names", "session")
        unknown = sorted(set(config) - set(known))
        missing = sorted({"features", "test_fold", "train_config"} - set(config))
        if unknown or missing:
            raise ValueError(
                f"train_loop_config: unknown key(s) {unknown}, missing key(s) {missing}; expected {list(known)}"
            )
        data = dict(config)
        data["train_config"] = TrainConfig.from_dict(data["train_config"])
        data["class_names"] = tuple(data.get("class_names", CLASS_NAMES))
        return cls(**data)


def make_loop_config(
    features: Any,
    test_fold: int | None,
    train_config: TrainConfig,
    *,
    use_gpu: bool = False,
    intra_op_threads: int | None = None,
    class_names: tuple[str, ...] = CLASS_NAMES,
    session: str = "train",
) -> dict[str, Any]:
    """The ``train_loop_config`` dict: ``features`` is an ObjectRef to a FeatureSet (or one)."""
    return LoopSettings(
        features, test_fold, train_config, use_gpu, intra_op_threads, tuple(class_names), session
    ).to_loop_config()


@dataclass
class Attempt:
    """One worker's view of this training attempt (a resumed run starts a new one)."""

    settings: LoopSettings
    fold: PreparedFold
    model: Any
    state: ckpt.TrainState
    best_weights: list[np.ndarray] | None
    session: Any  # model.session.TrainSession | TuneSession
    runtime: dict[str, Any]  # model.runtime.describe: threads, strategy, determinism in force

    @property
    def rank(self) -> int:
        return self.session.rank

    @property
    def world_size(self) -> int:
        return self.session.world_size

    @property
    def config(self) -> TrainConfig:
        return self.settings.train_config

    def extras(self) -> dict[str, Any]:
        """What every checkpoint's state.json carries besides the TrainState."""
        return {
            "train_config": self.config.to_dict(),
            "test_fold": self.settings.test_fold,
            "world_size": self.world_size,
            "class_names": list(self.settings.class_names),
            "input_shape": list(self.fold.input_shape),
            "split_sizes": {k: len(getattr(self.fold.split, k)) for k in ("train", "val", "test", "train_augmented")},
            "normaliser": self.fold.normaliser.to_dict(),
            "loss_scale": ckpt.loss_scale_state(self.model.optimizer),
        }


class PhaseTimer:
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


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point; every worker runs it with the same ``config``."""
    from model.session import forget_staged, open_session

    timer = PhaseTimer()
    forget_staged()
    settings = LoopSettings.from_loop_config(config)
    session = open_session(settings.session)
    tf, keras = _import_tensorflow(settings.intra_op_threads, settings.train_config)
    from model import runtime

    # One worker trains under the default strategy, even in a Ray Train group (model/runtime.py).
    strategy = runtime.make_strategy(tf, session.world_size)
    in_force = runtime.describe(tf, runtime.strategy_kind(session.world_size))
    timer.mark("tensorflow_and_strategy")

    fold = prepare_fold(_resolve_features(settings.features), settings.test_fold, settings.train_config)
    resumed = ckpt.read_resumed(session.get_checkpoint(), settings.train_config.to_dict())
    loss_scale = resumed.loss_scale if resumed else None
    model = _build_model(strategy, fold, settings, loss_scale, session.world_size)
    if resumed is not None:
        ckpt.restore_into(model, resumed)
    attempt = Attempt(
        settings,
        fold,
        model,
        resumed.state if resumed else ckpt.TrainState(),
        resumed.best_weights if resumed else None,
        session,
        in_force,
    )
    attempt.state.attempt_start_epochs.append(attempt.state.epoch)
    timer.mark("data_model_restore")

    if attempt.state.epoch < attempt.config.epochs and not attempt.state.stopped_early:
        _fit(tf, keras, attempt)
    timer.mark("fit")
    _finish(attempt, timer)


def _fit(tf, keras, attempt: Attempt) -> None:
    """Train the remaining epochs; ``attempt.best_weights`` ends as the best epoch's."""
    from model._tf_compat import no_autotune_threads

    config, fold = attempt.config, attempt.fold
    global_batch = config.batch_size * attempt.world_size
    steps = len(fold.y_train) // global_batch
    # All the run's epochs, the trained ones skipped: a resumed attempt sees the batches the
    # uninterrupted run would have (model/pipeline.py).
    train_ds, val_ds = _make_datasets(
        tf, fold, global_batch, attempt, config.epochs, first_step=attempt.state.epoch * steps
    )
    reporter = _EpochReporter(attempt, samples_per_epoch=steps * global_batch)
    with no_autotune_threads():
        attempt.model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.epochs,
            initial_epoch=attempt.state.epoch,
            steps_per_epoch=steps,
            callbacks=[reporter.as_callback(keras)],
            verbose=0,
        )


# --------------------------------------------------------------------------- setup


def _import_tensorflow(intra_op_threads: int | None, train_config: TrainConfig):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    import tf_keras as keras

    from model import runtime

    if intra_op_threads:
        # Size TF's pools to the CPUs Ray reserved, not to the whole machine (model/runtime.py).
        runtime.configure_threads(tf, *runtime.thread_counts(intra_op_threads))
    # A process that trains one run after another (a reused Tune trial process, Train's local
    # mode) starts each from a clean Keras state and frees the previous run's model.
    keras.backend.clear_session()
    keras.utils.set_random_seed(train_config.seed)
    runtime.set_determinism(tf, train_config.deterministic)
    return tf, keras


def _resolve_features(features: Any) -> FeatureSet:
    if isinstance(features, ray.ObjectRef):
        features = ray.get(features)
    if not isinstance(features, FeatureSet):
        raise TypeError(
            f"train_loop_config['features'] must be a FeatureSet or an ObjectRef to one, got {type(features).__name__}"
        )
    return features


def _make_datasets(tf, fold: PreparedFold, global_batch: int, attempt: Attempt, passes: int, first_step: int):
    config, test_fold = attempt.config, attempt.settings.test_fold
    if len(fold.y_train) < global_batch:
        raise ValueError(
            f"test fold {test_fold}: {len(fold.y_train)} training clips, fewer than the global "
            f"batch {global_batch} (batch_size {config.batch_size} x workers)"
        )
    # Training batches only are augmented; soft labels make every set fit() sees one-hot.
    shared = {"seed": config.seed, "config": config, "num_classes": len(attempt.settings.class_names)}
    train_ds = make_dataset(tf, fold.x_train, fold.y_train, global_batch, train_passes=passes,
                            first_step=first_step, **shared)
    val_ds = make_dataset(tf, fold.x_val, fold.y_val, global_batch, **shared)
    return train_ds, val_ds


def _build_model(strategy, fold: PreparedFold, settings: LoopSettings, loss_scale: Mapping[str, float] | None,
                 world_size: int):
    from model.cnn import compile_model
    from model.networks import build_network

    config = settings.train_config
    mixed = config.use_mixed_precision(settings.use_gpu)
    # The learning-rate schedule counts optimizer steps: whole global batches per epoch.
    steps_per_epoch = max(1, len(fold.y_train) // (config.batch_size * world_size))
    with strategy.scope():
        network = build_network(fold.input_shape, len(settings.class_names), config, mixed_precision=mixed)
        model = compile_model(network, config, initial_loss_scale=(loss_scale or {}).get("scale"),
                              steps_per_epoch=steps_per_epoch, world_size=world_size)
        # Built now, not at the first step, so a checkpoint's slots can be restored into it.
        model.optimizer.build(model.trainable_variables)
    return model


# --------------------------------------------------------------------------- per epoch


class _EpochReporter:
    """Reports every epoch to Ray Train, checkpoints, and stops early on val_loss.

    Every worker runs the same decisions from rank 0's numbers (broadcast), because the
    collective reads inside ``get_weights()`` must be called by all workers or none.
    Wrapped in a LambdaCallback by ``as_callback`` so this module imports no TensorFlow.
    """

    def __init__(self, attempt: Attempt, samples_per_epoch: int):
        self.attempt = attempt
        self.samples_per_epoch = samples_per_epoch
        self._epoch_start = 0.0
        self._train_seconds = 0.0
        self._cpu_start = 0.0
        self._train_cpu = 0.0

    def as_callback(self, keras):
        return keras.callbacks.LambdaCallback(
            on_epoch_begin=self.on_epoch_begin, on_epoch_end=self.on_epoch_end, on_test_begin=self.on_test_begin
        )

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        _maybe_fail(epoch + 1, self.attempt.rank)
        self._epoch_start, self._cpu_start = time.perf_counter(), time.process_time()
        self._train_seconds = 0.0

    def on_test_begin(self, logs=None) -> None:
        # Keras runs validation inside fit(); time until here is the training phase.
        self._train_seconds = time.perf_counter() - self._epoch_start
        self._train_cpu = time.process_time() - self._cpu_start

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = dict(logs or {})
        elapsed = time.perf_counter() - self._epoch_start
        train_seconds = self._train_seconds or elapsed
        train_cpu = self._train_cpu if self._train_seconds else time.process_time() - self._cpu_start
        local = {key: float(logs[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
        local.update(
            epoch=epoch + 1,
            epoch_seconds=elapsed,
            samples_per_second=self.samples_per_epoch / train_seconds if train_seconds > 0 else 0.0,
            # CPU seconds of this worker's process (all its threads) per second of training phase.
            train_cpu_cores=train_cpu / train_seconds if train_seconds > 0 else 0.0,
        )
        metrics = self.attempt.session.broadcast(local)
        state, config = self.attempt.state, self.attempt.config
        self._update_best(metrics)
        metrics["best_epoch"] = state.best_epoch
        metrics["best_val_loss"] = state.best_val_loss
        state.history.append(dict(metrics))
        state.epoch = metrics["epoch"]
        improved = state.best_epoch == metrics["epoch"]
        last = metrics["epoch"] >= config.epochs or state.stopped_early
        periodic = config.checkpoint_every and metrics["epoch"] % config.checkpoint_every == 0
        if improved or periodic or last:
            _report_with_checkpoint(self.attempt, metrics)
        else:
            self.attempt.session.report(metrics)
        if state.stopped_early:
            self.attempt.model.stop_training = True

    def _update_best(self, metrics: dict[str, float]) -> None:
        state, val_loss = self.attempt.state, metrics["val_loss"]
        if math.isfinite(val_loss) and val_loss < state.best_val_loss:
            state.best_val_loss = val_loss
            state.best_epoch = metrics["epoch"]
            state.epochs_since_best = 0
            self.attempt.best_weights = self.attempt.model.get_weights()
        else:
            state.epochs_since_best += 1
            if self.attempt.config.patience and state.epochs_since_best >= self.attempt.config.patience:
                state.stopped_early = True


def _maybe_fail(epoch: int, rank: int) -> None:
    fail_at = os.environ.get(ENV_FAIL_AT_EPOCH)
    marker = os.environ.get(ENV_FAIL_MARKER)
    fail_rank = int(os.environ.get(ENV_FAIL_RANK, "1"))
    if rank != fail_rank or not fail_at or not marker or int(fail_at) != epoch or os.path.exists(marker):
        return
    Path(marker).write_text(f"rank {rank} exited at the start of epoch {epoch}\n")
    os._exit(1)


def _report_with_checkpoint(attempt: Attempt, metrics: dict[str, Any]) -> None:
    # get_weights() reads sync-on-read variables (BatchNorm statistics) with a collective,
    # so every worker reads them; only rank 0 writes and hands Ray a checkpoint.
    weights = attempt.model.get_weights()
    optimizer = ckpt.optimizer_values(attempt.model.optimizer)
    if attempt.rank != 0:
        attempt.session.report(metrics)
        return
    directory = ckpt.staging_directory("us8k_ckpt_")
    arrays = {ckpt.WEIGHTS_FILE: weights, ckpt.OPTIMIZER_FILE: optimizer, ckpt.BEST_WEIGHTS_FILE: attempt.best_weights}
    ckpt.write_checkpoint(directory, attempt.state, arrays, attempt.extras())
    attempt.session.report(metrics, directory)


# --------------------------------------------------------------------------- final evaluation


def _finish(attempt: Attempt, timer: PhaseTimer) -> None:
    """Evaluate the test fold once, with the best-epoch weights, and write the final checkpoint.

    Only rank 0 evaluates, on a plain (non-distributed) float32 copy of the model: that copy
    needs no collectives, and it is the model the final checkpoint ships.
    """
    from model.cnn import compile_for_evaluation
    from model.metrics import classification_report
    from model.networks import build_network

    # Every worker reads the same (collective) state for the final checkpoint.
    current = attempt.model.get_weights()
    optimizer = ckpt.optimizer_values(attempt.model.optimizer)
    weights = attempt.best_weights if attempt.best_weights is not None else current
    if attempt.rank != 0:
        attempt.session.report({"epoch": attempt.state.epoch})
        return
    settings, fold, state = attempt.settings, attempt.fold, attempt.state
    # Hard labels and plain cross-entropy: the test loss is comparable across configurations.
    local = compile_for_evaluation(build_network(fold.input_shape, len(settings.class_names), attempt.config))
    local.set_weights(weights)
    test_loss, report = float("nan"), None
    if len(fold.y_test):  # a refit (test_fold None) has no test set
        test_loss, _ = local.evaluate(fold.x_test, fold.y_test, batch_size=256, verbose=0)
        predictions = local.predict(fold.x_test, batch_size=256, verbose=0).argmax(axis=1)
        report = classification_report(fold.y_test, predictions, len(settings.class_names), settings.class_names)
    directory = ckpt.staging_directory("us8k_final_")
    arrays = {ckpt.WEIGHTS_FILE: current, ckpt.OPTIMIZER_FILE: optimizer, ckpt.BEST_WEIGHTS_FILE: weights}
    ckpt.write_checkpoint(directory, state, arrays, {"final": True, **attempt.extras()})
    summary = _summary(attempt, float(test_loss), report, timer)
    (directory / ckpt.REPORT_FILE).write_text(json.dumps(summary, indent=1))
    local.save(directory / ckpt.MODEL_FILE)
    attempt.session.report(_final_metrics(state, float(test_loss), report, timer), directory)


def _summary(attempt: Attempt, test_loss: float, report: dict[str, Any] | None, timer: PhaseTimer) -> dict[str, Any]:
    import tensorflow as tf

    from model.hardware import worker_hardware

    state = attempt.state
    return {
        "hardware": worker_hardware(tf, attempt.world_size, attempt.settings.intra_op_threads),
        "test_fold": attempt.settings.test_fold,
        "test_loss": test_loss if report is not None else None,
        "best_epoch": state.best_epoch,
        "best_val_loss": None if math.isinf(state.best_val_loss) else state.best_val_loss,
        "epochs_trained": state.epoch,
        "stopped_early": state.stopped_early,
        "attempt_start_epochs": state.attempt_start_epochs,
        "phase_seconds_last_attempt": timer.seconds,
        "runtime": attempt.runtime,
        "history": state.history,
        "test": report,
    }


def _final_metrics(state: ckpt.TrainState, test_loss: float, report: dict[str, Any] | None,
                   timer: PhaseTimer) -> dict[str, Any]:
    last = state.history[-1] if state.history else {}
    best = next((h for h in state.history if h["epoch"] == state.best_epoch), last)
    metrics = {key: best.get(key, 0.0) for key in EPOCH_METRIC_KEYS}
    metrics.update(
        {
            "epoch": state.epoch,
            FINAL_KEY: 1,
            "epochs_trained": state.epoch,
            "resumes": len(state.attempt_start_epochs) - 1,
            # This attempt's time inside the loop, so far: what the sweep compares its wall
            # time with (its orchestration overhead is the rest).
            "loop_seconds": timer.total(),
        }
    )
    if state.history:  # every epoch trained, resumed attempts included
        metrics["seconds_per_epoch"] = sum(h["epoch_seconds"] for h in state.history) / len(state.history)
    if report is not None:
        metrics.update(test_loss=test_loss, test_accuracy=report["accuracy"], test_macro_f1=report["macro_f1"],
                       test_macro_precision=report["macro_precision"], test_macro_recall=report["macro_recall"])
    return metrics
