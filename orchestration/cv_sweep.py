"""python -m orchestration.cv_sweep [--data-dir DIR] [--folds ...] [--config FILE] [--set k=v ...]

10-fold cross-validation x hyper-parameter sweep on Ray Tune, each trial a Ray Train run,
logged to MLflow. Runtime: with no arguments (the embedded demo: synthetic ``demo`` set, 300
clips, 10 folds x 2 configurations, 10 epochs) about 4 minutes on 2 cores; the real dataset
with the reference 360 epochs is a job for a GPU cluster (see README, "Run on a cluster").

Steps: validate everything that can be validated (arguments, tracking store, cluster GPUs)
before any compute; extract features with Ray tasks or load them from the cache; put them in
the object store once; run one Tune trial per (configuration, fold); mirror every trial into
an MLflow run tree (sweep -> configuration -> fold); print and save the ranked table.
``--resume`` (or the same ``--name``) continues an interrupted sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestration.config import (
    SweepSpec,
    apply_override,
    config_id,
    grid_configurations,
    load_config_file,
    plain_params,
    random_configurations,
)
from orchestration.tracking import TrackingError, check_tracking_uri, resolve_tracking_uri


class SweepError(Exception):
    """A problem the user must fix; printed without a traceback, exit code 2."""


# ---------------------------------------------------------------------------------------------
# Command line -> SweepSpec


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m orchestration.cv_sweep",
        description="UrbanSound8K 10-fold CV x hyper-parameter sweep on Ray Tune + Ray Train, logged to MLflow.",
    )
    data = p.add_argument_group("data")
    data.add_argument("--data-dir", help="UrbanSound8K root (default: $US8K_DATA_DIR, else the synthetic demo set)")
    data.add_argument("--folds", help="folds to test on, e.g. 1,2,10 or 1-3 (default: all 10)")
    data.add_argument("--cache-dir", help="feature cache root (default: $US8K_CACHE_DIR or ~/.cache/us8k-ray)")
    data.add_argument("--skip-missing", action="store_true", default=None, help="proceed if audio files are missing")
    cfg = p.add_argument_group("configuration")
    cfg.add_argument("--config", help="JSON/YAML file with features/train/sweep sections")
    cfg.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override one setting, e.g. train.learning_rate=1e-3 (repeatable)")
    cfg.add_argument("--epochs", type=int, help="training epochs per trial (train.epochs)")
    search = p.add_argument_group("search")
    search.add_argument("--search", choices=["grid", "random", "optuna"])
    search.add_argument("--search-space", help='JSON, e.g. \'{"learning_rate": [1e-4, 1e-3]}\'')
    search.add_argument("--num-samples", type=int, help="configurations drawn by random/optuna search")
    search.add_argument("--max-concurrent", type=int, help="trials at once (default: what the cluster fits)")
    search.add_argument("--time-budget", type=float, help="stop scheduling new trials after this many seconds")
    res = p.add_argument_group("resources")
    res.add_argument("--workers-per-trial", type=int, help="Ray Train workers per trial (default 1)")
    res.add_argument("--cpus-per-worker", type=float,
                     help="CPUs per Train worker (default 1; TensorFlow gets that many threads, rounded)")
    res.add_argument("--gpus-per-worker", type=float, help="GPUs per Train worker (default: 1 if the cluster has GPUs)")
    res.add_argument("--address", help="Ray cluster address (default: ray.init()'s own: RAY_ADDRESS or local)")
    out = p.add_argument_group("tracking and storage")
    out.add_argument("--experiment", help="MLflow experiment name (default us8k-cv)")
    out.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    out.add_argument("--storage-path", help="Ray Tune/Train storage (default: $US8K_STORAGE_PATH or ~/ray_results)")
    out.add_argument("--name", help="sweep name (default cv-<timestamp>); reuse it to continue a sweep")
    out.add_argument("--resume", nargs="?", const=True, default=False, metavar="NAME",
                     help="continue an interrupted sweep (the given name, else the latest one)")
    out.add_argument("--no-log-models", action="store_true", help="do not log trained models to MLflow")
    out.add_argument("--verbose", action="store_true", help="show the Ray workers' output (TensorFlow, Ray Train)")
    return p


_FLAG_TO_FIELD = {
    "data_dir": ("sweep", "data_dir"),
    "folds": ("sweep", "folds"),
    "cache_dir": ("sweep", "cache_dir"),
    "skip_missing": ("sweep", "skip_missing"),
    "epochs": ("train", "epochs"),
    "search": ("sweep", "search"),
    "num_samples": ("sweep", "num_samples"),
    "max_concurrent": ("sweep", "max_concurrent"),
    "time_budget": ("sweep", "time_budget_s"),
    "workers_per_trial": ("sweep", "workers_per_trial"),
    "cpus_per_worker": ("sweep", "cpus_per_worker"),
    "gpus_per_worker": ("sweep", "gpus_per_worker"),
    "address": ("sweep", "address"),
    "experiment": ("sweep", "experiment"),
    "tracking_uri": ("sweep", "tracking_uri"),
    "storage_path": ("sweep", "storage_path"),
    "name": ("sweep", "name"),
}


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    """Defaults <- config file <- --set overrides <- explicit flags; unknown keys rejected."""
    data: dict[str, Any] = load_config_file(args.config) if args.config else {}
    for assignment in args.set:
        apply_override(data, assignment)
    for flag, (section, key) in _FLAG_TO_FIELD.items():
        value = getattr(args, flag)
        if value is not None:
            data.setdefault(section, {})[key] = value
    sweep = data.setdefault("sweep", {})
    if "data_dir" not in sweep and os.environ.get("US8K_DATA_DIR"):
        sweep["data_dir"] = os.environ["US8K_DATA_DIR"]  # set on clusters made from cluster.yaml
    if args.search_space:
        try:
            data.setdefault("sweep", {})["search_space"] = json.loads(args.search_space)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--search-space is not valid JSON: {exc}") from None
    if args.no_log_models:
        data.setdefault("sweep", {})["log_models"] = False
    return SweepSpec.from_dict(data)


# ---------------------------------------------------------------------------------------------
# Preflight: everything that can fail, before any compute


@dataclass(frozen=True)
class Plan:
    """The resolved sweep: what runs where, with which names."""

    spec: SweepSpec
    name: str
    storage_path: str
    tracking_uri: str
    gpus_per_worker: float
    max_concurrent: int
    configurations: tuple[tuple[str, dict[str, Any]], ...]  # (config id, params); empty for optuna
    resume: bool
    verbose: bool = False


def resolve_storage_path(spec: SweepSpec) -> str:
    path = spec.sweep.storage_path or os.environ.get("US8K_STORAGE_PATH") or "~/ray_results"
    return path if "://" in path else str(Path(path).expanduser().absolute())


def resolve_name(spec: SweepSpec, resume: bool | str, storage_path: str) -> tuple[str, bool]:
    if isinstance(resume, str):
        return resume, True
    if spec.sweep.name:
        return spec.sweep.name, resume or _tune_state_exists(storage_path, spec.sweep.name)
    if resume:
        latest = _latest_sweep(storage_path)
        if latest is None:
            raise SweepError(f"--resume: no sweep found under {storage_path}; pass --resume NAME or --name")
        return latest, True
    return time.strftime("cv-%Y%m%d-%H%M%S"), False


def _tune_state_exists(storage_path: str, name: str) -> bool:
    from ray.tune import Tuner

    return Tuner.can_restore(_join(storage_path, name))


def _latest_sweep(storage_path: str) -> str | None:
    if "://" in storage_path:
        return None
    root = Path(storage_path)
    sweeps = sorted((p for p in root.glob("cv-*") if (p / "tuner.pkl").exists()), key=lambda p: p.stat().st_mtime)
    return sweeps[-1].name if sweeps else None


def _join(storage_path: str, name: str) -> str:
    return f"{storage_path.rstrip('/')}/{name}"


def configurations(spec: SweepSpec) -> tuple[tuple[str, dict[str, Any]], ...]:
    sweep = spec.sweep
    if sweep.search == "grid":
        points = grid_configurations(sweep.search_space)
    elif sweep.search == "random":
        points = random_configurations(sweep.search_space, sweep.num_samples, sweep.seed)
    else:
        return ()
    out, seen = [], set()
    for params in map(plain_params, points):
        cfg = config_id(params)
        spec.train.replace(**params)  # fail now, not in a trial, on values TrainConfig rejects
        if cfg not in seen:
            seen.add(cfg)
            out.append((cfg, params))
    return tuple(out)


def check_cluster(spec: SweepSpec, resources: dict[str, float]) -> tuple[float, int]:
    """GPUs per worker (auto: 1 if the cluster has GPUs) and how many trials fit at once."""
    sweep = spec.sweep
    gpus_total = resources.get("GPU", 0.0)
    gpus = sweep.gpus_per_worker if sweep.gpus_per_worker is not None else (1.0 if gpus_total else 0.0)
    if gpus > 0 and gpus_total < gpus * sweep.workers_per_trial:
        raise SweepError(
            f"{sweep.workers_per_trial} worker(s) x {gpus:g} GPU requested per trial, but the Ray cluster "
            f"has {gpus_total:g} GPU(s). Use --gpus-per-worker 0 to train on CPUs, or connect to a GPU "
            "cluster (--address, see README 'Run on a cluster')."
        )
    cpus_total = resources.get("CPU", 0.0)
    per_trial = sweep.cpus_per_worker * sweep.workers_per_trial  # the trial driver's share included
    if cpus_total < per_trial:
        raise SweepError(
            f"{sweep.workers_per_trial} worker(s) x {sweep.cpus_per_worker:g} CPU requested per trial, but the "
            f"Ray cluster has {cpus_total:g} CPU(s); lower --workers-per-trial or --cpus-per-worker."
        )
    fit = int(cpus_total // per_trial)
    if gpus > 0:
        fit = min(fit, int(gpus_total // (gpus * sweep.workers_per_trial)))
    # An explicit --max-concurrent may exceed what fits now: queued trials make an autoscaling
    # cluster add nodes. By default, run what fits (each waiting trial would hold a process).
    return gpus, sweep.max_concurrent or max(1, fit)


SPEC_FILE = "us8k_sweep.json"


def read_stored_spec(storage_path: str, name: str) -> SweepSpec | None:
    """The spec a sweep was started with (saved next to Tune's state), if there is one."""
    import pyarrow.fs

    filesystem, root = pyarrow.fs.FileSystem.from_uri(_join(storage_path, name))
    try:
        with filesystem.open_input_stream(f"{root}/{SPEC_FILE}") as fh:
            return SweepSpec.from_dict(json.loads(fh.read().decode()))
    except FileNotFoundError:
        return None


def write_stored_spec(plan: Plan) -> None:
    import pyarrow.fs

    filesystem, root = pyarrow.fs.FileSystem.from_uri(_join(plan.storage_path, plan.name))
    filesystem.create_dir(root, recursive=True)
    with filesystem.open_output_stream(f"{root}/{SPEC_FILE}") as fh:
        fh.write(json.dumps(plan.spec.to_dict(), indent=1).encode())


def preflight(spec: SweepSpec, resume: bool | str) -> Plan:
    """Checks that need no cluster: names, storage, tracking store, configurations."""
    storage_path = resolve_storage_path(spec)
    name, resuming = resolve_name(spec, resume, storage_path)
    stored = read_stored_spec(storage_path, name) if resuming else None
    if stored is not None:
        # A resumed sweep continues as it was configured; only where it runs may change.
        spec = replace(stored, sweep=replace(stored.sweep, address=spec.sweep.address))
    tracking_uri = resolve_tracking_uri(spec.sweep.tracking_uri)
    check_tracking_uri(tracking_uri)
    if spec.sweep.data_dir is not None and not Path(spec.sweep.data_dir).expanduser().is_dir():
        raise SweepError(f"--data-dir {spec.sweep.data_dir}: not a directory (expected the UrbanSound8K root)")
    return Plan(spec, name, storage_path, tracking_uri, 0.0, 1, configurations(spec), resuming)


# ---------------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = spec_from_args(args)
        plan = replace(preflight(spec, args.resume), verbose=args.verbose)
    except (ValueError, SweepError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from orchestration.sweep_runner import run_sweep

    try:
        outcome = run_sweep(plan)
    except (SweepError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(outcome.report)
    return 0 if outcome.all_completed else 1


def with_cluster(plan: Plan, resources: dict[str, float]) -> Plan:
    gpus, concurrent = check_cluster(plan.spec, resources)
    return replace(plan, gpus_per_worker=gpus, max_concurrent=concurrent)


if __name__ == "__main__":
    sys.exit(main())
