"""python -m benchmarks.overhead [--trials 6] [--concurrency 1] [--epochs 1] [--frames 44]

Per-trial overhead benchmark (not a test). Runtime on 2 idle cores with the defaults: about 3
minutes (6 stock trials of ~15 s, then 6 project trials, plus Ray start-up).

A sweep trial is one (configuration, fold) pair running one Ray Train run. This measures what a
trial costs beyond its training loop, in one run, on one local Ray (2 CPUs, a plain
``ray.init`` unless Ray already runs in this process), over ``--trials`` trials of the same work:

(a) stock: a Tune function trainable that fits a ``ray.train.tensorflow.TensorflowTrainer`` with
    the stock ``TensorflowConfig``, ``TuneReportCallback`` and otherwise stock settings (Train's
    2 s health check, no ``reuse_actors``), as in Ray's Tune + Train example. One change:
    ``tune.with_resources(fn, {"CPU": 0.01})``; with the default 1 CPU per trial, two trials at
    once hold both CPUs and their workers can never be placed.
(b) project: the sweep's own trial, ``orchestration.trial.run_fold_trial``, with the Tune
    settings the sweep uses (``reuse_actors=True``, ``TRIAL_DRIVER_CPU`` per trial): a Ray
    Train worker group per trial (``--trial-process worker-group``);
(c) in-trial: the same trial in ``--trial-process in-trial`` mode: Train's local mode in the
    Tune trial process, which holds the worker's CPUs (what the sweep does by default for
    1-worker CPU trials on a one-node Ray it started).

Both run ``model.train_loop.train_loop_per_worker`` on the same seeded FeatureSet (put in the
object store once), fold, TrainConfig and worker resources; neither has the sweep's MLflow
callback. Per trial: wall = Tune's on_trial_start -> on_trial_complete (driver clock);
in-loop = the loop's own ``loop_seconds`` (loop entry to its final report; the stock
``TensorflowConfig`` imports TensorFlow in the worker before the loop, so that import counts as
stock overhead, while the project's loop imports it); overhead = wall - in-loop. Per pattern:
sweep ratio = ``Tuner.fit`` wall / (sum of in-loop / concurrency). The stock trial reads
``loop_seconds`` from ``fit()``'s Result and writes it to a file (its final report to Tune can be
lost: see ``orchestration.tune_bridge``); the project's comes from Tune's last result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.machine import describe
from features.argtypes import positive_float, positive_int
from features.toy import make_toy_featureset
from model.config import TrainConfig
from model.train_loop import make_loop_config, train_loop_per_worker
from orchestration.headless_ray import headless_ray_args

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

BENCH_FOLD = 1
OVERHEAD_TARGET_S = 5.0
STOCK, PROJECT, IN_TRIAL = "stock", "project", "in-trial"
STOCK_TRIAL_CPU = 0.01  # a token share for the stock trial process (Tune rejects 0)


@dataclass(frozen=True)
class BenchSettings:
    """One benchmark run: trials per pattern, trials at once, and each trial's work/resources."""

    trials: int = 6
    concurrency: int = 1
    epochs: int = 1
    frames: int = 44
    batch_size: int = 32
    cpus_per_worker: float = 1.0
    timeout_s: float = 1800.0
    seed: int = 0

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, seed=self.seed, checkpoint_every=0)


@dataclass(frozen=True)
class PatternResult:
    name: str
    concurrency: int
    tune_seconds: float
    walls: tuple[float, ...]  # per finished trial, driver clock
    loops: tuple[float, ...]  # per finished trial, in the same order
    errors: tuple[str, ...]

    @property
    def overheads(self) -> list[float]:
        return [w - loop for w, loop in zip(self.walls, self.loops, strict=True)]

    @property
    def sweep_ratio(self) -> float:
        ideal = sum(self.loops) / self.concurrency
        return self.tune_seconds / ideal if ideal > 0 else float("nan")


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def stock_trial(config: dict[str, Any], *, features: Any, settings: BenchSettings, out: str) -> None:
    """(a) Tune function trainable -> stock TensorflowTrainer + TuneReportCallback."""
    import ray.train
    from ray import tune
    from ray.train.tensorflow import TensorflowTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trainer = TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config=make_loop_config(
            features, BENCH_FOLD, settings.train_config(), intra_op_threads=max(1, round(settings.cpus_per_worker))
        ),
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": settings.cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=f"stock-{config['config_id']}", storage_path=out, callbacks=[TuneReportCallback()]
        ),
    )
    result = trainer.fit()
    trial_id = tune.get_context().get_trial_id()
    Path(out, f"{trial_id}.json").write_text(json.dumps({"loop_seconds": result.metrics["loop_seconds"]}))


def _clock():
    from ray.tune import Callback

    class TrialClock(Callback):
        def __init__(self) -> None:
            self.starts: dict[str, float] = {}
            self.walls: dict[str, float] = {}
            self.loops: dict[str, float] = {}

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            self.starts[trial.trial_id] = time.perf_counter()

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.walls[trial.trial_id] = time.perf_counter() - self.starts[trial.trial_id]
            if "loop_seconds" in (trial.last_result or {}):
                self.loops[trial.trial_id] = float(trial.last_result["loop_seconds"])

    return TrialClock()


def run_pattern(name: str, trainable: Any, settings: BenchSettings, storage: str, reuse_actors: bool) -> PatternResult:
    from ray import tune

    clock = _clock()
    tuner = tune.Tuner(
        trainable,
        # One configuration id per trial (every Train run gets its own directory), one fold.
        param_space={"config_id": tune.grid_search([f"t{i:02d}" for i in range(settings.trials)]),
                     "fold": BENCH_FOLD, "params": {}},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=settings.concurrency, reuse_actors=reuse_actors, time_budget_s=settings.timeout_s
        ),
        run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=[clock], verbose=0),
    )
    started = time.perf_counter()
    grid = tuner.fit()
    tune_seconds = time.perf_counter() - started
    loops = dict(clock.loops)
    for trial_id in clock.walls:  # the stock trial writes its loop time beside its run
        found = Path(storage, "stock-train", f"{trial_id}.json")
        if trial_id not in loops and found.exists():
            loops[trial_id] = json.loads(found.read_text())["loop_seconds"]
    ids = [t for t in clock.walls if t in loops]
    errors = tuple(str(r.error).strip().splitlines()[-1][:300] for r in grid if r.error)
    return PatternResult(name, settings.concurrency, tune_seconds,
                         tuple(clock.walls[t] for t in ids), tuple(loops[t] for t in ids), errors)


def run_stock(features_ref: Any, settings: BenchSettings, storage: str) -> PatternResult:
    from ray import tune

    out = os.path.join(storage, "stock-train")
    os.makedirs(out, exist_ok=True)
    fn = tune.with_parameters(stock_trial, features=features_ref, settings=settings, out=out)
    return run_pattern(STOCK, tune.with_resources(fn, {"CPU": STOCK_TRIAL_CPU}), settings, storage, False)


def run_project(features_ref: Any, settings: BenchSettings, storage: str, in_trial: bool = False) -> PatternResult:
    from ray import tune

    from orchestration.trial import TrialSettings, run_fold_trial

    trial_settings = TrialSettings(
        base_train=settings.train_config().to_dict(),
        workers_per_trial=1,
        cpus_per_worker=settings.cpus_per_worker,
        gpus_per_worker=0.0,
        storage_path=storage,
        sweep_name=IN_TRIAL if in_trial else PROJECT,
        train_max_failures=0,
        in_trial=in_trial,
    )
    fn = tune.with_parameters(run_fold_trial, features=features_ref, settings=trial_settings)
    trainable = tune.with_resources(fn, trial_settings.trial_resources())
    return run_pattern(IN_TRIAL if in_trial else PROJECT, trainable, settings, storage, True)


def wait_until_idle(timeout_s: float = 60.0) -> None:
    """Lets the previous pattern's actors go before the next one starts."""
    import ray

    deadline = time.monotonic() + timeout_s
    total = ray.cluster_resources().get("CPU", 0.0)
    while time.monotonic() < deadline and ray.available_resources().get("CPU", 0.0) < total - 1e-6:
        time.sleep(0.5)
    time.sleep(2.0)  # exiting processes still use CPU for a moment


def run(settings: BenchSettings, patterns: Sequence[str] = (STOCK, PROJECT, IN_TRIAL)) -> dict[str, Any]:
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, **headless_ray_args(), log_to_driver=False, configure_logging=False)
    storage = tempfile.mkdtemp(prefix="us8k-bench-overhead-")
    runners = {STOCK: run_stock, PROJECT: run_project,
               IN_TRIAL: lambda ref, s, path: run_project(ref, s, path, in_trial=True)}
    try:
        features_ref = ray.put(make_toy_featureset(frames=settings.frames, seed=settings.seed))
        results = []
        for name in patterns:
            wait_until_idle()
            results.append(runners[name](features_ref, settings, storage))
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        if started:
            ray.shutdown()
    return {"settings": settings, "results": results}


def _fmt(value: float, spec: str = ".1f") -> str:
    return "-" if value != value else format(value, spec)  # NaN -> "-"


def format_report(report: Mapping[str, Any]) -> str:
    settings: BenchSettings = report["settings"]
    results: list[PatternResult] = report["results"]
    lines = [
        f"{settings.trials} trials per pattern, {settings.concurrency} at once; each: {settings.epochs} epoch(s) "
        f"on 40x{settings.frames} features, batch {settings.batch_size}, 1 worker x {settings.cpus_per_worker:g} CPU",
        "",
        f"| {'pattern':<8} | {'wall/trial s':>12} | {'in-loop s':>9} | {'overhead s':>10} | {'sweep ratio':>11} |",
        f"|{'-' * 10}|{'-' * 13}:|{'-' * 10}:|{'-' * 11}:|{'-' * 12}:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name:<8} | {_fmt(_median(r.walls)):>12} | {_fmt(_median(r.loops), '.2f'):>9} | "
            f"{_fmt(_median(r.overheads)):>10} | {_fmt(r.sweep_ratio, '.2f') + 'x':>11} |"
        )
    lines.append("")
    lines.append("medians over the finished trials; overhead = wall - in-loop; "
                 "sweep ratio = Tuner.fit wall / (sum of in-loop / concurrency)")
    for project in (r for r in results if r.name != STOCK and r.walls):
        overhead = _median(project.overheads)
        verdict = "met" if overhead <= OVERHEAD_TARGET_S else "NOT met"
        lines.append(f"target: {project.name} overhead <= {OVERHEAD_TARGET_S:g} s per trial: {verdict} ({overhead:.1f} s)")
    for r in results:
        if len(r.walls) < settings.trials:
            lines.append(f"warning: {r.name}: {len(r.walls)}/{settings.trials} trials finished")
        lines.extend(f"error: {r.name}: {e}" for e in r.errors[:3])
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description="Per-trial overhead benchmark.")
    p.add_argument("--trials", type=positive_int, default=6)
    p.add_argument("--concurrency", type=positive_int, default=1)
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--frames", type=positive_int, default=44)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--cpus-per-worker", type=positive_float, default=1.0)
    p.add_argument("--timeout", type=positive_float, default=1800.0, help="Tune time budget per pattern, s")
    p.add_argument("--patterns", nargs="+", choices=[STOCK, PROJECT, IN_TRIAL], default=[STOCK, PROJECT, IN_TRIAL])
    p.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.concurrency * args.cpus_per_worker > 2:
        print("error: --concurrency x --cpus-per-worker must fit the benchmark's 2 CPUs", file=sys.stderr)
        return 2
    settings = BenchSettings(args.trials, args.concurrency, args.epochs, args.frames, args.batch_size,
                             args.cpus_per_worker, args.timeout)
    print(describe())
    report = run(settings, args.patterns)
    print(format_report(report))
    if args.json:
        print(json.dumps({"settings": dataclasses.asdict(settings),
                          "results": [dataclasses.asdict(r) for r in report["results"]]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
