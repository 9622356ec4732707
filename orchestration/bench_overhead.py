"""python -m orchestration.bench_overhead [--trials 6] [--concurrency 1] [--epochs 1] [--frames 44]

Per-trial overhead benchmark (not a test). Runtime: about 2.5 minutes on 2 idle cores with the
defaults (6 stock trials of ~15 s, then 6 project trials of ~7 s, plus Ray start-up); about
4.5 minutes while other work keeps the load average at 5-8.

A sweep trial is one (configuration, fold) pair running one Ray Train run. This measures what a
trial costs beyond its training, in one run, on one local Ray instance (2 CPUs, started as the
sweep starts it, unless Ray is already running in this process), over ``--trials`` trials of
identical work:

(a) stock: a Tune function trainable that imports ``ray.train.tensorflow.TensorflowTrainer`` and
    fits it with the stock ``TensorflowConfig``, ``TuneReportCallback`` and an otherwise stock
    Train ``RunConfig`` (storage redirected to a temporary directory), default controller
    settings (health check every 2 s), Ray's usual runtime envs, no ``reuse_actors``. The one
    change from Ray's example: ``tune.with_resources(fn, {"CPU": 0.01})``. With the default 1
    CPU per trial, two trials at once hold both CPUs and their Train workers can never be
    placed (deadlock at concurrency 2).
(b) project: the sweep's own path, ``orchestration.trial.run_fold_trial`` with ``TrialSettings``
    -> ``orchestration.train_fold.train_fold`` (TRAIN_ENV, TFConfigNoImport, lean controller
    callbacks, no runtime envs, controller host, drain_tune_reports), with the Tune settings of
    ``sweep_runner._tuner`` (``reuse_actors=True``, ``{"CPU": TRIAL_DRIVER_CPU}`` per trial,
    ``verbose=0``) inside ``tune_trials_without_runtime_env()`` as the sweep does; its workers
    reserve what ``run_fold_trial`` gives them (``cpus_per_worker`` less their share of the
    trial's CPU), where stock workers reserve Ray's usual whole ``cpus_per_worker``.

Both run the real ``model.train_loop.train_loop_per_worker`` on the same seeded FeatureSet (put
in the object store once, passed with ``tune.with_parameters``), the same fold, TrainConfig and
worker resources. Neither has the sweep's MLflow callback; both Tuners run with ``verbose=0``.

Measured per trial: wall = Tune's on_trial_start -> on_trial_complete (driver clock); in-worker =
first ``train_loop_per_worker`` entry -> last exit over the trial's workers (recorded by the
workers); overhead = wall - in-worker. Per pattern: sweep ratio = ``Tuner.fit`` wall /
(sum of in-worker / concurrency). Timestamps go to a JSON-lines file (one machine, one clock).
Note that on_trial_start fires once the trial actor is up: a new actor's process start lands
between trials (printed as "gaps"), not in the per-trial wall. In-worker time is the same loop
on the same data, with one difference: the stock ``TensorflowConfig`` imports TensorFlow in the
worker before the loop starts (so that import counts as stock overhead), while with
``TFConfigNoImport`` the loop imports it (project in-worker time). Compare wall/trial too.

Instrumentation: the workers run ``TimedLoop`` (entry/exit timestamps around the real loop).
``train_fold`` has no hook for that, so in (b) the trial process swaps three of
``orchestration.train_fold``'s module globals for the duration of the trial: the loop function,
and timestamping wrappers around ``drop_unused_controller_callbacks`` (called right before
``fit()``) and ``drain_tune_reports`` (right after). Behaviour is otherwise unchanged.

Environment: Train's controller reads ``RAY_TRAIN_*`` variables from the process that builds the
Trainer (propagated to the controller and workers) and from the raylet's environment, which is
the driver's at ``ray.init``. This module starts Ray the way the sweep does
(``orchestration.ray_env.init_ray``: the raylet inherits the project's TRAIN_ENV, so (b)'s
trial processes, controllers and workers need no runtime env). (a) runs first, with Ray's
default values of those variables set explicitly in the driver while it runs: Tune forwards
them to its trial processes and Train to its controller and workers, through the runtime envs
stock processes get anyway. The health-check interval each pattern's workers actually saw is
printed, as evidence.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from features.argtypes import positive_float, positive_int
from features.config import from_dict_strict
from features.toy import make_toy_featureset
from model.config import TrainConfig
from model.train_loop import make_loop_config, train_loop_per_worker

# Keep TensorFlow's C++ start-up chatter out of the workers' logs, as the sweep does.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
BENCH_FOLD = 1
BANDS = 40
OVERHEAD_TARGET_S = 5.0
RATIO_TARGET = 1.25
STOCK, PROJECT = "stock", "project"
STOCK_TRIAL_CPU = 0.01  # a token share for the stock trial process (Tune rejects 0)

# Points of a trial's timeline, in order; seconds from Tune's on_trial_start.
POINTS = (
    "trial_entry",
    "imports_done",
    "fit_start",
    "worker_process_start",
    "loop_entry",
    "loop_exit",
    "fit_return",
    "trial_exit",
    "complete",
)
PHASE_LABELS = (
    "Tune trial start -> trial function entry",
    "entry -> trainer imports done",
    "imports done -> fit() start",
    "fit() start -> Train worker process start",
    "worker process start -> worker loop entry",
    "worker loop entry -> exit (in-worker)",
    "loop exit -> fit() return",
    "fit() return -> trial function exit",
    "trial function exit -> Tune trial complete",
)


# --------------------------------------------------------------------------- features


# --------------------------------------------------------------------------- instrumentation


def log_event(path: str, event: str, trial_id: str, t: float | None = None, **extra: Any) -> None:
    """Appends one timestamped record (one short line per write: safe across processes)."""
    record = {"ev": event, "t": time.time() if t is None else t, "trial": trial_id}
    record.update(pid=os.getpid(), **extra)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_events(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def process_start_time() -> float | None:
    """Wall-clock time this process started (Linux /proc), or None elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return boot + start_ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class TimedLoop:
    """``train_loop_per_worker`` with entry/exit timestamps (runs in every Train worker)."""

    events: str
    trial_id: str

    def __call__(self, config: dict[str, Any]) -> None:
        entered = time.time()
        import ray.train

        rank = ray.train.get_context().get_world_rank()
        log_event(
            self.events,
            "loop_entry",
            self.trial_id,
            t=entered,
            rank=rank,
            process_start=process_start_time(),
            health_check=os.environ.get(HEALTH_CHECK_ENV),
            tf_preloaded="tensorflow" in sys.modules,
        )
        ok = False
        try:
            train_loop_per_worker(config)
            ok = True
        finally:
            log_event(self.events, "loop_exit", self.trial_id, rank=rank, ok=ok)


def stock_trial(
    config: dict[str, Any],
    *,
    features: Any,
    events: str,
    train_config: dict[str, Any],
    workers: int,
    cpus_per_worker: float,
    storage: str,
) -> None:
    """(a) Tune function trainable -> TensorflowTrainer, as in Ray's Tune + Train example."""
    import ray.train
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    log_event(events, "trial_entry", trial_id)
    from ray.train.tensorflow import TensorflowTrainer  # imports TensorFlow, once per process
    from ray.tune.integration.ray_train import TuneReportCallback

    log_event(events, "imports_done", trial_id)
    trainer = TensorflowTrainer(
        TimedLoop(events, trial_id),
        train_loop_config=make_loop_config(
            features,
            int(config["fold"]),
            TrainConfig.from_dict(train_config),
            intra_op_threads=max(1, round(cpus_per_worker)),  # as train_fold sizes TF's pools
        ),
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, resources_per_worker={"CPU": cpus_per_worker}
        ),
        run_config=ray.train.RunConfig(
            name=f"stock-{config['config_id']}",
            storage_path=storage,
            callbacks=[TuneReportCallback()],
        ),
    )
    log_event(events, "fit_start", trial_id)
    trainer.fit()
    log_event(events, "fit_return", trial_id)
    log_event(events, "trial_exit", trial_id)


def project_trial(config: dict[str, Any], *, features: Any, settings: Any, events: str) -> None:
    """(b) ``orchestration.trial.run_fold_trial`` with timestamps around it (see module doc)."""
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    log_event(events, "trial_entry", trial_id)
    import orchestration.train_fold as train_fold_module  # imports TensorFlow, once per process
    from orchestration.trial import run_fold_trial

    log_event(events, "imports_done", trial_id)
    with instrumented_train_fold(train_fold_module, events, trial_id):
        run_fold_trial(config, features=features, settings=settings)
    log_event(events, "trial_exit", trial_id)


@contextlib.contextmanager
def instrumented_train_fold(module: Any, events: str, trial_id: str) -> Iterator[None]:
    """Timestamps fit() start/return and times the workers' loop inside ``train_fold``."""
    names = ("train_loop_per_worker", "drop_unused_controller_callbacks", "drain_tune_reports")
    originals = {name: getattr(module, name) for name in names}

    def before_fit(trainer: Any) -> list[str]:
        removed = originals["drop_unused_controller_callbacks"](trainer)
        log_event(events, "fit_start", trial_id)
        return removed

    def after_fit(*args: Any, **kwargs: Any) -> None:
        log_event(events, "fit_return", trial_id)
        originals["drain_tune_reports"](*args, **kwargs)

    module.train_loop_per_worker = TimedLoop(events, trial_id)
    module.drop_unused_controller_callbacks = before_fit
    module.drain_tune_reports = after_fit
    try:
        yield
    finally:
        for name, value in originals.items():
            setattr(module, name, value)


def make_trial_clock():
    """A Tune Callback recording, in the driver, when each trial starts and ends."""
    from ray import tune

    class TrialClock(tune.Callback):
        def __init__(self) -> None:
            self.starts: dict[str, float] = {}
            self.ends: dict[str, float] = {}

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            self.starts.setdefault(trial.trial_id, time.time())

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.ends[trial.trial_id] = time.time()

    return TrialClock()


# --------------------------------------------------------------------------- analysis (pure)


@dataclass(frozen=True)
class TrialTiming:
    trial_id: str
    wall: float
    in_worker: float
    points: dict[str, float]  # POINTS -> seconds since Tune's trial start
    start: float  # driver clock
    end: float

    @property
    def overhead(self) -> float:
        return self.wall - self.in_worker


@dataclass(frozen=True)
class PatternSummary:
    name: str
    trials_requested: int
    concurrency: int
    sweep_wall: float
    timings: tuple[TrialTiming, ...]
    errors: tuple[str, ...] = ()
    health_check: tuple[str, ...] = ()
    trial_processes: int = 0
    tf_preloaded: bool = False
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before, after
    cpus_per_trial: float = 0.0  # reserved: the trial process and its workers
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return len(self.timings)

    def median(self, attribute: str) -> float:
        values = [getattr(t, attribute) for t in self.timings]
        return statistics.median(values) if values else float("nan")

    @property
    def sum_in_worker(self) -> float:
        return sum(t.in_worker for t in self.timings)

    @property
    def sweep_ratio(self) -> float:
        ideal = self.sum_in_worker / self.concurrency
        return self.sweep_wall / ideal if ideal > 0 else float("nan")

    def in_worker_for_ratio(self, target: float) -> float:
        """In-worker seconds per trial at which this sweep's per-trial extra time (everything
        but in-worker time: overhead, gaps, Tune start-up) would give ``target``."""
        if not self.timings or target <= 1:
            return float("nan")
        extra = (self.sweep_wall - self.sum_in_worker / self.concurrency) * self.concurrency
        return extra / self.done / (target - 1)

    def phase_medians(self) -> list[float]:
        if not self.timings:
            return [float("nan")] * len(POINTS)
        phases = []
        for i, point in enumerate(POINTS):
            before = POINTS[i - 1] if i else None
            phases.append(
                statistics.median(
                    t.points[point] - (t.points[before] if before else 0.0) for t in self.timings
                )
            )
        return phases


def trial_timings(
    starts: Mapping[str, float], ends: Mapping[str, float], events: Sequence[Mapping[str, Any]]
) -> list[TrialTiming]:
    """Completed trials with both loop timestamps, in start order.

    A point the pattern does not record takes the value of the point before it (phase 0 s);
    points are clamped to be non-decreasing (a Train worker in a process started before fit(),
    e.g. a pooled one, gives "fit() start -> worker process start" 0 s).
    """
    by_trial: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        by_trial.setdefault(event["trial"], []).append(event)
    out = []
    for trial_id in sorted(starts, key=starts.__getitem__):
        mine = by_trial.get(trial_id, [])
        entries = [e["t"] for e in mine if e["ev"] == "loop_entry"]
        exits = [e["t"] for e in mine if e["ev"] == "loop_exit"]
        if trial_id not in ends or not entries or not exits:
            continue
        start, end = starts[trial_id], ends[trial_id]
        seen = {e["ev"]: e["t"] for e in mine}
        seen.update(loop_entry=min(entries), loop_exit=max(exits), complete=end)
        spawned = [e["process_start"] for e in mine if e.get("process_start")]
        if spawned:
            seen["worker_process_start"] = min(spawned)
        points, last = {}, start
        for point in POINTS:
            last = max(last, seen.get(point, last))
            points[point] = last - start
        out.append(
            TrialTiming(trial_id, end - start, max(exits) - min(entries), points, start, end)
        )
    return out


def sweep_breakdown(
    timings: Sequence[TrialTiming], fit_start: float, fit_end: float
) -> dict[str, float]:
    """Tuner.fit wall split into start-up, time covered by trials, gaps between them, shut-down."""
    if not timings:
        return {}
    spans = sorted((t.start, t.end) for t in timings)
    covered, gaps, cursor = 0.0, 0.0, spans[0][0]
    for start, end in spans:
        if start > cursor:
            gaps += start - cursor
            cursor = start
        if end > cursor:
            covered += end - cursor
            cursor = end
    return {
        "startup": spans[0][0] - fit_start,
        "trials": covered,
        "gaps": gaps,
        "shutdown": fit_end - cursor,
    }


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class BenchSettings:
    """One benchmark run: trials per pattern, trials at once, and each trial's work/resources."""

    trials: int = 6
    concurrency: int = 1
    epochs: int = 1
    frames: int = 44
    batch_size: int = 32
    workers: int = 1
    cpus_per_worker: float = 1.0
    timeout_s: float = 900.0
    seed: int = 0

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchSettings:
        return from_dict_strict(cls, dict(data))


def _param_space(trials: int) -> dict[str, Any]:
    from ray import tune

    # One configuration id per trial (so every Train run has its own directory), same fold.
    return {
        "config_id": tune.grid_search([f"t{i:02d}" for i in range(trials)]),
        "fold": BENCH_FOLD,
        "params": {},
    }


def run_pattern(
    name: str,
    trainable: Any,
    settings: BenchSettings,
    *,
    reuse_actors: bool,
    storage: str,
    events: str,
    cpus_per_trial: float,
    fit_context: contextlib.AbstractContextManager[Any],
) -> PatternSummary:
    from ray import tune

    clock = make_trial_clock()
    tuner = tune.Tuner(
        trainable,
        param_space=_param_space(settings.trials),
        tune_config=tune.TuneConfig(
            max_concurrent_trials=settings.concurrency,
            reuse_actors=reuse_actors,
            # A stuck trial ends the measurement instead of hanging it.
            time_budget_s=settings.timeout_s,
        ),
        run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=[clock], verbose=0),
    )
    load_before = os.getloadavg()[0]
    fit_start = time.time()
    with fit_context:
        grid = tuner.fit()
    fit_end = time.time()
    errors = tuple(f"{r.path}: {_last_line(r.error)}" for r in grid if r.error)
    found = read_events(events)
    timings = tuple(trial_timings(clock.starts, clock.ends, found))
    entries = [e for e in found if e["ev"] == "loop_entry"]
    return PatternSummary(
        name=name,
        trials_requested=settings.trials,
        concurrency=settings.concurrency,
        sweep_wall=fit_end - fit_start,
        timings=timings,
        errors=errors,
        health_check=tuple(sorted({str(e["health_check"] or "2 (default)") for e in entries})),
        trial_processes=len({e["pid"] for e in found if e["ev"] == "trial_entry"}),
        tf_preloaded=bool(entries) and all(e["tf_preloaded"] for e in entries),
        cpus_per_trial=cpus_per_trial,
        load=(load_before, os.getloadavg()[0]),
        extra=sweep_breakdown(timings, fit_start, fit_end),
    )


def _last_line(error: BaseException) -> str:
    """The exception line at the end of a (Ray-wrapped) traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(error).__name__


def run_stock(features_ref: Any, settings: BenchSettings, storage: str) -> PatternSummary:
    from ray import tune

    events = os.path.join(storage, "stock-events.jsonl")
    fn = tune.with_parameters(
        stock_trial,
        features=features_ref,
        events=events,
        train_config=settings.train_config().to_dict(),
        workers=settings.workers,
        cpus_per_worker=settings.cpus_per_worker,
        storage=os.path.join(storage, "stock-train"),
    )
    # Tune's default of 1 CPU per trial deadlocks two trials at once on 2 CPUs.
    trainable = tune.with_resources(fn, {"CPU": STOCK_TRIAL_CPU})
    per_trial = settings.workers * settings.cpus_per_worker + STOCK_TRIAL_CPU
    return run_pattern(
        STOCK,
        trainable,
        settings,
        reuse_actors=False,
        storage=storage,
        events=events,
        cpus_per_trial=per_trial,
        fit_context=ray_train_defaults(),
    )


def run_project(features_ref: Any, settings: BenchSettings, storage: str) -> PatternSummary:
    from ray import tune

    from orchestration.ray_env import tune_trials_without_runtime_env
    from orchestration.trial import TRIAL_DRIVER_CPU, TrialSettings, worker_cpus

    events = os.path.join(storage, "project-events.jsonl")
    trial_settings = TrialSettings(
        base_train=settings.train_config().to_dict(),
        workers_per_trial=settings.workers,
        cpus_per_worker=settings.cpus_per_worker,
        gpus_per_worker=0.0,
        storage_path=storage,
        sweep_name=PROJECT,
        train_max_failures=0,
    )
    fn = tune.with_parameters(
        project_trial, features=features_ref, settings=trial_settings, events=events
    )
    trainable = tune.with_resources(fn, {"CPU": TRIAL_DRIVER_CPU})
    workers_cpus = settings.workers * worker_cpus(settings.cpus_per_worker, settings.workers)
    return run_pattern(
        PROJECT,
        trainable,
        settings,
        reuse_actors=True,
        storage=storage,
        events=events,
        cpus_per_trial=workers_cpus + TRIAL_DRIVER_CPU,
        fit_context=tune_trials_without_runtime_env(),
    )


@contextlib.contextmanager
def local_ray(num_cpus: int) -> Iterator[bool]:
    """Starts local Ray as the sweep does (``ray_env.init_ray``) unless it is already running.

    Yields whether this call started Ray (it then shuts it down on exit).
    """
    import ray

    from orchestration.ray_env import init_ray

    if ray.is_initialized():
        yield False
        return
    init_ray(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield True
    finally:
        ray.shutdown()


@contextlib.contextmanager
def ray_train_defaults() -> Iterator[None]:
    """Ray's own values of the controller variables the project changes, set in this process.

    Tune forwards them to the stock trials, which forward them to their Train runs: the stock
    pattern runs with Ray's defaults whatever the raylet inherited.
    """
    from ray.train.v2._internal.constants import (
        DEFAULT_ENABLE_PREEMPTION_WATCHER,
        DEFAULT_HEALTH_CHECK_INTERVAL_S,
        ENABLE_PREEMPTION_WATCHER_ENV_VAR,
    )

    defaults = {
        HEALTH_CHECK_ENV: str(DEFAULT_HEALTH_CHECK_INTERVAL_S),
        ENABLE_PREEMPTION_WATCHER_ENV_VAR: "1" if DEFAULT_ENABLE_PREEMPTION_WATCHER else "0",
    }
    saved = {name: os.environ.get(name) for name in defaults}
    os.environ.update(defaults)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def wait_until_idle(timeout_s: float = 60.0) -> None:
    """Lets the previous pattern's placement groups and actors go before the next one starts."""
    import ray

    deadline = time.monotonic() + timeout_s
    total = ray.cluster_resources().get("CPU", 0.0)
    while time.monotonic() < deadline and ray.available_resources().get("CPU", 0.0) < total - 1e-6:
        time.sleep(0.5)
    time.sleep(2.0)  # exiting processes still use CPU for a moment


def run(settings: BenchSettings, patterns: Sequence[str] = (STOCK, PROJECT)) -> dict[str, Any]:
    import ray

    with local_ray(2) as started:
        cpus = ray.cluster_resources().get("CPU", 0.0)
        storage = tempfile.mkdtemp(prefix="us8k-bench-overhead-")
        try:
            features_ref = ray.put(
                make_toy_featureset(frames=settings.frames, seed=settings.seed)
            )
            runners: dict[str, Callable[[Any, BenchSettings, str], PatternSummary]] = {
                STOCK: run_stock,
                PROJECT: run_project,
            }
            results = []
            # Stock first: its trial processes must not be ones the project's settings touched.
            for name in patterns:
                wait_until_idle()
                results.append(runners[name](features_ref, settings, storage))
        finally:
            shutil.rmtree(storage, ignore_errors=True)
    return {"settings": settings, "results": results, "cpus": cpus, "started_ray": started}


# --------------------------------------------------------------------------- report


def _fmt(value: float, spec: str = ".1f") -> str:
    return "-" if value != value else format(value, spec)  # NaN -> "-"


def format_report(report: Mapping[str, Any]) -> str:
    settings: BenchSettings = report["settings"]
    results: list[PatternSummary] = report["results"]
    lines = [
        f"{settings.trials} trial(s) per pattern, {settings.concurrency} at once; each trial: "
        f"{settings.workers} worker(s) x {settings.cpus_per_worker:g} CPU, {settings.epochs} epoch(s), "
        f"batch {settings.batch_size}, {BANDS}x{settings.frames} features, fold {BENCH_FOLD}; "
        f"Ray: {report['cpus']:g} CPUs ({'started here' if report['started_ray'] else 'already running'}).",
        *_fit_notes(results, report["cpus"]),
        "",
        f"{'pattern':<8} {'trials':>6} {'wall/trial s':>12} {'in-worker s':>11} "
        f"{'overhead s':>10} {'sweep wall s':>12} {'sweep ratio':>11}",
    ]
    for r in results:
        lines.append(
            f"{r.name:<8} {r.done:>6d} {_fmt(r.median('wall')):>12} {_fmt(r.median('in_worker'), '.2f'):>11} "
            f"{_fmt(r.median('overhead')):>10} {r.sweep_wall:>12.1f} {_fmt(r.sweep_ratio, '.2f'):>10}x"
        )
    lines.append(
        "(medians over trials; sweep ratio = sweep wall / (sum of in-worker / concurrency))"
    )
    lines += ["", *_target_lines(results), "", *_phase_lines(results), "", *_detail_lines(results)]
    return "\n".join(lines)


def _fit_notes(results: Sequence[PatternSummary], cpus: float) -> list[str]:
    notes = []
    for r in results:
        fits = int(cpus / r.cpus_per_trial + 1e-9) if r.cpus_per_trial > 0 else r.concurrency
        if fits < r.concurrency:
            notes.append(
                f"note: a {r.name} trial reserves {r.cpus_per_trial:g} CPU (trial process + "
                f"workers), so only {fits} can train at once on {cpus:g} CPUs: the others wait "
                "inside fit() for their workers' placement group (counted as overhead)."
            )
    return notes


def _target_lines(results: Sequence[PatternSummary]) -> list[str]:
    by_name = {r.name: r for r in results}
    project, stock = by_name.get(PROJECT), by_name.get(STOCK)
    lines = []
    if project and stock and project.done and stock.done:
        ratio = project.median("overhead") / stock.median("overhead")
        lines.append(
            f"project overhead / stock overhead: {ratio:.2f} "
            f"({project.median('overhead'):.1f} s vs {stock.median('overhead'):.1f} s per trial)"
        )
    if not project or not project.done:
        return [*lines, "targets: not measured (no completed project trial)"]
    overhead = project.median("overhead")
    met = "met" if overhead <= OVERHEAD_TARGET_S else "NOT met"
    lines.append(
        f"target: project overhead <= {OVERHEAD_TARGET_S:g} s per trial: {met} ({overhead:.1f} s)"
    )
    met = "met" if project.sweep_ratio <= RATIO_TARGET else "NOT met"
    lines.append(
        f"target: sweep wall <= {RATIO_TARGET:g}x sum(in-worker)/concurrency: {met} "
        f"({project.sweep_ratio:.2f}x)"
    )
    needed = project.in_worker_for_ratio(RATIO_TARGET)
    lines.append(
        f"  at this overhead the ratio target needs >= {needed:.0f} s in-worker per trial "
        f"(here {project.median('in_worker'):.1f} s)"
    )
    return lines


def _phase_lines(results: Sequence[PatternSummary]) -> list[str]:
    header = f"{'timeline phase (median s)':<44}" + "".join(f"{r.name:>9}" for r in results)
    lines = [header]
    medians = [r.phase_medians() for r in results]
    for i, label in enumerate(PHASE_LABELS):
        lines.append(f"{label:<44}" + "".join(f"{_fmt(m[i], '.2f'):>9}" for m in medians))
    for key, label in (
        ("startup", "Tuner.fit start -> first trial start"),
        ("gaps", "between trials, total (no trial running)"),
        ("shutdown", "last trial complete -> Tuner.fit return"),
    ):
        lines.append(
            f"{label:<44}"
            + "".join(f"{_fmt(r.extra.get(key, float('nan')), '.2f'):>9}" for r in results)
        )
    return lines


def _detail_lines(results: Sequence[PatternSummary]) -> list[str]:
    lines = []
    for r in results:
        overheads = " ".join(f"{t.overhead:.1f}" for t in r.timings)
        lines.append(
            f"{r.name}: {r.done}/{r.trials_requested} trials completed; overhead per trial (start "
            f"order) {overheads or '-'}; trial processes {r.trial_processes}; workers' health-check "
            f"interval {', '.join(r.health_check) or '-'} s; TensorFlow already imported at loop "
            f"entry: {'yes' if r.tf_preloaded else 'no'}; load average {r.load[0]:.2f} -> {r.load[1]:.2f}"
        )
        lines += [f"  error: {e}" for e in r.errors]
    return lines


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.bench_overhead",
        description="Per-trial overhead: stock Tune -> TensorflowTrainer pattern vs the project's.",
    )
    parser.add_argument(
        "--trials", type=positive_int, default=6, help="trials per pattern (default 6)"
    )
    parser.add_argument("--concurrency", type=int, choices=(1, 2), default=1, help="trials at once")
    parser.add_argument("--epochs", type=positive_int, default=1, help="epochs per trial (default 1)")
    parser.add_argument("--frames", type=int, default=44, help="frames per clip (default 44)")
    parser.add_argument("--workers", type=positive_int, default=1, help="Train workers per trial")
    parser.add_argument(
        "--cpus-per-worker",
        type=positive_float,
        default=1.0,
        help="CPUs per Train worker (default 1, the sweep's)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=900.0,
        help="seconds per pattern before Tune stops it",
    )
    parser.add_argument("--patterns", nargs="+", choices=(STOCK, PROJECT), default=[STOCK, PROJECT])
    args = parser.parse_args(argv)
    if args.frames < 12:
        parser.error(f"--frames must be >= 12, got {args.frames}")
    settings = BenchSettings(
        trials=args.trials,
        concurrency=args.concurrency,
        epochs=args.epochs,
        frames=args.frames,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        timeout_s=args.timeout,
    )
    # Stock always before project (see the module docstring), whatever order was given.
    patterns = [p for p in (STOCK, PROJECT) if p in args.patterns]
    report = run(settings, patterns)
    print(format_report(report), flush=True)
    results: list[PatternSummary] = report["results"]
    return 0 if all(r.done == r.trials_requested and not r.errors for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
