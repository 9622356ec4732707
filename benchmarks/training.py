"""python -m benchmarks.training [--epochs 3] [--warmup 1] [--samples 1536] [--batch-size 128]
       [--workers 1 2] [--cpus-per-worker C] [--nodes N] [--gpus-per-worker G]
       [--mixed-precision auto|on|off] [--jit-compile] [--lr-scaling none|linear] [--json PATH]
       [--no-in-trial] [--no-micro] [--repeats N]
       python -m benchmarks.training --factors [NAME ...]         (one factor at a time; benchmarks/factors.py)
       python -m benchmarks.training --augmentation [SETTING ...] (augmentation rows; benchmarks/augment_training.py)
       any of them with --smoke-test: a tiny run for the test suite (~1 minute)

Training throughput benchmark (not a test). Runtime with the defaults, estimated from 4 epochs of
~1,500 clips per row plus start-ups: ~10 minutes on 2 idle cores where the plain fit runs 47
samples/s, ~3 minutes at 325; ``--factors``: ~50 and ~12 minutes.

Measures, in one run, on the same features, split, model and epochs:

1. plain tf_keras ``model.fit`` in this process (the reference CNN, ``TrainConfig()``'s Adam,
   numpy arrays, batch ``--batch-size``), thread pools and op determinism as the train loop
   sets them (``model/runtime.py``): the baseline;
2. the conv micro-benchmark (``benchmarks/conv_micro.py``, a fresh process): the network's
   convolutions alone in pure TensorFlow, for the limit lines;
3. ``in-trial``: one Ray Tune trial of the sweep's default shape (the loop in the trial
   process, holding every CPU; ``benchmarks/training_ray.py``);
4. Ray Train with each ``--workers`` count N (``orchestration.train_fold``), each worker
   reserving ``--cpus-per-worker`` CPUs (default: the CPUs // N, so 1 worker has the whole
   machine, the same compute as the plain run). ``--batch-size`` is per worker (N workers step
   through N x batch clips). ``--nodes N`` runs these rows on a ``ray.cluster_utils.Cluster``
   of N nodes sharing the CPUs (the workers spread over them); a row of N workers is compared
   with the 1-worker row of the same CPUs per worker: the step-time difference is the
   all-reduce and synchronisation cost per step.

samples/s is the training phase only (epoch start to the start of validation, the rule the
train loop uses for its ``samples_per_second``), over the epochs after ``--warmup``: total
samples / total seconds. cores is the training process's CPU seconds (all its threads) per
second of that phase (the loop's ``train_cpu_cores``), and per core the samples per CPU-second
against the plain fit's: a row slower than plain at per core ~1.00x got less CPU, not used it
worse. ``--repeats N`` runs every row N times, alternating (plain, Ray rows, plain, ...), each
run's plain fit without Ray running; the target line takes each run's ratio to its own plain fit
and their median (single runs on a small VM swing by several percent). wall s is end to end
(for plain: model build, fit, test evaluation, and any idle stall of TensorFlow's at the end of
fit(), which the loop avoids: model/_tf_compat.py; for Ray rows the whole call: start-up, fit,
final evaluation and checkpoint). Ray is started after the plain run and is not in any wall
time. Then the limit: the network's training FLOPs
per sample (``model/flops.py``), each row's GFLOP/s against the machine's peak (cores x clock
x FP32 FLOPs per cycle from the CPU flags, ``benchmarks/machine.py``'s ``PEAK_TABLE``) and
against the micro-benchmark.

Features: a seeded synthetic FeatureSet of random 40 x 174 log-mel-like arrays: the CNN's cost
per clip does not depend on the values. Fold 1 is the test fold, and the loop's split takes
~10% of the rest for validation. ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` is 0.25 (unless set)
while the benchmark runs, as the sweep sets it. The reference demo's published figures (their
hardware, ~7,000 training clips per epoch) are printed beside ours in s/epoch at 7,000 clips.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from benchmarks.machine import describe
from benchmarks.training_result import EpochTimer, MethodResult
from features.argtypes import positive_int
from features.featureset import FeatureSet
from features.us8k import NUM_CLASSES
from model.config import LR_SCALINGS, MIXED_PRECISION_MODES, TrainConfig
from model.data import prepare_fold

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["MethodResult", "main", "make_bench_featureset", "prepare_arrays"]

HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
HEALTH_CHECK_INTERVAL_S = "0.25"
TEST_FOLD = 1
TEST_CLIPS_PER_CLASS = 2
BANDS, FRAMES = 40, 174
DEMO_EPOCH_CLIPS = 7000
DEMO_SECONDS_PER_EPOCH = (("CPU", 60.0), ("1 GPU", 2.0), ("2 GPUs", 1.0))
TARGET_RATIO = 0.95
SMOKE = {"epochs": 1, "warmup": 1, "samples": 64, "batch_size": 8, "frames": 44}


# --------------------------------------------------------------------------- features


def make_bench_featureset(train_samples: int, seed: int = 0, frames: int = FRAMES) -> FeatureSet:
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
    features = rng.normal(-40.0, 20.0, size=(n, BANDS, frames)).astype(np.float32)
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

    from model import runtime
    from model.cnn import build_cnn, compile_model
    from model.flops import training_flops_per_sample

    threads = _set_tf_threads(tf, cpus)
    keras.utils.set_random_seed(config.seed)
    runtime.set_determinism(tf, config.deterministic)  # as the loop does
    gpus = tf.config.list_physical_devices("GPU")
    # Whole batches only, as the loop's drop_remainder pipeline.
    usable = len(arrays["y_train"]) // config.batch_size * config.batch_size
    if usable == 0:
        raise ValueError(f"{len(arrays['y_train'])} training clips, fewer than one batch of {config.batch_size}")
    network = build_cnn(arrays["x_train"].shape[1:], NUM_CLASSES, config,
                        mixed_precision=config.use_mixed_precision(bool(gpus)))
    model = compile_model(network, config)
    timer = EpochTimer()
    model.fit(arrays["x_train"][:usable], arrays["y_train"][:usable], batch_size=config.batch_size,
              epochs=config.epochs, validation_data=(arrays["x_val"], arrays["y_val"]), shuffle=True,
              callbacks=[timer.callback(keras)], verbose=0)
    model.evaluate(arrays["x_test"], arrays["y_test"], batch_size=256, verbose=0)
    device = f"{len(gpus)} GPU" if gpus else f"{cpus} CPU"
    return MethodResult(
        name=f"plain tf_keras fit ({device})",
        epoch_rates=tuple(usable / s for s in timer.train_seconds),
        epoch_cores=tuple(timer.cores),
        warmup=0,  # set by the caller
        wall_seconds=time.perf_counter() - start,
        samples_per_epoch=usable,
        details={"tf_threads": threads, "flops_per_sample": training_flops_per_sample(model),
                 "mixed_precision": config.use_mixed_precision(bool(gpus)), "jit_compile": config.jit_compile},
        global_batch=config.batch_size,
    )


def _set_tf_threads(tf, cpus: int) -> tuple[int, int]:
    from model.runtime import configure_threads, thread_counts

    return configure_threads(tf, *thread_counts(cpus))


def _with_warmup(result: MethodResult, warmup: int) -> MethodResult:
    return result.with_warmup(warmup)


# --------------------------------------------------------------------------- run


@dataclasses.dataclass(frozen=True)
class Options:
    epochs: int = 3
    warmup: int = 1
    samples: int = 1536
    batch_size: int = 128
    workers: tuple[int, ...] = (1, 2)
    cpus_per_worker: int | None = None
    nodes: int = 1
    gpus_per_worker: float = 0.0
    mixed_precision: str = "auto"
    jit_compile: bool = False
    lr_scaling: str = "none"
    in_trial: bool = True
    micro: bool = True
    repeats: int = 1
    seed: int = 0
    frames: int = FRAMES

    def train_config(self) -> TrainConfig:
        return TrainConfig(batch_size=self.batch_size, epochs=self.warmup + self.epochs, checkpoint_every=0,
                           seed=self.seed, mixed_precision=self.mixed_precision, jit_compile=self.jit_compile,
                           deterministic=not self.jit_compile,  # XLA: no deterministic MaxPool gradient
                           lr_scaling=self.lr_scaling)


def run(options: Options) -> dict[str, object]:
    """Every row once per ``--repeats`` run, in order; each run's plain fit without Ray running."""
    from benchmarks.conv_micro import run_in_subprocess
    from benchmarks.machine import peak_gflops

    cpus = len(os.sched_getaffinity(0))
    config = options.train_config()
    featureset = make_bench_featureset(options.samples, options.seed, options.frames)
    arrays = prepare_arrays(featureset, config)
    load_before = os.getloadavg()
    runs, micro = [], None
    for index in range(options.repeats):
        if options.repeats > 1:
            print(f"run {index + 1} of {options.repeats}", flush=True)
        rows = [run_plain(arrays, config, cpus).with_warmup(options.warmup)]
        if options.micro and index == 0:
            micro = run_in_subprocess(arrays["x_train"].shape[1:], options.batch_size, cpus,
                                      steps=5 if options.samples < 256 else 20)
        rows += _ray_rows(options, featureset, config, cpus, len(arrays["y_train"]))
        runs.append(rows if options.repeats == 1 else [r.renamed(f"{r.name} #{index + 1}") for r in rows])
    return {"runs": runs, "results": [r for rows in runs for r in rows], "cpus": cpus, "options": options,
            "micro": micro, "peak": peak_gflops(cpus), "load_before": load_before, "load_after": os.getloadavg(),
            "split": {k[2:]: len(v) for k, v in arrays.items() if k.startswith("y_")}}


def _ray_rows(options: Options, featureset: FeatureSet, config: TrainConfig, cpus: int,
              train_rows: int) -> list[MethodResult]:
    import ray

    from benchmarks.training_ray import ray_session, run_in_trial, run_train

    rows = []
    with ray_session(cpus, options.nodes) as info, tempfile.TemporaryDirectory(prefix="us8k_bench_") as storage:
        features_ref = ray.put(featureset)
        if options.in_trial and options.nodes == 1:
            row = run_in_trial(features_ref, config, info["cpus_per_node"], options.gpus_per_worker, train_rows, storage)
            rows.append(row.with_warmup(options.warmup))
        for n in options.workers:
            per_worker = _cpus_per_worker(options, n, cpus, info)
            row = run_train(features_ref, config, n, per_worker, options.gpus_per_worker, train_rows, storage,
                            options.nodes)
            rows.append(row.with_warmup(options.warmup))
    return rows


def _cpus_per_worker(options: Options, workers: int, cpus: int, info: dict) -> int:
    per_worker = options.cpus_per_worker or max(1, (cpus if options.nodes == 1 else info["cpus_per_node"] * options.nodes)
                                                // workers)
    if options.nodes > 1:
        per_worker = min(per_worker, info["cpus_per_node"])
    if workers * per_worker > cpus:
        raise ValueError(f"--workers {workers} x --cpus-per-worker {per_worker} needs {workers * per_worker} CPUs; "
                         f"this machine has {cpus}")
    return per_worker


# --------------------------------------------------------------------------- report


def format_report(report: dict[str, object]) -> str:
    from benchmarks.limits import limit_lines, scaling_lines

    runs: list[list[MethodResult]] = report["runs"]
    results: list[MethodResult] = report["results"]
    options: Options = report["options"]
    split = report["split"]
    lines = [
        f"Reference CNN, 40x{options.frames}x1 inputs, batch {options.batch_size} per worker; "
        f"{options.epochs} timed epoch(s) after {options.warmup} warm-up epoch(s); mixed precision "
        f"{options.mixed_precision}, XLA {'on (op determinism off)' if options.jit_compile else 'off'}"
        f"{f'; {len(runs)} runs, rows numbered #run' if len(runs) > 1 else ''}.",
        f"Clips: train {split['train']}, validation {split['val']}, test {split['test']}; "
        f"{report['cpus']} CPUs; load average before {_load(report['load_before'])}, "
        f"after {_load(report['load_after'])}.",
        "",
        f"{'method':<44} {'samples/s':>10} {'vs plain':>9} {'cores':>6} {'per core':>9} {'wall s':>8} "
        f"{'s/epoch@7000':>13}",
    ]
    for rows in runs:
        for r in rows:
            per_epoch = DEMO_EPOCH_CLIPS / r.samples_per_second if r.samples_per_second > 0 else 0.0
            cores = f"{r.cpu_cores:>6.2f}" if r.cpu_cores else f"{'-':>6}"
            lines.append(f"{r.name:<44} {r.samples_per_second:>10.1f} {_ratio(r, rows[0]):>9} {cores} "
                         f"{_ratio(r, rows[0], per_core=True):>9} {r.wall_seconds:>8.1f} {per_epoch:>13.1f}")
    lines += ["", "cores: the training process's CPU seconds per second of training (all its threads); per core: "
              "samples per CPU-second against the plain fit's, i.e. how well it used the CPU it got."]
    lines += ["", *_target_lines(runs, report["cpus"])]
    scaling = scaling_lines(runs[0], options.lr_scaling, TrainConfig().learning_rate)
    lines += ["", *scaling] if scaling else []
    limit_rows = [(r.name, r.samples_per_second) for r in results]
    lines += ["", *limit_lines(results[0].details.get("flops_per_sample"), report["peak"], report["micro"], limit_rows)]
    lines += ["", *_demo_lines(), "", *_detail_lines(results)]
    return "\n".join(lines)


def _ratio(row: MethodResult, plain: MethodResult, per_core: bool = False) -> str:
    mine, base = ((row.samples_per_cpu_second, plain.samples_per_cpu_second) if per_core
                  else (row.samples_per_second, plain.samples_per_second))
    return f"{mine / base:.2f}x" if mine > 0 and base > 0 else "-"


def _target_lines(runs: list[list[MethodResult]], cpus: int) -> list[str]:
    """The >= 0.95x target, for the rows with the plain fit's compute: the in-trial row and a
    1-worker group holding every CPU (a 1-worker row of fewer CPUs is a scaling baseline).
    Over several runs: each run's ratio to its own plain fit, and their median."""
    lines = []
    for prefix in ("in-trial", f"Ray Train 1 worker x {cpus} CPU"):
        ratios = [r.samples_per_second / rows[0].samples_per_second for rows in runs for r in rows
                  if r.name.startswith(prefix) and rows[0].samples_per_second > 0]
        if not ratios:
            continue
        name = next(r.name for r in runs[0] if r.name.startswith(prefix)).split(" #")[0]
        ratio = statistics.median(ratios)
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        spread = f"; median of {len(ratios)} runs: {' '.join(f'{x:.2f}' for x in ratios)}" if len(ratios) > 1 else ""
        lines.append(f"target: {name} >= {TARGET_RATIO}x plain: {verdict} ({ratio:.2f}x{spread})")
    return lines or [f"target: Ray (1 worker, {cpus} CPU) >= {TARGET_RATIO}x plain: not measured (no row with "
                     "the plain fit's CPUs)"]


def _demo_lines() -> list[str]:
    figures = ", ".join(f"{name} {s:g} s/epoch" for name, s in DEMO_SECONDS_PER_EPOCH)
    return [f"reference demo, published (their hardware, ~{DEMO_EPOCH_CLIPS:,} training clips "
            f"per epoch): {figures}; ours above in the s/epoch@7000 column."]


def _detail_lines(results: list[MethodResult]) -> list[str]:
    lines = ["per-epoch training samples/s (warm-up epochs in brackets):"]
    for r in results:
        rates = [f"[{x:.1f}]" if i < r.warmup else f"{x:.1f}" for i, x in enumerate(r.epoch_rates)]
        extras = ", ".join(f"{k}={v}" for k, v in r.details.items())
        lines.append(f"  {r.name}: {' '.join(rates)}; {r.samples_per_epoch} samples/epoch; {extras}")
    return lines


def _load(values: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def to_json(report: dict[str, object]) -> dict[str, object]:
    """The figures as JSON (``--json``; read by ``benchmarks/gpu_table.py``)."""
    rows = [{"name": r.name, "samples_per_second": r.samples_per_second, "epoch_rates": list(r.epoch_rates),
             "warmup": r.warmup, "wall_seconds": r.wall_seconds, "workers": r.workers,
             "global_batch": r.global_batch, "cpu_cores": r.cpu_cores} for r in report["results"]]
    return {"rows": rows, "options": dataclasses.asdict(report["options"]), "micro": report["micro"],
            "peak": report["peak"], "cpus": report["cpus"]}


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.training", description="Training throughput benchmark.")
    p.add_argument("--epochs", type=positive_int, default=None, help="timed epochs (default 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed first epochs (default 1)")
    p.add_argument("--samples", type=positive_int, default=None, help="training clips, about (default 1536)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="per worker (default 128)")
    p.add_argument("--workers", type=positive_int, nargs="+", default=None, help="Ray Train worker counts (1 2)")
    p.add_argument("--cpus-per-worker", type=positive_int, default=None, help="default: the CPUs // workers")
    p.add_argument("--nodes", type=positive_int, default=1, help="a ray.cluster_utils.Cluster of N nodes")
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.add_argument("--mixed-precision", choices=MIXED_PRECISION_MODES, default="auto")
    p.add_argument("--jit-compile", action="store_true",
                   help="XLA for every row (TrainConfig.jit_compile; op determinism off, which XLA needs)")
    p.add_argument("--lr-scaling", choices=LR_SCALINGS, default="none")
    p.add_argument("--no-in-trial", action="store_true", help="skip the in-trial row")
    p.add_argument("--no-micro", action="store_true", help="skip the conv micro-benchmark")
    p.add_argument("--repeats", type=positive_int, default=1,
                   help="run every row N times, alternating (plain, Ray rows, plain, ...): ratios per run and "
                        "their median (default 1)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke-test", action="store_true", help="tiny run for the test suite")
    modes = p.add_mutually_exclusive_group()
    modes.add_argument("--factors", nargs="*", metavar="NAME", default=None,
                       help="instead: one factor at a time against plain, each row in a fresh process "
                            "(default all rows; benchmarks/factors.py)")
    modes.add_argument("--augmentation", nargs="*", metavar="SETTING", default=None,
                       help="instead: on-the-fly augmentation rows in this process, no Ray (settings: none "
                            "time_shift masks mixup label_smoothing all; default all six)")
    return p


def options_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Options:
    smoke = SMOKE if args.smoke_test else {}
    chosen = {k: getattr(args, k) for k in ("epochs", "warmup", "samples", "batch_size") if getattr(args, k) is not None}
    merged = {**smoke, **chosen}
    workers = tuple(args.workers) if args.workers else ((1,) if args.smoke_test else (1, 2))
    if merged.get("warmup", 0) < 0:
        parser.error(f"--warmup must be >= 0, got {merged['warmup']}")
    if args.gpus_per_worker < 0:
        parser.error(f"--gpus-per-worker must be >= 0, got {args.gpus_per_worker}")
    return Options(workers=workers, cpus_per_worker=args.cpus_per_worker, nodes=args.nodes,
                   gpus_per_worker=args.gpus_per_worker, mixed_precision=args.mixed_precision,
                   jit_compile=args.jit_compile, lr_scaling=args.lr_scaling, in_trial=not args.no_in_trial, micro=not args.no_micro,
                   repeats=args.repeats, seed=args.seed, **merged)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    options = options_from(args, parser)
    if args.augmentation is not None:
        return _augmentation_main(args, options, parser)
    if args.factors is not None:
        from benchmarks.factors import factors_main

        return factors_main(args.factors, options, smoke=args.smoke_test, parser=parser)
    print(describe(), flush=True)  # first: Ray Tune prints its own lines while the rows run
    previous = os.environ.get(HEALTH_CHECK_ENV)
    os.environ.setdefault(HEALTH_CHECK_ENV, HEALTH_CHECK_INTERVAL_S)
    try:
        report = run(options)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if previous is None:
            os.environ.pop(HEALTH_CHECK_ENV, None)
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(to_json(report), f, indent=1)
    return 0


def _augmentation_main(args: argparse.Namespace, options: Options, parser: argparse.ArgumentParser) -> int:
    from benchmarks import augment_training

    settings = args.augmentation or list(augment_training.SETTINGS)
    unknown = sorted(set(settings) - set(augment_training.SETTINGS))
    if unknown:
        parser.error(f"--augmentation: unknown setting(s) {unknown}; known: {list(augment_training.SETTINGS)}")
    report = augment_training.run(epochs=options.epochs, warmup=options.warmup, samples=options.samples,
                                  batch_size=options.batch_size, seed=options.seed, settings=settings)
    print(describe())
    print(augment_training.format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
