"""Runs a planned sweep: Ray cluster, features, MLflow tree, Ray Tune trials, results."""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE

from features.augment import AugmentConfig
from features.cache import default_cache_dir
from orchestration.callback import MLflowSweepCallback, make_writer
from orchestration.cluster import cluster_resources
from orchestration.config import optuna_space
from orchestration.plan import Plan, SweepError, read_stored_spec, with_cluster, write_stored_spec
from orchestration.progress import ProgressCallback
from orchestration.racing import board
from orchestration.ray_disk import disk_warning, session_disk
from orchestration.redact import redact, redact_mapping
from orchestration.results import (
    ConfigResult,
    collect_results,
    comparisons,
    format_report,
    scheduling,
    verdict,
    write_results,
)
from orchestration.search import RacingScheduler
from orchestration.spool import SPOOL_DIR, fail_fast_http, server_answers, unregister_writer
from orchestration.sweep_features import sweep_features
from orchestration.tracking import SweepTracker, ui_runs_url
from orchestration.trial import (
    TrialSettings,
    pair_key,
    run_fold_trial,
    trial_train_config,
)

# Quiet C++ logging of TensorFlow in every process started from here (workers inherit it).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Each checkpoint a trial reports makes Tune snapshot the experiment (``num_to_keep`` is set: a
# --resume must never point at a deleted checkpoint). With short epochs (the demo's) Tune warns
# at nearly every epoch that snapshots are frequent, by design here: silenced unless the user sets it.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# The models are tf_keras models. TensorFlow picks what ``tensorflow.keras`` means when it is
# imported; without this the driver's tensorflow.keras is Keras 3, MLflow does not recognise
# the model as Keras and logs a bare SavedModel ("tf2-module" flavor, 3x slower to write).
os.environ["TF_USE_LEGACY_KERAS"] = "1"


@dataclass(frozen=True)
class Outcome:
    results: tuple[ConfigResult, ...]
    report: str
    all_completed: bool
    tracking_complete: bool = True  # False: MLflow writes are left in the spool (replay them)


def run_sweep(plan: Plan) -> Outcome:
    import ray

    fail_fast_http()  # the writer retries an unreachable tracking server itself
    started = time.time()
    _init_ray(plan.spec.sweep.address, plan.verbose)
    if warning := disk_warning(session_disk()):
        print(warning, file=sys.stderr, flush=True)
    plan = with_cluster(plan, cluster_resources())
    featureset, data_info = sweep_features(plan)
    tracker = _start_tracking(plan, data_info)
    writer = _writer(plan, tracker)
    features_ref = ray.put(featureset)
    callback = _callback(plan)
    if callback.log_models:
        _import_tensorflow_cpu_only_quietly()
    callback.attach(writer)
    tuner = _tuner(plan, features_ref, callback, _settings(plan, tracker))
    if not plan.resume or plan.spec_changed:
        write_stored_spec(plan)
    fit_started, fit_started_unix = time.perf_counter(), time.time()
    try:
        grid = tuner.fit()
    except BaseException:
        writer.close(0)  # what the server takes now; the rest stays spooled for --resume
        raise
    sched = scheduling(grid, time.perf_counter() - fit_started, plan.max_concurrent, fit_started_unix)
    results = collect_results(grid, board(plan.name))
    wall = time.time() - started
    out_dir = Path(_local_results_dir(plan))
    write_results(out_dir, results, plan, wall, sched)
    complete = all(r.folds_completed == len(plan.spec.sweep.folds) for r in results if r.raced_out is None)
    status = "FINISHED" if complete else "FAILED"
    for cfg_id, comparison in comparisons(results).items():
        writer.submit("comparison", {"config_id": cfg_id, "values": comparison_metrics(comparison),
                                     "words": verdict(comparison)})
    for r in results:
        if r.raced_out is not None:
            writer.submit("raced_out", {"config_id": r.config_id, "dropped": dict(r.raced_out)})
    metrics = {**_sweep_metrics(results, wall, sched), **_racing_metrics(plan, results, grid)}
    refit_line = _refit(plan, features_ref, results, tracker, data_info, writer)
    files = [str(out_dir / name) for name in ("results.csv", "results.json") if (out_dir / name).exists()]
    writer.submit("finish_sweep", {"status": status, "metrics": metrics, "files": files})
    tracking = writer.close(plan.spec.sweep.tracking_grace_s)
    unregister_writer(writer)
    ui = plan.tracking_uri if plan.tracking_uri.startswith("http") else "http://127.0.0.1:5000"  # mlflow ui's
    if tracking.pending:  # the report reads the runs back from MLflow: after the replay
        sweep_report = (f"report: not written (MLflow unreachable); after the replay: python -m orchestration.report "
                        f"--run-id {tracker.sweep_run_id} --tracking-uri {redact(plan.tracking_uri)}")
    else:
        sweep_report = _sweep_report(tracker, out_dir / "report")
    extra = [f"the sweep's runs in the MLflow UI: {redact(ui_runs_url(ui, tracker.experiment_id))}",
             *(line for line in (refit_line, sweep_report) if line), *tracking.lines(plan.tracking_uri)]
    report = format_report(results, plan, wall, out_dir, sched) + "".join(f"\n{line}" for line in extra)
    return Outcome(tuple(results), report, status == "FINISHED", tracking.pending == 0)


def _writer(plan: Plan, tracker: SweepTracker):
    """The sweep's MLflow writer; writes an earlier driver left in the spool go first (the
    server answered the preflight check), so the pairs they finish count as finished."""
    writer = make_writer(tracker, spool_dir(plan))
    left = len(writer.spool.pending())
    if left:
        print(f"MLflow: writing {left} unit(s) an earlier run of this sweep left in {writer.spool.folder}", flush=True)
        writer.drain()
    return writer


def spool_dir(plan: Plan) -> str:
    return str(Path(_local_results_dir(plan)) / SPOOL_DIR)


def comparison_metrics(comparison) -> dict[str, float] | None:
    if comparison is None:
        return None
    return {"vs_best_mean_difference": comparison.mean_difference, "vs_best_ci_low": comparison.ci_low,
            "vs_best_ci_high": comparison.ci_high, "vs_best_wilcoxon_p": comparison.wilcoxon_p,
            "vs_best_ttest_p": comparison.ttest_p}


def _refit(plan: Plan, features_ref, results, tracker: SweepTracker, data_info, writer) -> str | None:
    """The refit (it needs MLflow: it registers a model). With the tracking server away it is
    left for ``--resume``, which refits a sweep whose refit has not finished."""
    if not (plan.spec.sweep.refits and results and results[0].fold_accuracy):
        return None
    from orchestration.refit import refit_best

    # The fold runs' writes first (one writer at a time); not if the server is away.
    if not writer.drain(plan.spec.sweep.tracking_grace_s):
        return "refit: skipped, the MLflow server is unreachable; run --resume once it is back to refit and register"
    try:
        return refit_best(plan, features_ref, results[0], tracker, data_info).line()
    except Exception:
        if server_answers(plan.tracking_uri):
            raise
        return "refit: the MLflow server went away during the refit; run --resume once it is back to redo it"


def _sweep_report(tracker: SweepTracker, out_dir: Path) -> str | None:
    """The HTML/markdown report (``orchestration.report``), logged to the sweep run. A failure
    here is a warning: the sweep and its results are already saved."""
    try:
        from orchestration.report import write_and_log

        return f"report: {write_and_log(tracker.client, tracker.sweep_run_id, out_dir)} (and report.md)"
    except Exception as exc:
        print(f"warning: the sweep report could not be written ({type(exc).__name__}: {redact(str(exc))[:500]}); "
              f"the results are saved. Retry: python -m orchestration.report --run-id {tracker.sweep_run_id} "
              f"--tracking-uri {redact(tracker.tracking_uri)}", file=sys.stderr, flush=True)
        return None


def _start_tracking(plan: Plan, data_info: dict[str, str]) -> SweepTracker:
    """The sweep's MLflow run (found again on resume) and one run per known configuration."""
    tracker = SweepTracker(plan.tracking_uri, plan.spec.sweep.experiment, plan.name)
    environment = _environment_tags(plan)
    tracker.source_tags = {MLFLOW_SOURCE_NAME: "orchestration/cv_sweep.py", MLFLOW_SOURCE_TYPE: "LOCAL",
                           MLFLOW_GIT_COMMIT: environment["us8k.git_commit"]}
    tracker.start_sweep(_sweep_params(plan), {**data_info, **environment})
    tracker.feature_keys = _fold_keys(data_info["us8k.feature_cache_keys"])
    tracker.augment_keys = _fold_keys(data_info.get("us8k.augment_cache_keys", ""))
    searched = tuple(plan.spec.sweep.search_space)
    for cfg_id, params in plan.configurations:
        tracker.config_run(cfg_id, config_label(params), fold_params(plan.spec.train.to_dict(), params, plan.spec.augment), searched)
    print(
        f"sweep {plan.name}: {_describe(plan)}; up to {plan.max_concurrent} trial(s) at once\n"
        f"MLflow: {redact(plan.tracking_uri)} (experiment {plan.spec.sweep.experiment!r}); "
        f"Ray storage: {redact(plan.storage_path)}/{plan.name}",
        flush=True,
    )
    return tracker


def _fold_keys(text: str) -> dict[int, str]:
    return {int(f): k for f, k in (p.split(":") for p in text.split(",") if p)}


def _racing_metrics(plan: Plan, results: list[ConfigResult], grid) -> dict[str, float]:
    """Fold trials run vs a full sweep's, and the CPU/GPU hours the never-started ones would
    have taken at the measured mean trial duration."""
    sweep = plan.spec.sweep
    full = len(results) * len(sweep.folds)
    ran = sum(r.folds_completed + len(r.stopped_folds) + len(r.failed_folds) for r in results)
    seconds = [float(m["time_total_s"]) for m in (g.metrics or {} for g in grid)
               if m.get("test_accuracy") is not None and m.get("time_total_s") and not m.get("reused")]
    hours = (full - ran) * (statistics.fmean(seconds) if seconds else 0.0) / 3600
    return {
        "trials_run": ran,
        "trials_full_sweep": full,
        "cpu_hours_saved": hours * sweep.workers_per_trial * sweep.cpus_per_worker,
        "gpu_hours_saved": hours * sweep.workers_per_trial * plan.gpus_per_worker,
    }


def _sweep_metrics(results: list[ConfigResult], wall: float, sched) -> dict[str, float]:
    return {
        "wall_seconds": wall,
        "configurations": len(results),
        "best_cv_accuracy_mean": results[0].mean if results else float("nan"),
        "tune_seconds": sched.tune_seconds,
        "trial_loop_seconds": sched.loop_seconds,
        "scheduling_ratio": sched.ratio,
    }


# ---------------------------------------------------------------------------------------------


def _import_tensorflow_cpu_only_quietly() -> None:
    """Import TensorFlow now, CPU only, with the process's native stderr pointed at /dev/null.

    The driver needs TensorFlow only to log models to MLflow. TensorFlow 2.21 prints start-up
    INFO lines (oneDNN, CUDA probing) from C++ before its logging is set up, ignoring
    TF_CPP_MIN_LOG_LEVEL; imported later on the MLflow writer thread they would land in the
    middle of the progress lines. An import error still raises, after stderr is restored.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
        import tf_keras  # noqa: F401

        # The driver only re-saves models: keep it off the GPUs so that, on a one-machine GPU
        # set-up, it does not take GPU memory (TensorFlow's default is all of it) from trials.
        # Device probing logs too (cuInit on CPU-only hosts), hence inside this block.
        tensorflow.config.set_visible_devices([], "GPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _init_ray(address: str | None, verbose: bool) -> None:
    import ray

    if ray.is_initialized():
        return
    # Worker output (TensorFlow's start-up chatter, Train's per-report lines) stays in Ray's
    # log files unless --verbose; trial errors are still reported, with their error files.
    ray.init(address=address, log_to_driver=verbose, configure_logging=True, logging_level="WARNING")


def _sweep_params(plan: Plan) -> dict[str, Any]:
    return {**redact_mapping(plan.spec.to_dict()), "resolved": {"gpus_per_worker": plan.gpus_per_worker, "max_concurrent": plan.max_concurrent}}


def _environment_tags(plan: Plan) -> dict[str, str]:
    import ray

    return {
        "us8k.git_commit": _git_commit(),
        "us8k.ray_resources": json.dumps({k: v for k, v in cluster_resources().items() if not k.startswith("node:")}),
        "us8k.ray_nodes": str(len([n for n in ray.nodes() if n["Alive"]])),
        "us8k.storage": f"{redact(plan.storage_path)}/{plan.name}",
        "us8k.ray_version": ray.__version__,
        **({"us8k.recipe": plan.spec.sweep.recipe} if plan.spec.sweep.recipe else {}),
    }


def _git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_label(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(params.items()))


def fold_params(base_train: dict[str, Any], params: dict[str, Any], augment: AugmentConfig | None = None) -> dict[str, Any]:
    """Full, consistently named hyper-parameters of a configuration (every train field, and
    the augmentation as ``augment.<field>`` when there is one)."""
    out = trial_train_config(base_train, params).to_dict()
    if augment is not None and not augment.empty:
        out.update({f"augment.{k}": v for k, v in augment.to_dict().items()})
    return out


def _describe(plan: Plan) -> str:
    sweep = plan.spec.sweep
    configs = len(plan.configurations) if plan.configurations else sweep.num_samples
    gpu = f" + {plan.gpus_per_worker:g} GPU" if plan.gpus_per_worker else ""
    return (
        (f"recipe {sweep.recipe}, " if sweep.recipe else "")
        + f"{configs} configuration(s) x {len(sweep.folds)} fold(s) ({sweep.search} search), "
        f"{plan.spec.train.epochs} epoch(s) max, {sweep.workers_per_trial} worker(s)/trial "
        f"x ({sweep.cpus_per_worker:g} CPU{gpu}), "
        + ("trained in the trial process" if in_trial(plan) else "a Ray Train worker group per trial")
        + (" [resumed]" if plan.resume else "")
    )


def _callback(plan: Plan) -> MLflowSweepCallback:
    searched = tuple(plan.spec.sweep.search_space)
    return MLflowSweepCallback(
        spool_dir=spool_dir(plan),
        tracking_uri=plan.tracking_uri,
        experiment=plan.spec.sweep.experiment,
        sweep_id=plan.name,
        folds_total=len(plan.spec.sweep.folds),
        fold_params=functools.partial(fold_params, plan.spec.train.to_dict(), augment=plan.spec.augment),
        config_label=config_label,
        searched=searched,
        storage_path=plan.storage_path,
        log_models=plan.spec.sweep.log_models,
    )


def _settings(plan: Plan, tracker: SweepTracker) -> TrialSettings:
    finished = {}
    for cfg_id, _ in plan.configurations:
        for fold, accuracy in tracker.fold_accuracies(cfg_id).items():
            finished[pair_key(cfg_id, fold)] = {"test_accuracy": accuracy}
    return TrialSettings(
        base_train=plan.spec.train.to_dict(),
        workers_per_trial=plan.spec.sweep.workers_per_trial,
        cpus_per_worker=plan.spec.sweep.cpus_per_worker,
        gpus_per_worker=plan.gpus_per_worker,
        storage_path=plan.storage_path,
        sweep_name=plan.name,
        train_max_failures=plan.spec.sweep.train_max_failures,
        finished=finished,
        in_trial=in_trial(plan),
    )


def in_trial(plan: Plan) -> bool:
    """Whether trials train in their own process (see SweepConfig.trial_process): auto means
    yes for 1-worker CPU trials; GPU and multi-worker trials get a Ray Train worker group."""
    sweep = plan.spec.sweep
    if sweep.trial_process != "auto":
        return sweep.trial_process == "in-trial"
    return sweep.workers_per_trial == 1 and plan.gpus_per_worker == 0


def _trainable(features_ref, settings: TrialSettings):
    from ray import tune

    fn = tune.with_parameters(run_fold_trial, features=features_ref, settings=settings)
    return tune.with_resources(fn, settings.trial_resources())


def _param_space(plan: Plan) -> dict[str, Any]:
    from ray import tune

    if not plan.configurations or plan.spec.sweep.racing != "off":
        return {}  # a searcher makes the trials
    table = dict(plan.configurations)
    # Tune varies the alphabetically first grid key fastest: trials go fold by fold, every
    # configuration on fold 1, then on fold 2, ... so a sweep cut short (--time-budget, Ctrl-C)
    # still compares all configurations on the same folds.
    return {
        "config_id": tune.grid_search([cfg for cfg, _ in plan.configurations]),
        "fold": tune.grid_search(list(plan.spec.sweep.folds)),
        "params": tune.sample_from(lambda config: table[config["config_id"]]),
    }


def _search_alg(plan: Plan):
    """None (Tune's grid over the param space), a racing PairSearcher, or Optuna per configuration."""
    from orchestration.racing import RaceState
    from orchestration.search import FoldExpander, PairSearcher

    sweep = plan.spec.sweep
    race = RaceState(sweep.racing, sweep.racing_alpha, sweep.racing_min_folds)
    if plan.configurations:
        return PairSearcher(plan.configurations, sweep.folds, race, plan.name) if sweep.racing != "off" else None
    from ray.tune.search.optuna import OptunaSearch

    inner = OptunaSearch(space=optuna_space(sweep.search_space), metric="cv_accuracy_mean", mode="max", seed=sweep.seed)
    return FoldExpander(inner, sweep.folds, race, plan.name)


def _tuner(plan: Plan, features_ref, callback: MLflowSweepCallback, settings: TrialSettings):
    from ray import tune

    trainable = _trainable(features_ref, settings)
    path = f"{plan.storage_path.rstrip('/')}/{plan.name}"
    if plan.resume and not tune.Tuner.can_restore(path):
        if read_stored_spec(plan.storage_path, plan.name) is None:
            raise SweepError(f"cannot resume: no Tune experiment state at {redact(path)}")
        # The driver was killed before Tune first saved its state (seconds into the trials):
        # the trials start again; pairs MLflow records as finished are reused, not retrained.
        print(f"resuming {redact(path)}: Tune had saved no state yet; trials start again, pairs "
              "MLflow has as finished are kept", flush=True)
    elif plan.resume:
        print(f"resuming {redact(path)}: finished trials are kept, unfinished ones run again", flush=True)
        # The same param space again: Tune stores its sample_from functions as placeholders.
        return tune.Tuner.restore(
            path, trainable=trainable, resume_unfinished=True, resume_errored=True, param_space=_param_space(plan)
        )
    sweep = plan.spec.sweep
    search_alg = _search_alg(plan)
    return tune.Tuner(
        trainable,
        param_space=_param_space(plan),
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            scheduler=RacingScheduler(plan.name) if sweep.racing != "off" else None,
            num_samples=_total_trials(plan) if search_alg else 1,
            max_concurrent_trials=plan.max_concurrent,
            time_budget_s=sweep.time_budget_s,
            # A trial process is reused by the next trial: no new process, no second TF import.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=plan.name,
            storage_path=plan.storage_path,
            callbacks=[callback, ProgressCallback(_total_trials(plan), plan.spec.train.epochs, len(sweep.folds))],
            failure_config=tune.FailureConfig(max_failures=sweep.trial_max_failures),
            # Trials that train in their own process report checkpoints to Tune: keep the last
            # two per trial (the newest is the final one, with the model).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            verbose=1 if plan.verbose else 0,  # Tune's own tables only with --verbose
        ),
    )


def _total_trials(plan: Plan) -> int:
    configs = len(plan.configurations) or plan.spec.sweep.num_samples
    return configs * len(plan.spec.sweep.folds)


def _local_results_dir(plan: Plan) -> str:
    if "://" in plan.storage_path:
        return str(Path(default_cache_dir()) / "sweeps" / plan.name)
    return f"{plan.storage_path}/{plan.name}"

