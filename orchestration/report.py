"""python -m orchestration.report [--sweep NAME | --run-id ID] [--tracking-uri URI] [--out DIR]

Runtime: seconds (two small artifact downloads per fold run, then five matplotlib figures).

The report a person reads after a sweep, built from the MLflow runs themselves (sweep ->
configuration -> fold): one self-contained HTML file (figures embedded as PNG) and its markdown
twin (figures beside it), written to ``--out`` (default ``reports/<sweep>``) and logged, with the
figures, as the sweep run's ``report/`` artifacts. It holds the ranked table with each
configuration's paired comparison with the best (``orchestration.results``), a configuration x
fold accuracy heatmap, per-class F1 per configuration, the best configuration's confusion matrix
summed over its folds (counts and row-normalised), learning curves, and a time-to-solution
table: fold runs grouped by the hardware they trained on (``us8k.hardware``), with workers,
epochs, seconds per epoch and seconds to solution (the trial's wall time).

Without ``--sweep`` or ``--run-id`` the latest sweep in the tracking store is reported. The
sweep driver calls ``write_and_log`` at the end of every sweep (a failure there is a warning).
This module gathers; ``orchestration.report_render`` draws and writes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from orchestration.results import ConfigResult
from orchestration.tracking import (
    TAG_CONFIG,
    TAG_FOLD,
    TAG_HARDWARE,
    TAG_KIND,
    TAG_SWEEP,
    resolve_tracking_uri,
)

ARTIFACT_PATH = "report"
UNKNOWN_HARDWARE = "hardware not recorded"


class ReportError(RuntimeError):
    """The sweep to report cannot be found or read; the message says what to change."""


@dataclass(frozen=True)
class FoldRun:
    """One fold run as the report needs it: metrics, tags, test report and epoch history."""

    config_id: str
    fold: int
    run_id: str
    status: str
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    report: Mapping[str, Any] | None  # the test fold's classification report (test_report.json)
    history: Sequence[Mapping[str, float]]  # one dict per epoch (history.json)
    duration_s: float | None  # the MLflow run's own start-to-end time

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED" and "test_accuracy" in self.metrics

    @property
    def hardware(self) -> str:
        return self.tags.get(TAG_HARDWARE) or UNKNOWN_HARDWARE

    @property
    def wall_seconds(self) -> float | None:
        """The trial's wall time (Tune's ``time_total_s``), else the MLflow run's duration."""
        return self.metrics.get("wall_seconds", self.duration_s)


@dataclass(frozen=True)
class SweepData:
    sweep_id: str
    experiment: str
    run_id: str
    status: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    folds: tuple[int, ...]
    results: list[ConfigResult]
    fold_runs: list[FoldRun]
    missing: list[str] = field(default_factory=list)  # artifacts that could not be read, and why

    @property
    def best(self) -> ConfigResult | None:
        return self.results[0] if self.results and self.results[0].fold_accuracy else None

    def folds_of(self, config_id: str, finished: bool = True) -> list[FoldRun]:
        return [f for f in self.fold_runs if f.config_id == config_id and (f.finished or not finished)]


@dataclass(frozen=True)
class TimeRow:
    """Fold runs that trained on the same hardware."""

    hardware: str
    workers: str
    runs: int
    epochs: float
    seconds_per_epoch: float
    seconds_to_solution: float  # mean wall time per fold run
    total_seconds: float


# ------------------------------------------------------------------------------ finding the sweep


def find_sweep_run(client: MlflowClient, sweep: str | None = None, run_id: str | None = None,
                   experiment: str | None = None):
    """The sweep run named ``sweep`` (``us8k.sweep_id``), or the sweep of run ``run_id`` (a
    sweep, configuration or fold run), or the latest sweep run of the store."""
    if run_id:
        try:
            run = client.get_run(run_id)
        except Exception as exc:
            raise ReportError(f"run {run_id}: {exc}") from None
        if run.data.tags.get(TAG_KIND) == "sweep":
            return run
        if TAG_SWEEP not in run.data.tags:
            raise ReportError(f"run {run_id} belongs to no sweep (no {TAG_SWEEP} tag): pass a sweep run's id or --sweep NAME")
        sweep, ids = run.data.tags[TAG_SWEEP], [run.info.experiment_id]
    else:
        ids = _experiment_ids(client, experiment)
    where = f"tags.`{TAG_KIND}` = 'sweep'" + (f" and tags.`{TAG_SWEEP}` = '{_quote(sweep)}'" if sweep else "")
    runs = client.search_runs(ids, where, max_results=100, order_by=["attributes.start_time DESC"]) if ids else []
    if not runs:
        what = f"no sweep named {sweep!r}" if sweep else "no sweep runs"
        raise ReportError(f"{what} in the tracking store {client.tracking_uri}"
                          + (f" (experiment {experiment!r})" if experiment else "")
                          + "; check --tracking-uri/--experiment, or run python -m orchestration.cv_sweep first")
    if sweep and len({r.info.experiment_id for r in runs}) > 1:
        names = sorted(client.get_experiment(r.info.experiment_id).name for r in runs)
        raise ReportError(f"sweep {sweep!r} exists in several experiments ({', '.join(names)}): pass --experiment")
    return runs[0]


def _experiment_ids(client: MlflowClient, experiment: str | None) -> list[str]:
    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise ReportError(f"no experiment {experiment!r} in the tracking store {client.tracking_uri}")
        return [found.experiment_id]
    return [e.experiment_id for e in client.search_experiments(max_results=1000)]


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


# ------------------------------------------------------------------------------ gathering


def gather(client: MlflowClient, sweep_run, workdir: Path) -> SweepData:
    """Everything the report shows, read from the sweep's MLflow runs (artifacts into ``workdir``)."""
    sweep_id = sweep_run.data.tags[TAG_SWEEP]
    exp_id = sweep_run.info.experiment_id
    runs = client.search_runs([exp_id], f"tags.`{TAG_SWEEP}` = '{_quote(sweep_id)}'", max_results=50000)
    configs = [r for r in runs if r.data.tags.get(TAG_KIND) == "config"]
    missing: list[str] = []
    with _no_progress_bars():  # two small files per fold run: a bar for each is noise
        fold_runs = [_fold_run(client, r, workdir, missing) for r in runs if r.data.tags.get(TAG_KIND) == "fold"]
    fold_runs.sort(key=lambda f: (f.config_id, f.fold))
    folds = _folds(sweep_run.data.params.get("sweep.folds"), fold_runs)
    return SweepData(
        sweep_id=sweep_id,
        experiment=client.get_experiment(exp_id).name,
        run_id=sweep_run.info.run_id,
        status=sweep_run.info.status,
        params=dict(sweep_run.data.params),
        metrics=dict(sweep_run.data.metrics),
        tags=dict(sweep_run.data.tags),
        folds=folds,
        results=config_results(configs, fold_runs),
        fold_runs=fold_runs,
        missing=missing,
    )


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as BAR

    before = os.environ.get(BAR.name)
    BAR.set("false")
    try:
        yield
    finally:
        if before is None:
            BAR.unset()
        else:
            BAR.set(before)


def _fold_run(client: MlflowClient, run, workdir: Path, missing: list[str]) -> FoldRun:
    tags, info = run.data.tags, run.info
    name = f"{tags.get(TAG_CONFIG)} fold {tags.get(TAG_FOLD)}"
    finished = info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    report = _artifact_json(client, info.run_id, "test_report.json", workdir, missing, name) if finished else None
    history = _artifact_json(client, info.run_id, "history.json", workdir, missing, name) if finished else None
    duration = (info.end_time - info.start_time) / 1000 if info.end_time and info.start_time else None
    return FoldRun(tags[TAG_CONFIG], int(tags[TAG_FOLD]), info.run_id, info.status, dict(run.data.metrics),
                   dict(tags), report, history or [], duration)


def _artifact_json(client: MlflowClient, run_id: str, path: str, workdir: Path, missing: list[str], name: str) -> Any:
    try:
        local = client.download_artifacts(run_id, path, str(_mkdir(workdir / run_id)))
        return json.loads(Path(local).read_text())
    except Exception as exc:  # a fold whose logging failed: the report says so and goes on
        missing.append(f"{name}: {path} ({type(exc).__name__}: {str(exc)[:200]})")
        return None


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _folds(logged: str | None, fold_runs: Iterable[FoldRun]) -> tuple[int, ...]:
    """The sweep's folds as its spec logged them (``sweep.folds``), else those that have runs."""
    try:
        return tuple(int(f) for f in json.loads(logged)) if logged else tuple(sorted({f.fold for f in fold_runs}))
    except (ValueError, TypeError):
        return tuple(sorted({f.fold for f in fold_runs}))


def config_results(configs: Sequence[Any], fold_runs: Sequence[FoldRun]) -> list[ConfigResult]:
    """The results table's rows, ranked as the sweep ranks them (finished ones by mean, raced
    out last), from the configuration runs and their fold runs."""
    rows = []
    for run in configs:
        cfg, tags = run.data.tags[TAG_CONFIG], run.data.tags
        searched = [k for k in tags.get("us8k.searched", "").split(",") if k]
        mine = [f for f in fold_runs if f.config_id == cfg]
        accuracy = {f.fold: f.metrics["test_accuracy"] for f in sorted(mine, key=lambda f: f.fold) if f.finished}
        failed = tuple(sorted(f.fold for f in mine if f.status == "FAILED"))
        stopped = tuple(sorted(f.fold for f in mine if f.status == "KILLED"))
        rows.append(ConfigResult(cfg, {k: _value(run.data.params.get(k)) for k in searched}, accuracy,
                                 failed, stopped, _raced_out(tags)))
    return sorted(rows, key=lambda r: (r.raced_out is not None, not r.fold_accuracy,
                                       -r.mean if r.fold_accuracy else 0.0, r.config_id))


def _value(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return text


def _raced_out(tags: Mapping[str, str]) -> dict[str, Any] | None:
    if tags.get("us8k.raced_out") != "true":
        return None
    return {"after_folds": int(tags.get("us8k.raced_out_after_folds", 0)),
            "p_value": float(tags.get("us8k.raced_out_p_value", "nan")),
            "leader": tags.get("us8k.raced_out_leader", "?"),
            "folds": [int(f) for f in tags.get("us8k.raced_out_folds", "").split(",") if f]}


# ------------------------------------------------------------------------------ derived tables


def pooled_report(data: SweepData, config_id: str) -> dict[str, Any] | None:
    """scikit-learn's classification report of a configuration's test predictions pooled over
    its finished folds (rebuilt from their summed confusion matrices): per-class F1 per
    configuration, and the best one's summed confusion matrix."""
    import numpy as np

    from model.metrics import classification_report

    reports = [f.report for f in data.folds_of(config_id) if f.report]
    if not reports:
        return None
    cm = np.sum([np.asarray(r["confusion_matrix"], dtype=np.int64) for r in reports], axis=0)
    names = [c["class_name"] for c in reports[0]["per_class"]]
    k = len(names)
    y_true = np.repeat(np.arange(k), cm.sum(axis=1))
    y_pred = np.concatenate([np.repeat(np.arange(k), row) for row in cm]) if cm.sum() else np.zeros(0, np.int64)
    report = classification_report(y_true, y_pred, k, names)
    report["folds"] = len(reports)
    return report


def time_to_solution(fold_runs: Iterable[FoldRun]) -> list[TimeRow]:
    """Finished fold runs grouped by hardware: CPU rows first, then GPU rows by GPU count."""
    groups: dict[str, list[FoldRun]] = {}
    for run in fold_runs:
        if run.finished:
            groups.setdefault(run.hardware, []).append(run)
    rows = [_time_row(label, runs) for label, runs in groups.items()]
    return sorted(rows, key=lambda r: (not r.hardware.startswith("CPU"), _gpu_count(r.hardware), r.hardware))


def _time_row(label: str, runs: list[FoldRun]) -> TimeRow:
    walls = [w for w in (r.wall_seconds for r in runs) if w is not None]
    per_epoch = [r.metrics.get("seconds_per_epoch") or _mean_epoch_seconds(r) for r in runs]
    workers = sorted({r.tags.get("us8k.hw.workers", "?") for r in runs})
    return TimeRow(
        hardware=label,
        workers=", ".join(workers),
        runs=len(runs),
        epochs=_mean(r.metrics.get("epochs_trained") for r in runs),
        seconds_per_epoch=_mean(per_epoch),
        seconds_to_solution=_mean(walls),
        total_seconds=sum(walls),
    )


def _mean_epoch_seconds(run: FoldRun) -> float | None:
    seconds = [h["epoch_seconds"] for h in run.history if "epoch_seconds" in h]
    return statistics.fmean(seconds) if seconds else None


def _mean(values: Iterable[float | None]) -> float:
    present = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.fmean(present) if present else float("nan")


def _gpu_count(label: str) -> int:
    head = label.split("xGPU", 1)[0]
    return int(head) if head.isdigit() else 0


# ------------------------------------------------------------------------------ write and log


def write_and_log(client: MlflowClient, sweep_run_id: str, out_dir: Path) -> Path:
    """Build the report of a sweep run into ``out_dir``, log it as the run's ``report/``
    artifacts, and return the HTML file's path."""
    from orchestration.report_render import render

    with tempfile.TemporaryDirectory() as tmp:
        data = gather(client, client.get_run(sweep_run_id), Path(tmp))
        html = render(data, out_dir)
    client.log_artifacts(sweep_run_id, str(out_dir), ARTIFACT_PATH)
    return html


def _check_store_exists(uri: str) -> None:
    """A sqlite store that is not there is a mistake to report, not a new database to create."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///").split("?")[0])
        if not path.is_file():
            raise ReportError(f"no tracking store at {path.resolve()} ({uri}); pass --tracking-uri "
                              "(the sweep's, e.g. sqlite:///path/to/mlflow.db or http://host:5000)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m orchestration.report",
                                description="An HTML + markdown report of a sweep, from its MLflow runs.")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--sweep", metavar="NAME", help="the sweep's name (default: the latest sweep)")
    which.add_argument("--run-id", metavar="ID", help="the sweep run's id (or any of its runs')")
    p.add_argument("--experiment", help="MLflow experiment to look in (default: all)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: reports/<sweep>)")
    p.add_argument("--no-log", action="store_true", help="write the files only, do not log them to the sweep run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from orchestration.redact import redact
    from orchestration.report_render import render

    uri = resolve_tracking_uri(args.tracking_uri)
    try:
        _check_store_exists(uri)
        client = MlflowClient(uri)
        run = find_sweep_run(client, args.sweep, args.run_id, args.experiment)
    except ReportError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("reports") / run.data.tags[TAG_SWEEP]
    if args.no_log:
        with tempfile.TemporaryDirectory() as tmp:
            html = render(gather(client, run, Path(tmp)), out)
    else:
        html = write_and_log(client, run.info.run_id, out)
    print(f"report of sweep {run.data.tags[TAG_SWEEP]}: {html} (and {html.with_suffix('.md').name})"
          + ("" if args.no_log else f"; logged to run {run.info.run_id} under {ARTIFACT_PATH}/"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
