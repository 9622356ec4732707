"""python -m benchmarks.training [--epochs 3] [--warmup 1] [--samples 1536] [--batch-size 128] [--workers 1 2]
       python -m benchmarks.training --augmentation [SETTING ...]   (augmentation rows instead)

Training throughput benchmark (not a test). Runtime: about 4-6 minutes on 2 cores with the
defaults (4 epochs of ~1,500 clips per method, plus Ray worker start-up). With
``--augmentation`` it measures on-the-fly augmentation instead (one in-process row per
setting, ratio against un-augmented; ``benchmarks/augment_training.py``), ~8 minutes for all.

Measures, in one run, on the same features, split, model and epochs:

1. plain tf_keras ``model.fit`` in this process (the reference CNN, ``TrainConfig()``'s Adam,
   numpy arrays, batch ``--batch-size``), TensorFlow's thread pools sized to the CPUs of
   the machine, as the loop sizes them (intra = CPUs, inter = max(2, CPUs));
2. Ray Train with each ``--workers`` count N (``orchestration.train_fold``, TensorflowTrainer,
   MultiWorkerMirroredStrategy), every worker reserving CPUs // N CPUs, so 1 worker gets the
   whole machine, the same compute as the plain run. ``--batch-size`` is per worker, as in
   the project (N workers step through N x batch clips).

samples/s is the training phase only (epoch start to the start of validation, the rule the
train loop uses for its ``samples_per_second``), over the epochs after ``--warmup`` (the
first includes graph tracing and, under Ray, collective set-up): total samples / total
seconds. wall s is end to end: for plain, TensorFlow import (if not yet imported), model
build, fit (all epochs, with validation) and test evaluation; for Ray, the whole
``train_fold`` call (features put, controller and worker start-up, TensorFlow import in the
workers, fit, final evaluation and checkpoint). Ray is started after the plain run (its
start-up processes would otherwise compete with it) and is not in any wall time.

Features: a seeded synthetic FeatureSet of random 40 x 174 log-mel-like arrays, not the
synthetic audio dataset: the CNN's cost per clip does not depend on the values, and the
``demo`` audio set (300 clips) would need extracting (tens of seconds of Ray tasks on a
shared machine) and tiling 5x to reach ~1,500 training clips anyway. Each clip is its own
recording; fold 1 (a few clips per class) is the test fold, and the loop's split takes ~10%
of the rest for validation.

``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` is set to 0.25 (unless already set) before Ray starts:
Train V2's controller polls workers every 2 s by default, and a worker's report blocks
until the previous one was consumed, so slow polling would stretch short epochs and the
final report; the variable is restored on exit.

The reference demo's published figures (their hardware, ~7,000 training clips per epoch)
are printed beside ours converted to seconds per 7,000-clip epoch.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmarks.machine import describe
from features.argtypes import positive_int
from features.featureset import FeatureSet
from features.us8k import NUM_CLASSES
from model.config import TrainConfig
from model.data import prepare_fold

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
HEALTH_CHECK_INTERVAL_S = "0.25"
TEST_FOLD = 1
TEST_CLIPS_PER_CLASS = 2
BANDS, FRAMES = 40, 174
DEMO_EPOCH_CLIPS = 7000
DEMO_SECONDS_PER_EPOCH = (("CPU", 60.0), ("1 GPU", 2.0), ("2 GPUs", 1.0))
TARGET_RATIO = 0.9


@dataclass(frozen=True)
class MethodResult:
    """One benchmarked method: per-epoch training-phase rates (warm-up epochs first)."""

    name: str
    epoch_rates: tuple[float, ...]
    warmup: int
    wall_seconds: float
    samples_per_epoch: int
    details: dict[str, object] = field(default_factory=dict)

    @property
    def steady_rates(self) -> tuple[float, ...]:
        # With fewer epochs than warm-up + 1, the warm-up epochs are all there is.
        return self.epoch_rates[self.warmup :] or self.epoch_rates

    @property
    def samples_per_second(self) -> float:
        """Total samples / total seconds over the steady epochs (equal samples per epoch)."""
        rates = [r for r in self.steady_rates if r > 0]
        return len(rates) / sum(1.0 / r for r in rates) if rates else 0.0


# --------------------------------------------------------------------------- features


def make_bench_featureset(train_samples: int, seed: int = 0) -> FeatureSet:
    """Seeded random clips sized so the loop's split leaves ~``train_samples`` training rows
    (at least 90: every class needs 10 non-test clips for one to go to validation)."""
    if train_samples < NUM_CLASSES:
        raise ValueError(f"--samples must be >= {NUM_CLASSES}, got {train_samples}")
    rng = np.random.default_rng(seed)
    # The split moves ~val_fraction (0.1) of every class's non-test clips to validation;
    # below 10 per class that rounds to none, and split_fold rejects an empty validation set.
    pool_per_class = max(10, math.ceil(train_samples / NUM_CLASSES / 0.9))
    labels, folds = [], []
    for cls in range(NUM_CLASSES):
        labels += [cls] * (TEST_CLIPS_PER_CLASS + pool_per_class)
        folds += [TEST_FOLD] * TEST_CLIPS_PER_CLASS
        folds += [2 + i % 9 for i in range(pool_per_class)]  # folds 2..10
    n = len(labels)
    features = rng.normal(-40.0, 20.0, size=(n, BANDS, FRAMES)).astype(np.float32)
    return FeatureSet(
        features=features,
        labels=np.asarray(labels, dtype=np.int64),
        folds=np.asarray(folds, dtype=np.int64),
        fs_ids=np.arange(1, n + 1, dtype=np.int64),  # one recording per clip
        file_names=np.asarray([f"{i + 1}-{c}-0-0.wav" for i, c in enumerate(labels)]),
    )


def prepare_arrays(featureset: FeatureSet, config: TrainConfig) -> dict[str, np.ndarray]:
    """The train loop's own split and training-only normalisation (``model.data.prepare_fold``)."""
    fold = prepare_fold(featureset, TEST_FOLD, config)
    return {name: getattr(fold, name) for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}


# --------------------------------------------------------------------------- plain tf_keras


def run_plain(arrays: dict[str, np.ndarray], config: TrainConfig, cpus: int) -> MethodResult:
    """The reference way: model.fit on numpy arrays in one process, full batches only."""
    start = time.perf_counter()
    import tensorflow as tf
    import tf_keras as keras

    threads = _set_tf_threads(tf, cpus)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()  # as the loop does

    from model.cnn import build_cnn, compile_model

    # Whole batches only, as the loop's drop_remainder pipeline.
    usable = len(arrays["y_train"]) // config.batch_size * config.batch_size
    if usable == 0:
        raise ValueError(
            f"{len(arrays['y_train'])} training clips, fewer than one batch of {config.batch_size}"
        )
    model = compile_model(build_cnn(arrays["x_train"].shape[1:], NUM_CLASSES, config), config)
    timer = _TrainPhaseTimer()
    model.fit(
        arrays["x_train"][:usable],
        arrays["y_train"][:usable],
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(arrays["x_val"], arrays["y_val"]),
        shuffle=True,
        callbacks=[timer.callback(keras)],
        verbose=0,
    )
    model.evaluate(arrays["x_test"], arrays["y_test"], batch_size=256, verbose=0)
    return MethodResult(
        name=f"plain tf_keras fit ({cpus} CPU)",
        epoch_rates=tuple(usable / s for s in timer.train_seconds),
        warmup=0,  # set by the caller
        wall_seconds=time.perf_counter() - start,
        samples_per_epoch=usable,
        details={"tf_threads": threads},
    )


def _set_tf_threads(tf, cpus: int) -> tuple[int, int]:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(max(2, cpus))
    except RuntimeError:
        pass  # TensorFlow already initialised in this process: report what it has
    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


class _TrainPhaseTimer:
    """Seconds from each epoch's start to its validation start (the loop's rule)."""

    def __init__(self) -> None:
        self.train_seconds: list[float] = []
        self._start = 0.0
        self._pending = False

    def callback(self, keras):
        return keras.callbacks.LambdaCallback(
            on_epoch_begin=self._begin, on_test_begin=self._test, on_epoch_end=self._end
        )

    def _begin(self, epoch, logs=None) -> None:
        self._start, self._pending = time.perf_counter(), True

    def _test(self, logs=None) -> None:
        if self._pending:
            self.train_seconds.append(time.perf_counter() - self._start)
            self._pending = False

    def _end(self, epoch, logs=None) -> None:
        self._test()  # no validation this epoch


# --------------------------------------------------------------------------- Ray Train


def run_ray(
    features_ref, config: TrainConfig, workers: int, cpus: int, train_rows: int, storage: str
) -> MethodResult:
    """One train_fold call; per-epoch rates from the final checkpoint's report history."""
    from model.checkpoints import load_report
    from orchestration.train_fold import RunSettings, WorkerResources, train_fold

    cpus_per_worker = cpus // workers
    if cpus_per_worker < 1:
        raise ValueError(f"--workers {workers}: more workers than the {cpus} CPUs available")
    start = time.perf_counter()
    result = train_fold(
        features_ref,
        TEST_FOLD,
        config,
        WorkerResources(workers=workers, cpus=float(cpus_per_worker)),
        RunSettings(storage_path=storage, name=f"bench_{workers}w"),
    )
    wall = time.perf_counter() - start
    if result.error is not None:
        raise RuntimeError(f"Ray Train with {workers} worker(s) failed: {result.error}")
    with result.checkpoint.as_directory() as directory:
        report = load_report(directory)
    global_batch = config.batch_size * workers
    plural = "s" if workers > 1 else ""
    return MethodResult(
        name=f"Ray Train {workers} worker{plural} x {cpus_per_worker} CPU",
        epoch_rates=tuple(h["samples_per_second"] for h in report["history"]),
        warmup=0,
        wall_seconds=wall,
        samples_per_epoch=train_rows // global_batch * global_batch,
        details={
            "epoch_seconds": [round(h["epoch_seconds"], 2) for h in report["history"]],
            "phases": report["phase_seconds_last_attempt"],
            # Time inside the fit phase but outside every epoch: dataset distribution before
            # the first, per-epoch reports and checkpoints, iterator teardown after the last.
            "fit_outside_epochs_s": round(
                report["phase_seconds_last_attempt"].get("fit", 0.0)
                - sum(h["epoch_seconds"] for h in report["history"]),
                2,
            ),
        },
    )


def _start_ray(cpus: int) -> bool:
    """Starts local Ray unless it is running; True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return True


# --------------------------------------------------------------------------- run and report


def run(
    *, epochs: int, warmup: int, samples: int, batch_size: int, workers: Sequence[int], seed: int
) -> dict[str, object]:
    cpus = len(os.sched_getaffinity(0))
    config = TrainConfig(
        batch_size=batch_size, epochs=warmup + epochs, checkpoint_every=0, seed=seed
    )
    featureset = make_bench_featureset(samples, seed)
    arrays = prepare_arrays(featureset, config)
    load_before = os.getloadavg()
    results = [_with_warmup(run_plain(arrays, config, cpus), warmup)]

    import ray

    started = _start_ray(cpus)
    ray_cpus = int(ray.cluster_resources().get("CPU", cpus))
    try:
        features_ref = ray.put(featureset)
        with tempfile.TemporaryDirectory(prefix="us8k_bench_") as storage:
            for n in workers:
                result = run_ray(features_ref, config, n, ray_cpus, len(arrays["y_train"]), storage)
                results.append(_with_warmup(result, warmup))
    finally:
        if started:
            ray.shutdown()
    return {
        "results": results,
        "cpus": cpus,
        "epochs": epochs,
        "warmup": warmup,
        "batch_size": batch_size,
        "split": {k[2:]: len(v) for k, v in arrays.items() if k.startswith("y_")},
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }


def _with_warmup(result: MethodResult, warmup: int) -> MethodResult:
    return MethodResult(
        result.name,
        result.epoch_rates,
        warmup,
        result.wall_seconds,
        result.samples_per_epoch,
        result.details,
    )


def format_report(report: dict[str, object]) -> str:
    results: list[MethodResult] = report["results"]
    plain = results[0].samples_per_second
    split = report["split"]
    lines = [
        f"Reference CNN, 40x{FRAMES}x1 inputs, batch {report['batch_size']} per worker; "
        f"{report['epochs']} timed epoch(s) after {report['warmup']} warm-up epoch(s).",
        f"Clips: train {split['train']}, validation {split['val']}, test {split['test']}; "
        f"{report['cpus']} CPUs; load average before {_load(report['load_before'])}, "
        f"after {_load(report['load_after'])}.",
        "",
        f"{'method':<30} {'samples/s':>10} {'vs plain':>9} {'wall s':>8} {'s/epoch@7000':>13}",
    ]
    for r in results:
        ratio = r.samples_per_second / plain if plain > 0 else 0.0
        per_epoch = DEMO_EPOCH_CLIPS / r.samples_per_second if r.samples_per_second > 0 else 0.0
        lines.append(
            f"{r.name:<30} {r.samples_per_second:>10.1f} {ratio:>8.2f}x "
            f"{r.wall_seconds:>8.1f} {per_epoch:>13.1f}"
        )
    lines += ["", *_target_lines(results, plain), "", *_demo_lines(), "", *_detail_lines(results)]
    return "\n".join(lines)


def _target_lines(results: list[MethodResult], plain: float) -> list[str]:
    one = next((r for r in results if r.name.startswith("Ray Train 1 worker ")), None)
    if one is None or plain <= 0:
        return [f"target: Ray Train (1 worker) >= {TARGET_RATIO}x plain: not measured"]
    ratio = one.samples_per_second / plain
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    return [f"target: Ray Train (1 worker) >= {TARGET_RATIO}x plain: {verdict} ({ratio:.2f}x)"]


def _demo_lines() -> list[str]:
    figures = ", ".join(f"{name} {s:g} s/epoch" for name, s in DEMO_SECONDS_PER_EPOCH)
    return [
        f"reference demo, published (their hardware, ~{DEMO_EPOCH_CLIPS:,} training clips "
        f"per epoch): {figures}; ours above in the s/epoch@7000 column."
    ]


def _detail_lines(results: list[MethodResult]) -> list[str]:
    lines = ["per-epoch training samples/s (warm-up epochs in brackets):"]
    for r in results:
        rates = [f"{x:.1f}" for x in r.epoch_rates]
        rates = [f"[{x}]" if i < r.warmup else x for i, x in enumerate(rates)]
        extras = ", ".join(f"{k}={v}" for k, v in r.details.items())
        lines.append(
            f"  {r.name}: {' '.join(rates)}; {r.samples_per_epoch} samples/epoch; {extras}"
        )
    return lines


def _load(values: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.training", description="Training throughput benchmark."
    )
    parser.add_argument("--epochs", type=positive_int, default=3, help="timed epochs (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first epochs (default 1)")
    parser.add_argument(
        "--samples", type=positive_int, default=1536, help="training clips, about (default 1536)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=128, help="per worker (default 128)"
    )
    parser.add_argument(
        "--workers", type=positive_int, nargs="+", default=[1, 2], help="Ray Train worker counts"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--augmentation", nargs="*", metavar="SETTING", default=None,
        help="instead: on-the-fly augmentation rows in this process, no Ray (settings: none "
        "time_shift masks mixup label_smoothing all; default all six; benchmarks/augment_training.py)",
    )
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.augmentation is not None:
        return _augmentation_main(args, parser)

    previous = os.environ.get(HEALTH_CHECK_ENV)
    os.environ.setdefault(HEALTH_CHECK_ENV, HEALTH_CHECK_INTERVAL_S)
    try:
        report = run(
            epochs=args.epochs,
            warmup=args.warmup,
            samples=args.samples,
            batch_size=args.batch_size,
            workers=args.workers,
            seed=args.seed,
        )
    finally:
        if previous is None:
            os.environ.pop(HEALTH_CHECK_ENV, None)
    print(describe())
    print(format_report(report))
    return 0


def _augmentation_main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from benchmarks import augment_training

    settings = args.augmentation or list(augment_training.SETTINGS)
    unknown = sorted(set(settings) - set(augment_training.SETTINGS))
    if unknown:
        parser.error(f"--augmentation: unknown setting(s) {unknown}; known: {list(augment_training.SETTINGS)}")
    report = augment_training.run(epochs=args.epochs, warmup=args.warmup, samples=args.samples,
                                  batch_size=args.batch_size, seed=args.seed, settings=settings)
    print(describe())
    print(augment_training.format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
