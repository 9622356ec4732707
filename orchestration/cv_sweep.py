"""python -m orchestration.cv_sweep [--data-dir DIR] [--folds ...] [--recipe NAME] [--config FILE] [--set k=v ...]

10-fold cross-validation x hyper-parameter sweep on Ray Tune, each trial a Ray Train run,
logged to MLflow. Runtime: with no arguments (the embedded demo: synthetic ``demo`` set, 300
clips, 10 folds x 2 configurations, 10 epochs) about 4 minutes on 2 cores; the real dataset
with the reference 360 epochs is a job for a GPU cluster (see README, "Run on a cluster").

Steps: validate everything that can be validated (arguments, tracking store, cluster GPUs)
before any compute; extract features with Ray tasks or load them from the cache; put them in
the object store once; run one Tune trial per (configuration, fold); mirror every trial into
an MLflow run tree (sweep -> configuration -> fold); print and save the ranked table.
``--resume`` (or the same ``--name``) continues an interrupted sweep. ``--recipe NAME`` starts
from a named recipe (``orchestration/recipes/``: reference, sb-cnn, mixup-ts-ps, best);
precedence, lowest first: defaults, recipe, ``--config`` file, ``--set``, explicit flags.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from features.cache import CacheWriteError, default_cache_dir
from features.dataset import DatasetError
from orchestration.config import (
    SweepSpec,
    apply_override,
    load_config_file,
)
from orchestration.plan import SweepError, preflight
from orchestration.ray_disk import out_of_disk_message
from orchestration.recipes import available, load_recipe, merge_sections
from orchestration.redact import redact
from orchestration.sweep_features import cache_dir_of
from orchestration.tracking import TrackingError

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
    cfg.add_argument("--recipe", metavar="NAME",
                     help=f"start from a named recipe ({', '.join(available())}); "
                          "the --config file, --set and the flags override it")
    cfg.add_argument("--config", help="JSON/YAML file with features/augment/train/sweep sections")
    cfg.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override one setting, e.g. train.learning_rate=1e-3 (repeatable)")
    cfg.add_argument("--epochs", type=int, help="training epochs per trial (train.epochs)")
    cfg.add_argument("--full-size", action="store_true",
                     help="demo only: the reference network on 4-s features instead of the demo's shrink")
    search = p.add_argument_group("search")
    search.add_argument("--search", choices=["grid", "random", "optuna"])
    search.add_argument("--search-space", help='JSON, e.g. \'{"learning_rate": [1e-4, 1e-3]}\'')
    search.add_argument("--num-samples", type=int, help="configurations drawn by random/optuna search")
    search.add_argument("--max-concurrent", type=int, help="trials at once (default: what the cluster fits)")
    search.add_argument("--time-budget", type=float, help="stop scheduling new trials after this many seconds")
    search.add_argument("--racing", choices=["off", "wilcoxon", "ttest"],
                        help="drop configurations their finished folds show worse than the leader (default off)")
    search.add_argument("--racing-min-folds", type=int, help="folds a configuration finishes before it can be dropped (default 4)")
    search.add_argument("--racing-alpha", type=float, help="one-sided p-value below which it is dropped (default 0.05)")
    res = p.add_argument_group("resources")
    res.add_argument("--workers-per-trial", type=int, help="Ray Train workers per trial (default 1)")
    res.add_argument("--cpus-per-worker", type=float,
                     help="CPUs per Train worker (default 1; TensorFlow gets that many threads, rounded)")
    res.add_argument("--gpus-per-worker", type=float, help="GPUs per Train worker (default: 1 if the cluster has GPUs)")
    res.add_argument("--trial-process", choices=["auto", "worker-group", "in-trial"],
                     help="where each trial trains: a Ray Train worker group, or in the Tune trial process "
                          "itself (one worker); auto (default): in-trial for 1-worker CPU trials")
    res.add_argument("--address", help="Ray cluster address (default: ray.init()'s own: RAY_ADDRESS or local)")
    out = p.add_argument_group("tracking and storage")
    out.add_argument("--experiment", help="MLflow experiment name (default us8k-cv)")
    out.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    out.add_argument("--storage-path", help="Ray Tune/Train storage (default: $US8K_STORAGE_PATH or ~/ray_results)")
    out.add_argument("--name", help="sweep name (default cv-<timestamp>); reuse it to continue a sweep")
    out.add_argument("--tracking-grace", type=float, metavar="SECONDS",
                     help="at the end, how long to wait for an unreachable MLflow server before leaving "
                          "the writes in the sweep's spool for python -m orchestration.replay (default 300)")
    out.add_argument("--resume", nargs="?", const=True, default=False, metavar="NAME",
                     help="continue an interrupted sweep (the given name, else the latest one)")
    out.add_argument("--force-config", action="store_true",
                     help="with --resume: continue even though settings given now differ from the sweep's stored ones")
    out.add_argument("--no-log-models", action="store_true", help="do not log trained models to MLflow")
    out.add_argument("--refit", action=argparse.BooleanOptionalAction, default=None,
                     help="after the CV trials, train the best configuration on all folds and register it "
                          "(default: on with --data-dir, off for the demo)")
    out.add_argument("--register-as", metavar="NAME", help="MLflow registered model name (default us8k-cnn; '' = none)")
    out.add_argument("--verbose", action="store_true", help="show the Ray workers' output (TensorFlow, Ray Train)")
    out.add_argument("--dry-run", action="store_true",
                     help="check everything that can be checked before compute (settings, dataset, folders, "
                          "tracking store), print the plan and exit; exit code 0 when all is well")
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
    "racing": ("sweep", "racing"),
    "racing_min_folds": ("sweep", "racing_min_folds"),
    "racing_alpha": ("sweep", "racing_alpha"),
    "workers_per_trial": ("sweep", "workers_per_trial"),
    "cpus_per_worker": ("sweep", "cpus_per_worker"),
    "gpus_per_worker": ("sweep", "gpus_per_worker"),
    "address": ("sweep", "address"),
    "trial_process": ("sweep", "trial_process"),
    "experiment": ("sweep", "experiment"),
    "tracking_uri": ("sweep", "tracking_uri"),
    "tracking_grace": ("sweep", "tracking_grace_s"),
    "storage_path": ("sweep", "storage_path"),
    "name": ("sweep", "name"),
    "refit": ("sweep", "refit"),
    "register_as": ("sweep", "register_as"),
}


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings this command gives explicitly (recipe <- config file <- --set <- flags), by section."""
    data: dict[str, Any] = load_recipe(args.recipe) if args.recipe else {}
    from_file: dict[str, Any] = load_config_file(args.config) if args.config else {}
    if args.config:  # a copy: the file's own settings are checked alone on error
        data = merge_sections(data, copy.deepcopy(from_file))
    for assignment in args.set:
        apply_override(data, assignment)
    if "recipe" in (data.get("sweep") or {}):
        raise ValueError("sweep.recipe: name a recipe with --recipe NAME (it loads the recipe's settings; "
                         "a config file or --set cannot)")
    if args.recipe:
        data.setdefault("sweep", {})["recipe"] = args.recipe  # a label: logged on the sweep run
    for flag, (section, key) in _FLAG_TO_FIELD.items():
        value = getattr(args, flag)
        if value is not None:
            data.setdefault(section, {})[key] = value
    sweep = data.setdefault("sweep", {})
    if "data_dir" not in sweep and os.environ.get("US8K_DATA_DIR"):
        sweep["data_dir"] = os.environ["US8K_DATA_DIR"]  # set on clusters made from cluster.yaml
    if args.search_space:
        try:
            sweep["search_space"] = json.loads(args.search_space)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--search-space is not valid JSON: {exc}") from None
    if args.full_size:
        sweep["demo_shrink"] = False
    if args.no_log_models:
        sweep["log_models"] = False
    return {section: values for section, values in data.items() if values}


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    """Defaults <- recipe <- config file <- --set overrides <- explicit flags; unknown keys rejected."""
    return spec_of(given_settings(args), args)


def spec_of(given: dict[str, Any], args: argparse.Namespace) -> SweepSpec:
    """The spec of the settings this command gives; a config file's own mistake names the file."""
    try:
        return SweepSpec.from_dict(given)
    except ValueError as exc:
        if args.config and _error_of(load_config_file(args.config)) == str(exc):
            raise ValueError(f"config file {args.config}: {exc}") from None
        raise


def _error_of(data: dict[str, Any]) -> str | None:
    try:
        SweepSpec.from_dict(data)
    except ValueError as exc:
        return str(exc)
    return None


def dry_run_report(plan) -> str:
    """What a run of ``plan`` would do and where it would write (after every plan-time check)."""
    sweep = plan.spec.sweep
    configs = len(plan.configurations) if plan.configurations else sweep.num_samples
    cache = sweep.cache_dir or str(default_cache_dir())
    return "\n".join([
        f"dry run: every plan-time check passed; nothing was run. Sweep {plan.name}"
        + (" (resumed)" if plan.resume else ""),
        f"  {configs} configuration(s) x {len(sweep.folds)} fold(s) ({sweep.search} search), "
        f"{plan.spec.train.epochs} epoch(s) max",
        f"  dataset: {sweep.data_dir or 'the synthetic demo set (generated into the cache on the first run)'}",
        f"  feature cache: {cache}",
        f"  Ray storage: {redact(plan.storage_path)}/{plan.name}",
        f"  MLflow: {redact(plan.tracking_uri)} (experiment {sweep.experiment!r})",
    ])


# ---------------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        given = given_settings(args)
        spec = spec_of(given, args)
        plan = replace(preflight(spec, args.resume, given, args.force_config), verbose=args.verbose)
    except (ValueError, SweepError, TrackingError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(dry_run_report(plan))
        return 0
    from orchestration.sweep_runner import run_sweep

    try:
        outcome = run_sweep(plan)
    except (SweepError, TrackingError, DatasetError, CacheWriteError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:
        message = out_of_disk_message(exc, str(cache_dir_of(plan)), plan.name)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(outcome.report)
    if not outcome.all_completed:
        return 1
    return 0 if outcome.tracking_complete else 3


if __name__ == "__main__":
    sys.exit(main())
