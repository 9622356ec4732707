"""python -m benchmarks.training --factors [NAME ...] [--epochs 3] [--warmup 1] [--samples 1536] [--batch-size 128]

One factor at a time against a plain tf_keras fit, every row in a fresh Python process (thread
pools, op determinism and oneDNN are fixed when TensorFlow loads, so no row may inherit another
row's). Runtime, estimated from the arithmetic (23 rows x (4 epochs x ~1,500 clips / rate + ~10 s
of start-up)): ~55 minutes on 2 idle cores where the plain fit runs 47 samples/s, ~12 at 325.

Every row trains the reference CNN from the same seed on the same clips (``--samples``, the
train loop's own split and normalisation, handed to the row's process in an .npz file) and
reports the training phase's samples/s over the epochs after ``--warmup`` (the loop's rule:
epoch start to validation start), the whole epoch's seconds (validation and epoch-end
callbacks included), and the network's training FLOPs per sample (``model/flops.py``). The
``plain`` row is the baseline; it runs first and again last (``plain (again)``) so a drift of
the machine's speed during the run shows; ratios are against the mean of the two.

What each row changes is in ``FACTORS`` (its ``what``). The train loop runs with: thread pools
from ``model.runtime.thread_counts``, op determinism on, the default strategy for one worker,
its tf.data pipeline (``model.pipeline.make_dataset``) with fit() under tf.data debug mode
(``model._tf_compat.no_autotune_threads``), and a checkpoint at every improved epoch. The
``micro`` row is not a fit: ``benchmarks.conv_micro``, the network's convolutions alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.training_result import EpochTimer
from model.runtime import onednn_env, thread_counts
from orchestration.headless_ray import headless_ray_args

ROW_TIMEOUT_S = 3600.0
RESULT_PREFIX = "FACTOR_ROW_RESULT "


@dataclass(frozen=True)
class RowSpec:
    """How one row's process trains (the baseline: every field at its default)."""

    batch_size: int = 128
    epochs: int = 4
    seed: int = 0
    cpus: int = 2
    threads: str = "loop"  # "loop": model.runtime.thread_counts; "tf-default": none set; "inter1"
    deterministic: bool = True
    strategy: str = "default"  # or "mwms": MultiWorkerMirroredStrategy, one worker, TF_CONFIG set
    data: str = "numpy"  # or "pipeline": model.pipeline.make_dataset, as the loop
    debug_mode: bool = False  # fit() under model._tf_compat.no_autotune_threads, as the loop
    autotune: bool = True
    prefetch: bool = True
    shard_policy: str = "DATA"
    checkpoints: bool = False  # the loop's checkpoint write (weights, optimizer, best) every epoch
    jit_compile: bool = False
    ray_running: bool = False  # a local Ray (GCS, raylet, their threads) idles beside the fit
    in_ray_actor: bool = False  # the fit inside a bare Ray actor holding `cpus` CPUs
    idle_actors: int = 0  # with in_ray_actor: this many idle Ray actors (num_cpus=0) beside it
    kind: str = "fit"  # or "micro": benchmarks.conv_micro

    def replace(self, **changes: Any) -> RowSpec:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Factor:
    name: str
    what: str
    spec: Mapping[str, Any] = field(default_factory=dict)  # RowSpec changes
    env: Mapping[str, str] = field(default_factory=dict)  # the row process's extra environment


def factor_table(cpus: int, batch_size: int) -> tuple[Factor, ...]:
    """Every row, baseline first; batch rows for the sizes other than ``batch_size``."""
    intra, inter = _loop_threads(cpus)
    pipeline = {"data": "pipeline", "debug_mode": True}
    rows = [
        Factor("plain", f"baseline: model.fit on numpy arrays, threads intra {intra} / inter {inter}, "
                        "op determinism on, default strategy"),
        Factor("threads-tf-default", "TensorFlow's own pools (every core of the machine, both)",
               {"threads": "tf-default"}),
        Factor("threads-inter1", f"inter-op pool of 1 thread (intra {intra})", {"threads": "inter1"}),
        Factor("omp-ray", f"OMP_NUM_THREADS={cpus}, as Ray sets it for a worker holding {cpus} CPU(s)",
               env={"OMP_NUM_THREADS": str(cpus)}),
        Factor("omp-1", "OMP_NUM_THREADS=1, as Ray sets it for an actor of < 2 CPUs",
               env={"OMP_NUM_THREADS": "1"}),
        Factor("no-determinism", "op determinism off", {"deterministic": False}),
        Factor("mwms", "MultiWorkerMirroredStrategy with one worker (TF_CONFIG set, as a 1-worker "
                       "Ray Train group had before model/runtime.py)", {"strategy": "mwms"}),
        Factor("pipeline", "the loop's tf.data pipeline, fit() outside debug mode", {"data": "pipeline"}),
        Factor("pipeline-debug", "the loop's tf.data pipeline, fit() in tf.data debug mode (as the loop)",
               pipeline),
        Factor("pipeline-no-autotune", "the loop's pipeline with tf.data autotune off",
               {"data": "pipeline", "autotune": False}),
        Factor("pipeline-no-prefetch", "the loop's pipeline without its prefetch",
               {"data": "pipeline", "prefetch": False}),
        Factor("mwms-pipeline-debug", "MWMS (1 worker) + the loop's pipeline + debug mode: the "
                                      "1-worker Ray Train loop before model/runtime.py", {**pipeline, "strategy": "mwms"}),
        Factor("mwms-pipeline-shard-off", "as mwms-pipeline-debug, auto-shard policy OFF instead of DATA",
               {**pipeline, "strategy": "mwms", "shard_policy": "OFF"}),
        Factor("checkpoints", "the loop's checkpoint (get_weights, optimizer state, .npz files) every epoch",
               {"checkpoints": True}),
        *(Factor(f"batch-{b}", f"batch {b}", {"batch_size": b}) for b in (32, 64, 128) if b != batch_size),
        Factor("ray-idle", f"a local Ray (ray.init(num_cpus={cpus})) running idle beside the fit: what Ray's "
                           "own processes take from the machine", {"ray_running": True}),
        Factor("ray-actor", f"the fit inside a bare Ray actor (num_cpus={cpus}): Ray's own processes beside it, "
                            "the fit in a Ray worker process (nice 15, Ray's core-worker threads)", {"in_ray_actor": True}),
        Factor("ray-actor-idle5", "as ray-actor, with 5 idle actors beside it: as many Ray processes as a 1-worker "
                                  "Ray Train run adds (controller, placement-group cleaner, synchronisation actor, "
                                  "dataset manager, autoscaling coordinator)", {"in_ray_actor": True, "idle_actors": 5}),
        Factor("xla", "XLA: model.compile(jit_compile=True), with op determinism off as XLA needs (compare "
                      "with no-determinism; tensorflow/tensorflow#69417)", {"jit_compile": True, "deterministic": False}),
        Factor("onednn-off", "TF_ENABLE_ONEDNN_OPTS=0 (oneDNN is on by default on x86)", env=onednn_env("off")),
        Factor("micro", "not a fit: the network's convolutions alone, forward + backward, in a "
                        "tf.function (benchmarks/conv_micro.py)", {"kind": "micro"}),
    ]
    return tuple(rows)


def _loop_threads(cpus: int) -> tuple[int, int]:
    return thread_counts(cpus)


def resolve(names: Sequence[str], table: Sequence[Factor]) -> list[Factor]:
    """The chosen rows (all when ``names`` is empty), baseline first; unknown names are errors."""
    known = {f.name: f for f in table}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"--factors: unknown row(s) {unknown}; known: {list(known)}")
    chosen = [known[n] for n in names if n != "plain"] if names else [f for f in table if f.name != "plain"]
    return [known["plain"], *chosen]


# --------------------------------------------------------------------------- parent side


def run_factors(arrays: Mapping[str, np.ndarray], base: RowSpec, factors: Sequence[Factor],
                warmup: int) -> list[dict[str, Any]]:
    """Each factor's row in its own process, then the baseline again; results in that order."""
    with tempfile.TemporaryDirectory(prefix="us8k_factors_") as folder:
        path = Path(folder) / "arrays.npz"
        np.savez(path, **arrays)
        order = [*factors, dataclasses.replace(factors[0], name="plain (again)")]
        return [_run_row_process(f, base.replace(**f.spec), path, warmup) for f in order]


def _run_row_process(factor: Factor, spec: RowSpec, arrays_path: Path, warmup: int) -> dict[str, Any]:
    env = {**os.environ, **factor.env, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}
    command = [sys.executable, "-m", "benchmarks.factors", "--row", json.dumps(dataclasses.asdict(spec)),
               "--arrays", str(arrays_path)]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=ROW_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"name": factor.name, "what": factor.what, "warmup": warmup,
                "error": f"no result within {ROW_TIMEOUT_S:.0f} s"}
    found = [line[len(RESULT_PREFIX):] for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"name": factor.name, "what": factor.what, "warmup": warmup,
                "error": f"row process exited {done.returncode}: {' | '.join(tail)}"}
    return {"name": factor.name, "what": factor.what, "warmup": warmup,
            "process_seconds": time.perf_counter() - started, **json.loads(found[-1])}


# --------------------------------------------------------------------------- row process


def run_row(spec: RowSpec, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """One row, in this (fresh) process."""
    if spec.in_ray_actor:
        return _run_in_ray_actor(spec, arrays)
    if spec.kind == "micro":
        from benchmarks.conv_micro import run_micro

        return run_micro(arrays["x_train"].shape[1:], spec.batch_size, spec.cpus, steps=spec.epochs * 5)
    import tensorflow as tf
    import tf_keras as keras

    from model import runtime

    intra, inter = runtime.thread_counts(spec.cpus)
    pools = {"loop": (intra, inter), "tf-default": (None, None), "inter1": (intra, 1)}[spec.threads]
    runtime.configure_threads(tf, *pools)
    keras.utils.set_random_seed(spec.seed)
    runtime.set_determinism(tf, spec.deterministic)
    strategy = _one_worker_mwms(tf) if spec.strategy == "mwms" else tf.distribute.get_strategy()
    kind = runtime.MULTI_WORKER_STRATEGY if spec.strategy == "mwms" else runtime.DEFAULT_STRATEGY
    model, flops, steps = _build(tf, strategy, arrays, spec)
    timer = EpochTimer()
    callbacks = [*([_checkpoint_callback(keras, model)] if spec.checkpoints else []), timer.callback(keras)]
    started = time.perf_counter()
    with _ray_beside(spec):
        _fit(tf, model, arrays, spec, steps, callbacks)
        returned = time.perf_counter()
    timer.close()
    usable = steps * spec.batch_size
    return {
        "epoch_rates": [usable / s for s in timer.train_seconds],
        "epoch_seconds": timer.epoch_seconds,
        "epoch_cores": timer.cores,
        "samples_per_epoch": usable,
        "fit_seconds": time.perf_counter() - started,
        # From the end of training to fit()'s return: idle waiting in TensorFlow's teardown.
        "fit_teardown_s": returned - timer.ended_at if timer.ended_at else 0.0,
        "flops_per_sample": flops,
        "runtime": runtime.describe(tf, kind),
    }


def _run_in_ray_actor(spec: RowSpec, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The same row inside a Ray actor holding ``spec.cpus`` CPUs, ``spec.idle_actors`` idle
    actors beside it (each a Ray worker process, as Train's controller and helpers are)."""
    import ray

    # By module name (not __main__, which a row process is): Ray then imports these classes in
    # its workers instead of pickling this module's globals.
    from benchmarks import factors

    ray.init(num_cpus=spec.cpus, **headless_ray_args(), log_to_driver=False, configure_logging=False)
    try:
        idle = [ray.remote(num_cpus=0)(factors._IdleActor).remote() for _ in range(spec.idle_actors)]
        ray.get([actor.ready.remote() for actor in idle])
        fitter = ray.remote(num_cpus=spec.cpus)(factors._RowActor).remote()
        inner = spec.replace(in_ray_actor=False, idle_actors=0)
        return ray.get(fitter.run.remote(dataclasses.asdict(inner), dict(arrays)))
    finally:
        ray.shutdown()


class _RowActor:
    def run(self, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        return run_row(RowSpec(**spec), arrays)


class _IdleActor:
    def ready(self) -> bool:
        return True


@contextlib.contextmanager
def _ray_beside(spec: RowSpec):
    if not spec.ray_running:
        yield
        return
    import ray

    ray.init(num_cpus=spec.cpus, **headless_ray_args(), log_to_driver=False, configure_logging=False)
    try:
        time.sleep(2.0)  # let its start-up settle: the row measures it idle
        yield
    finally:
        ray.shutdown()


def _one_worker_mwms(tf):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}})
    return tf.distribute.MultiWorkerMirroredStrategy()


def _build(tf, strategy, arrays: Mapping[str, np.ndarray], spec: RowSpec):
    from features.us8k import NUM_CLASSES
    from model.cnn import build_cnn, compile_model
    from model.config import TrainConfig
    from model.flops import training_flops_per_sample

    steps = len(arrays["y_train"]) // spec.batch_size
    if steps == 0:
        raise ValueError(f"{len(arrays['y_train'])} training clips, fewer than one batch of {spec.batch_size}")
    config = TrainConfig(batch_size=spec.batch_size, epochs=spec.epochs, seed=spec.seed, checkpoint_every=0,
                         deterministic=spec.deterministic, jit_compile=spec.jit_compile)
    with strategy.scope():
        model = compile_model(build_cnn(arrays["x_train"].shape[1:], NUM_CLASSES, config), config,
                              steps_per_epoch=steps)
    return model, training_flops_per_sample(model), steps


def _fit(tf, model, arrays: Mapping[str, np.ndarray], spec: RowSpec, steps: int, callbacks: list) -> None:
    usable = steps * spec.batch_size
    if spec.data == "numpy":
        model.fit(arrays["x_train"][:usable], arrays["y_train"][:usable], batch_size=spec.batch_size,
                  epochs=spec.epochs, validation_data=(arrays["x_val"], arrays["y_val"]), shuffle=True,
                  callbacks=callbacks, verbose=0)
        return
    from model._tf_compat import no_autotune_threads
    from model.pipeline import make_dataset

    shared = {"seed": spec.seed, "prefetch": spec.prefetch, "autotune": spec.autotune,
              "shard_policy": spec.shard_policy}
    train = make_dataset(tf, arrays["x_train"], arrays["y_train"], spec.batch_size, train_passes=spec.epochs, **shared)
    val = make_dataset(tf, arrays["x_val"], arrays["y_val"], spec.batch_size, **shared)
    with no_autotune_threads() if spec.debug_mode else contextlib.nullcontext():
        model.fit(train, validation_data=val, epochs=spec.epochs, steps_per_epoch=steps, callbacks=callbacks,
                  verbose=0)


def _checkpoint_callback(keras, model):
    """What the loop does at an improved epoch: read weights and optimizer state, write them."""
    from model import checkpoints as ckpt

    def write(epoch, logs=None):
        weights = model.get_weights()
        directory = ckpt.staging_directory("us8k_factor_ckpt_")
        try:
            arrays = {ckpt.WEIGHTS_FILE: weights, ckpt.OPTIMIZER_FILE: ckpt.optimizer_values(model.optimizer),
                      ckpt.BEST_WEIGHTS_FILE: weights}
            ckpt.write_checkpoint(directory, ckpt.TrainState(epoch=epoch + 1), arrays, {"logs": dict(logs or {})})
        finally:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)

    return keras.callbacks.LambdaCallback(on_epoch_end=write)


# --------------------------------------------------------------------------- report


SMOKE_FACTORS = ("mwms-pipeline-debug", "ray-actor-idle5", "micro")


def steady(row: Mapping[str, Any]) -> tuple[float, float]:
    """(training samples/s, mean whole-epoch seconds) over the epochs after the warm-up."""
    if row.get("kind") == "micro":
        return row["samples_per_second"], float("nan")
    warmup = row["warmup"]
    rates = [r for r in (row["epoch_rates"][warmup:] or row["epoch_rates"]) if r > 0]
    seconds = row["epoch_seconds"][warmup:] or row["epoch_seconds"]
    rate = len(rates) / sum(1.0 / r for r in rates) if rates else 0.0
    return rate, (sum(seconds) / len(seconds) if seconds else float("nan"))


def steady_cores(row: Mapping[str, Any]) -> float:
    """Mean CPU cores the row's training process used over the epochs after the warm-up (nan: not measured)."""
    cores = row.get("epoch_cores") or []
    cores = cores[row.get("warmup", 0):] or cores
    return sum(cores) / len(cores) if cores else float("nan")


def format_factors(rows: Sequence[Mapping[str, Any]], peak: Mapping[str, Any], header: str) -> str:
    from benchmarks.limits import gflops, peak_line

    good = [r for r in rows if "error" not in r]
    plains = [steady(r) for r in good if r["name"] in ("plain", "plain (again)")]
    base_rate = sum(p[0] for p in plains) / len(plains) if plains else 0.0
    base_epoch = sum(p[1] for p in plains) / len(plains) if plains else float("nan")
    flops = next((r["flops_per_sample"] for r in good if "flops_per_sample" in r), None)
    lines = [header, "", f"| {'row':<24} | {'samples/s':>9} | {'vs plain':>8} | {'cores':>5} | {'epoch s':>7} | "
             f"{'vs plain':>8} | {'GFLOP/s':>7} | {'% peak':>6} | what |",
             f"|{'-' * 26}|{'-' * 10}:|{'-' * 9}:|{'-' * 6}:|{'-' * 8}:|{'-' * 9}:|{'-' * 8}:|{'-' * 7}:|------|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']:<24} | {'failed':>9} | {'-':>8} | {'-':>5} | {'-':>7} | {'-':>8} | {'-':>7} | {'-':>6} | "
                         f"{r['error']} |")
            continue
        rate, epoch = steady(r)
        achieved = r["gflops"] if r.get("kind") == "micro" else gflops(rate, r["flops_per_sample"])
        lines.append(
            f"| {r['name']:<24} | {rate:>9.1f} | {_ratio(rate, base_rate):>8} | {_num(steady_cores(r)):>5} | {_num(epoch):>7} | "
            f"{_ratio(base_epoch, epoch):>8} | {achieved:>7.1f} | {100 * achieved / peak['gflops'] if peak['gflops'] else 0:>5.0f}% | "
            f"{r['what']} |")
    lines += ["", "vs plain: samples/s over the mean of the two plain rows; for epoch s, plain's over the row's "
              "(> 1 = faster). epoch s: a whole epoch, validation and epoch-end callbacks included. cores: the "
              "training process's CPU seconds per second of training (all its threads)."]
    if len(plains) == 2 and plains[0][0] > 0:
        lines.append(f"plain first {plains[0][0]:.1f}, last {plains[1][0]:.1f} samples/s: the machine drifted "
                     f"{100 * abs(plains[1][0] - plains[0][0]) / plains[0][0]:.1f}% during the run")
    if flops:
        lines.append(f"training FLOPs per sample: {flops / 1e6:.1f} M (model/flops.py); micro: convolutions only")
    lines += [peak_line(peak), "", "runtime per row (threads intra/inter, strategy, determinism, OMP_NUM_THREADS, "
                                   "oneDNN; fit teardown: end of training to fit()'s return, idle):"]
    for r in good:
        rt = r.get("runtime") or {}
        teardown = f", fit teardown {r['fit_teardown_s']:.1f} s" if "fit_teardown_s" in r else ""
        lines.append(f"  {r['name']}: {rt.get('intra_op_threads')}/{rt.get('inter_op_threads')}, {rt.get('strategy')}, "
                     f"determinism {rt.get('op_determinism')}, OMP {rt.get('omp_num_threads')}, "
                     f"oneDNN {rt.get('onednn_env')}{teardown}")
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and b == b and a == a else "-"


def _num(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"


def factors_main(names: Sequence[str], options, *, smoke: bool, parser) -> int:
    """``python -m benchmarks.training --factors``: the rows, the table; 1 if a row failed."""
    from benchmarks.machine import describe, peak_gflops
    from benchmarks.training import FRAMES, _load, make_bench_featureset, prepare_arrays

    cpus = len(os.sched_getaffinity(0))
    print(describe(), flush=True)
    try:
        chosen = resolve(names or (SMOKE_FACTORS if smoke else ()), factor_table(cpus, options.batch_size))
    except ValueError as exc:
        parser.error(str(exc))
    arrays = prepare_arrays(make_bench_featureset(options.samples, options.seed, options.frames), options.train_config())
    too_big = [f.name for f in chosen if f.spec.get("batch_size", 0) > len(arrays["y_train"])]
    if too_big:
        print(f"skipped: {', '.join(too_big)} (a batch larger than the {len(arrays['y_train'])} training clips)")
        chosen = [f for f in chosen if f.name not in too_big]
    base = RowSpec(batch_size=options.batch_size, epochs=options.warmup + options.epochs, seed=options.seed, cpus=cpus)
    load_before = os.getloadavg()
    rows = run_factors({k: arrays[k] for k in ("x_train", "y_train", "x_val", "y_val")}, base, chosen, options.warmup)
    header = (f"One factor at a time against a plain tf_keras fit, every row in a fresh process: reference CNN, "
              f"40x{options.frames if options.frames else FRAMES}x1, batch {options.batch_size}, "
              f"{len(arrays['y_train'])} training clips, {options.epochs} timed epoch(s) after {options.warmup} "
              f"warm-up; {cpus} CPUs; load average before {_load(load_before)}, after {_load(os.getloadavg())}.")
    print(format_factors(rows, peak_gflops(cpus), header))
    failed = [r["name"] for r in rows if "error" in r]
    if failed:
        print(f"error: row(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _row_main(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.factors", description="one factor row (internal)")
    parser.add_argument("--row", required=True, help="RowSpec as JSON")
    parser.add_argument("--arrays", required=True, help=".npz of x_train, y_train, x_val, y_val")
    args = parser.parse_args(argv)
    spec = RowSpec(**json.loads(args.row))
    with np.load(args.arrays) as data:
        arrays = {k: data[k] for k in data.files}
    print(RESULT_PREFIX + json.dumps(run_row(spec, arrays)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_row_main(sys.argv[1:]))
