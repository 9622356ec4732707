"""The sweep's outcome: configurations ranked by mean test accuracy over folds."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.train_loop import FINAL_KEY
from orchestration.compare import PairedComparison, compare
from orchestration.redact import redact, redact_mapping
from orchestration.trial import REUSED_KEY

if TYPE_CHECKING:
    from orchestration.plan import Plan


@dataclass(frozen=True)
class ConfigResult:
    config_id: str
    params: dict[str, Any]
    fold_accuracy: dict[int, float]
    failed_folds: tuple[int, ...]
    stopped_folds: tuple[int, ...] = ()  # stopped before their final report (raced out, time budget)
    raced_out: dict[str, Any] | None = None  # orchestration.racing.Dropped as a dict

    @property
    def folds_completed(self) -> int:
        return len(self.fold_accuracy)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.fold_accuracy.values()) if self.fold_accuracy else float("nan")

    @property
    def std(self) -> float:
        # Population std over folds, as MLflow's cv_accuracy_std (sklearn's cross_val_score().std()).
        return statistics.pstdev(self.fold_accuracy.values()) if self.fold_accuracy else float("nan")


@dataclass(frozen=True)
class Scheduling:
    """How much of the sweep's wall time went to training (the rest is orchestration).

    ``loop_seconds``: summed time inside the Train workers' training loops (TensorFlow's
    import, data, fit, test evaluation) of the trials that trained in this run; ``tune_seconds``:
    ``Tuner.fit`` wall; ratio = tune_seconds / (loop_seconds / concurrency), 1.0 = no overhead.
    """

    trials: int
    loop_seconds: float
    tune_seconds: float
    concurrency: int

    @property
    def ratio(self) -> float:
        ideal = self.loop_seconds / max(1, self.concurrency)
        return self.tune_seconds / ideal if ideal > 0 else float("nan")

    def line(self) -> str:
        if not self.trials:
            return f"scheduling: no trial trained in this run (Tuner.fit {self.tune_seconds:.0f} s)"
        return (
            f"scheduling: {self.trials} trial(s) spent {self.loop_seconds:.0f} s in their training loops; "
            f"Tuner.fit took {self.tune_seconds:.0f} s at up to {self.concurrency} at once: "
            f"{self.ratio:.2f}x the training time alone (1.00x = no orchestration overhead)"
        )


def scheduling(grid, tune_seconds: float, max_concurrent: int, since: float) -> Scheduling:
    """Sum the final ``loop_seconds`` of trials that trained in this run.

    Not counted: pairs reused from MLflow, and trials a restored Tuner had already finished
    (their last result, reported before ``since`` (unix time), comes back in the grid).
    """
    loops = [
        float(m["loop_seconds"])
        for m in (r.metrics or {} for r in grid)
        if m.get(FINAL_KEY)
        and not m.get(REUSED_KEY)
        and m.get("loop_seconds") is not None
        and m.get("timestamp", since) >= int(since)
    ]
    return Scheduling(len(loops), sum(loops), tune_seconds, min(max_concurrent, max(1, len(loops))))


def collect_results(grid, race: Any = None) -> list[ConfigResult]:
    """Group a Tune ResultGrid's trials by configuration: the finished ones by mean (best first),
    then the raced-out ones (``race``: the sweep's RaceState) by their partial mean, never
    ranked as if complete."""
    by_config: dict[str, dict[str, Any]] = {}
    for result in grid:
        config = result.config or {}
        if "config_id" not in config:
            continue
        entry = by_config.setdefault(config["config_id"], {"params": config.get("params", {}), "acc": {},
                                                          "failed": [], "stopped": []})
        metrics = result.metrics or {}
        fold = int(config["fold"])
        if result.error is None and "test_accuracy" in metrics:
            entry["acc"][fold] = float(metrics["test_accuracy"])
        else:
            entry["stopped" if result.error is None else "failed"].append(fold)
    dropped = getattr(race, "dropped", {}) or {}
    rows = [
        ConfigResult(cfg, e["params"], dict(sorted(e["acc"].items())), tuple(sorted(e["failed"])),
                     tuple(sorted(e["stopped"])), asdict(dropped[cfg]) if cfg in dropped else None)
        for cfg, e in by_config.items()
    ]
    return sorted(rows, key=lambda r: (r.raced_out is not None, not r.fold_accuracy, -r.mean if r.fold_accuracy else 0.0))


def comparisons(results: list[ConfigResult]) -> dict[str, PairedComparison | None]:
    """Every configuration but the best (``results[0]``) against it, on the folds both finished."""
    if not results or not results[0].fold_accuracy:
        return {}
    best = results[0]
    return {r.config_id: compare(best.fold_accuracy, r.fold_accuracy) for r in results[1:]}


def verdict(comparison: PairedComparison | None, alpha: float = 0.05) -> str:
    """The comparison in words, as the table prints it."""
    if comparison is None:
        return "not compared (fewer than 2 folds shared with the best)"
    c = comparison
    numbers = (f"difference {c.mean_difference:+.3f}, {c.confidence:.0%} CI {c.ci_low:+.3f}..{c.ci_high:+.3f}, "
               f"Wilcoxon p={c.wilcoxon_p:.3g}, t-test p={c.ttest_p:.3g}, {len(c.folds)} folds")
    if c.distinguishable(alpha):
        return f"worse than the best ({numbers})"
    floor = 2.0 / 2 ** len(c.folds)  # the two-sided Wilcoxon's smallest p: every fold agrees
    if floor >= alpha:  # e.g. a configuration raced out after 5 folds: 2/32 = 0.0625
        return (f"not distinguishable from the best at p<{alpha:g}: with {len(c.folds)} shared folds the "
                f"Wilcoxon test cannot go below p={floor:.3g} ({numbers})")
    return f"not distinguishable from the best at p<{alpha:g} ({numbers})"


def format_table(results: list[ConfigResult], folds: tuple[int, ...]) -> str:
    head = f"{'rank':>4}  {'config':<10} {'mean':>6} {'± std':>6}  " + " ".join(f"{'f' + str(f):>5}" for f in folds)
    lines = [head + "  params"]
    ranked = [r for r in results if r.raced_out is None]
    for rank, r in enumerate(results, 1):
        cells = " ".join(f"{r.fold_accuracy[f]:5.3f}" if f in r.fold_accuracy else f"{'-':>5}" for f in folds)
        params = " ".join(f"{k}={v}" for k, v in sorted(r.params.items()))
        shown = str(rank) if rank <= len(ranked) else "out"  # raced out: partial, not ranked
        lines.append(f"{shown:>4}  {r.config_id:<10} {r.mean:6.3f} {r.std:6.3f}  {cells}  {params}")
    return "\n".join(lines)


def racing_lines(results: list[ConfigResult], folds: tuple[int, ...]) -> list[str]:
    """One line per raced-out configuration, and the fold trials the race saved."""
    out = [r for r in results if r.raced_out is not None]
    if not out:
        return []
    ran = sum(r.folds_completed + len(r.stopped_folds) for r in results)
    lines = [f"racing: {ran} of {len(results) * len(folds)} fold trials run "
             f"({len(results) * len(folds) - ran} never started)"]
    for r in out:
        d = r.raced_out
        lines.append(f"raced out: {r.config_id} after {d['after_folds']} fold(s) (partial mean {r.mean:.3f} ± {r.std:.3f} "
                     f"over folds {', '.join(map(str, r.fold_accuracy))}): worse than {d['leader']} "
                     f"on {len(d['folds'])} shared folds, one-sided p={d['p_value']:.3g}")
    return lines


def format_report(
    results: list[ConfigResult], plan: Plan, wall_s: float, out_dir: Path, sched: Scheduling | None = None
) -> str:
    folds = plan.spec.sweep.folds
    lines = [
        "",
        f"Cross-validation results of sweep {plan.name} (test accuracy per held-out fold; official folds)",
        format_table(results, folds),
    ]
    if results and results[0].fold_accuracy:
        best = results[0]
        lines.append(
            f"best: {best.config_id} ({', '.join(f'{k}={v}' for k, v in sorted(best.params.items()))}): "
            f"{best.mean:.3f} ± {best.std:.3f} over {best.folds_completed} fold(s)"
        )
    for cfg, comparison in comparisons(results).items():
        lines.append(f"{cfg}: {verdict(comparison)}")
    lines += racing_lines(results, folds)
    incomplete = [r for r in results if r.raced_out is None and (r.failed_folds or r.folds_completed < len(folds))]
    for r in incomplete:
        lines.append(f"incomplete: {r.config_id} finished {r.folds_completed}/{len(folds)} folds; failed: {list(r.failed_folds)}")
    if sched is not None:
        lines.append(sched.line())
    lines += [
        f"wall time: {wall_s:.0f} s; results: {out_dir / 'results.csv'} and results.json",
        "compare in the MLflow UI:",
        f"  mlflow ui --backend-store-uri {redact(plan.tracking_uri)}"
        if not plan.tracking_uri.startswith("http")
        else f"  open {redact(plan.tracking_uri)}",
    ]
    return "\n".join(lines)


def results_table(results: list[ConfigResult], folds: tuple[int, ...]):
    """The ranked table as a DataFrame: one row per configuration, one column per fold."""
    import pandas as pd

    vs_best = comparisons(results)
    rows = [
        {
            "rank": rank,
            "config_id": r.config_id,
            "cv_accuracy_mean": r.mean,
            "cv_accuracy_std": r.std,
            "folds_completed": r.folds_completed,
            **{f"fold_{f}": r.fold_accuracy.get(f) for f in folds},
            **_comparison_columns(vs_best.get(r.config_id)),
            "params": json.dumps(r.params, sort_keys=True),
        }
        for rank, r in enumerate(results, 1)
    ]
    columns = ["rank", "config_id", "cv_accuracy_mean", "cv_accuracy_std", "folds_completed",
               *(f"fold_{f}" for f in folds), *COMPARISON_COLUMNS, "params"]
    return pd.DataFrame(rows, columns=columns)


COMPARISON_COLUMNS = ("vs_best_mean_difference", "vs_best_ci_low", "vs_best_ci_high", "vs_best_wilcoxon_p", "vs_best_ttest_p")


def _comparison_columns(comparison: PairedComparison | None) -> dict[str, float | None]:
    if comparison is None:
        return dict.fromkeys(COMPARISON_COLUMNS)
    c = comparison
    return dict(zip(COMPARISON_COLUMNS, (c.mean_difference, c.ci_low, c.ci_high, c.wilcoxon_p, c.ttest_p), strict=True))


def write_results(
    out_dir: Path, results: list[ConfigResult], plan: Plan, wall_s: float, sched: Scheduling | None = None
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    vs_best = comparisons(results)
    results_table(results, plan.spec.sweep.folds).to_csv(out_dir / "results.csv", index=False)
    payload = {
        "sweep": plan.name,
        "wall_seconds": wall_s,
        "scheduling": {**asdict(sched), "ratio": sched.ratio} if sched is not None else None,
        "spec": redact_mapping(plan.spec.to_dict()),
        "configurations": [
            {**asdict(r), "fold_accuracy": {str(k): v for k, v in r.fold_accuracy.items()},
             "cv_accuracy_mean": r.mean, "cv_accuracy_std": r.std, **_vs_best_entry(vs_best, r.config_id)}
            for r in results
        ],
    }
    (out_dir / "results.json").write_text(json.dumps(payload, indent=1, default=str))


def _vs_best_entry(vs_best: dict[str, PairedComparison | None], config_id: str) -> dict[str, Any]:
    if config_id not in vs_best:
        return {"vs_best": None}  # the best itself
    comparison = vs_best[config_id]
    return {"vs_best": comparison.to_dict() if comparison else None, "vs_best_verdict": verdict(comparison)}
