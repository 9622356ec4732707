"""The sweep report's figures (matplotlib PNGs) and its two renderings: one self-contained HTML
file (figures embedded as base64 PNG) and a markdown twin (figures as files beside it).

Both come from one list of blocks (headings, paragraphs, tables, figures), so they say the
same thing. ``render(data, out_dir)`` writes ``report.html``, ``report.md`` and ``figures/``.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: selected before pyplot is imported
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from orchestration.plots import confusion_matrix_png
from orchestration.report import SweepData, pooled_report, time_to_solution
from orchestration.results import comparisons, verdict

MAX_CURVES = 8  # configurations drawn in the learning curves (the best ranked)


@dataclass(frozen=True)
class Block:
    kind: str  # "h1", "h2", "p", "table", "figure"
    text: str = ""
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    path: Path | None = None  # a figure's PNG


def render(data: SweepData, out_dir: Path) -> Path:
    """Write the report of ``data`` into ``out_dir``; the HTML file's path."""
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    blocks = report_blocks(data, figures)
    title = f"Sweep {data.sweep_id}"
    (out_dir / "report.md").write_text(to_markdown(blocks, out_dir))
    path = out_dir / "report.html"
    path.write_text(to_html(title, blocks))
    return path


# ------------------------------------------------------------------------------ content


def report_blocks(data: SweepData, figures: Path) -> list[Block]:
    blocks = [Block("h1", f"Sweep {data.sweep_id}"), Block("p", _summary(data))]
    blocks += _ranked(data)
    blocks += _accuracy_grid(data, figures)
    blocks += _per_class(data, figures)
    blocks += _confusion(data, figures)
    blocks += _curves(data, figures)
    blocks += _time_table(data)
    if data.missing:
        blocks += [Block("h2", "Missing artifacts"),
                   Block("table", headers=("fold run: artifact (reason)",), rows=tuple((m,) for m in data.missing))]
    return blocks


def _summary(data: SweepData) -> str:
    m, t = data.metrics, data.tags
    parts = [f"experiment {data.experiment}", f"MLflow run {data.run_id} ({data.status})",
             f"{len(data.results)} configuration(s) x {len(data.folds)} fold(s) ({', '.join(map(str, data.folds))})"]
    if "wall_seconds" in m:
        parts.append(f"wall time {m['wall_seconds']:.0f} s")
    if "scheduling_ratio" in m:
        parts.append(f"scheduling ratio {m['scheduling_ratio']:.2f}x")
    for key, label in (("us8k.clips", "clips"), ("us8k.dataset_fingerprint", "dataset"), ("us8k.git_commit", "commit")):
        if t.get(key):
            parts.append(f"{label} {t[key][:16]}")
    return "; ".join(parts) + "."


def _ranked(data: SweepData) -> list[Block]:
    vs_best = comparisons(data.results)
    ranked = [r for r in data.results if r.raced_out is None]
    rows = []
    for rank, r in enumerate(data.results, 1):
        if r.raced_out is not None:
            d = r.raced_out
            versus = f"raced out after {d['after_folds']} fold(s): worse than {d['leader']}, one-sided p={d['p_value']:.3g}"
        elif r.config_id in vs_best:
            versus = verdict(vs_best[r.config_id])
        else:
            versus = "best" if r.fold_accuracy else "no finished fold"
        cells = [f"{r.fold_accuracy[f]:.3f}" if f in r.fold_accuracy else "-" for f in data.folds]
        params = ", ".join(f"{k}={v}" for k, v in sorted(r.params.items()))
        rows.append((str(rank) if rank <= len(ranked) else "out", r.config_id, _mean_std(r), str(r.folds_completed),
                     *cells, versus, params))
    headers = ("rank", "configuration", "mean ± std", "folds", *(f"fold {f}" for f in data.folds), "vs the best", "params")
    intro = ("Mean ± std (ddof=0) of the test accuracy over the held-out folds. Every configuration is "
             "compared with the best on the folds both finished: Wilcoxon signed-rank and paired t-test "
             "p-values, mean difference with a 95% t interval.")
    return [Block("h2", "Ranked configurations"), Block("p", intro), Block("table", headers=headers, rows=tuple(rows))]


def _mean_std(r) -> str:
    return f"{r.mean:.3f} ± {r.std:.3f}" if r.fold_accuracy else "-"


def _accuracy_grid(data: SweepData, figures: Path) -> list[Block]:
    if not data.results or not data.folds:
        return []
    grid = np.array([[r.fold_accuracy.get(f, np.nan) for f in data.folds] for r in data.results], dtype=float)
    path = heatmap_png(grid, [r.config_id for r in data.results], [str(f) for f in data.folds],
                       figures / "accuracy_heatmap.png", "Test accuracy per configuration and held-out fold",
                       xlabel="test fold", ylabel="configuration (ranked)")
    return [Block("h2", "Accuracy per configuration and fold"), Block("figure", "configuration x fold test accuracy", path=path)]


def _per_class(data: SweepData, figures: Path) -> list[Block]:
    reports = {r.config_id: pooled_report(data, r.config_id) for r in data.results}
    reports = {k: v for k, v in reports.items() if v}
    if not reports:
        return []
    names = [c["class_name"] for c in next(iter(reports.values()))["per_class"]]
    grid = np.array([[c["f1"] for c in rep["per_class"]] for rep in reports.values()])
    path = heatmap_png(grid, list(reports), names, figures / "per_class_f1.png", "F1 per class (test predictions pooled over folds)",
                       xlabel="class", ylabel="configuration (ranked)", rotate=True)
    rows = tuple((cfg, f"{rep['macro_f1']:.3f}", str(rep["folds"]), *(f"{c['f1']:.3f}" for c in rep["per_class"]))
                 for cfg, rep in reports.items())
    text = ("scikit-learn's per-class F1 of each configuration over the test predictions of all its finished "
            "folds (their confusion matrices summed).")
    return [Block("h2", "Per-class F1"), Block("p", text),
            Block("table", headers=("configuration", "macro F1", "folds", *names), rows=rows),
            Block("figure", "per-class F1 per configuration", path=path)]


def _confusion(data: SweepData, figures: Path) -> list[Block]:
    best = data.best
    report = pooled_report(data, best.config_id) if best else None
    if report is None:
        return []
    title = f"{best.config_id}, {report['folds']} fold(s) summed"
    counts = confusion_matrix_png(report, figures / "confusion_counts.png", f"{title}: clips", normalize=False)
    normalised = confusion_matrix_png(report, figures / "confusion_normalised.png", f"{title}: row-normalised")
    return [Block("h2", f"Confusion matrix of the best configuration ({best.config_id})"),
            Block("p", "Test predictions of every finished fold, summed: clip counts, then each true class's row divided by its clips (recall on the diagonal)."),
            Block("figure", "confusion matrix, counts", path=counts),
            Block("figure", "confusion matrix, row-normalised", path=normalised)]


def _curves(data: SweepData, figures: Path) -> list[Block]:
    shown = [r.config_id for r in data.results if any(f.history for f in data.folds_of(r.config_id))][:MAX_CURVES]
    if not shown:
        return []
    path = learning_curves_png(data, shown, figures / "learning_curves.png")
    more = len(data.results) - len(shown)
    text = "Per epoch, mean over each configuration's finished folds: validation (solid) and training (dashed)."
    return [Block("h2", "Learning curves"), Block("p", text + (f" The {len(shown)} best ranked shown." if more > 0 else "")),
            Block("figure", "learning curves", path=path)]


def _time_table(data: SweepData) -> list[Block]:
    rows = time_to_solution(data.fold_runs)
    if not rows:
        return []
    cells = tuple((r.hardware, r.workers, str(r.runs), _num(r.epochs, 1), _num(r.seconds_per_epoch, 2),
                   _num(r.seconds_to_solution, 1), _num(r.total_seconds, 0)) for r in rows)
    text = ("Finished fold runs grouped by the hardware they trained on (recorded by each run's worker). "
            "Seconds to solution: the trial's wall time, start-up and evaluation included, mean per fold run.")
    headers = ("hardware", "workers", "fold runs", "epochs", "s / epoch", "s to solution", "total s")
    return [Block("h2", "Time to solution"), Block("p", text), Block("table", headers=headers, rows=cells)]


def _num(value: float, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


# ------------------------------------------------------------------------------ figures


def heatmap_png(grid: np.ndarray, rows: Sequence[str], cols: Sequence[str], path: Path, title: str,
                xlabel: str, ylabel: str, rotate: bool = False) -> Path:
    """A [0, 1] heatmap with its values written in the cells (blank where missing)."""
    fig, ax = plt.subplots(figsize=(max(6.5, 2.5 + 0.75 * len(cols)), 1.8 + 0.4 * len(rows)))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    ax.set_yticks(range(len(rows)), rows)
    if len(rows) * len(cols) <= 400:
        for (i, j), value in np.ndenumerate(grid):
            if math.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if value > 0.6 else "white")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def learning_curves_png(data: SweepData, config_ids: Sequence[str], path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, cfg in enumerate(config_ids):
        color = colors[i % len(colors)]
        histories = [f.history for f in data.folds_of(cfg) if f.history]
        for ax, key in ((left, "accuracy"), (right, "loss")):
            for prefix, style in (("val_", "-"), ("", "--")):
                epochs, means = _mean_curve(histories, prefix + key)
                if epochs:
                    ax.plot(epochs, means, style, marker="o", markersize=3, color=color,
                            label=cfg if prefix else None)
    for ax, key in ((left, "accuracy"), (right, "loss")):
        ax.set(xlabel="epoch", ylabel=key, title=f"{key} (mean over folds)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _mean_curve(histories: Sequence[Sequence[dict[str, Any]]], key: str) -> tuple[list[int], list[float]]:
    by_epoch: dict[int, list[float]] = {}
    for history in histories:
        for h in history:
            if key in h and h[key] is not None and math.isfinite(h[key]):
                by_epoch.setdefault(int(h["epoch"]), []).append(float(h[key]))
    epochs = sorted(by_epoch)
    return epochs, [float(np.mean(by_epoch[e])) for e in epochs]


# ------------------------------------------------------------------------------ HTML and markdown

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:13px;display:block;overflow-x:auto;max-width:100%}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f2f2f2}tr:nth-child(even) td{background:#fafafa}img{max-width:100%;display:block;margin:1em 0}
p{line-height:1.45}"""


def to_html(title: str, blocks: Sequence[Block]) -> str:
    body = []
    for b in blocks:
        if b.kind in ("h1", "h2", "p"):
            body.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.headers)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "figure":
            encoded = base64.b64encode(b.path.read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(b.text)}" data-figure="{html.escape(b.path.name)}" '
                        f'src="data:image/png;base64,{encoded}"></figure>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def to_markdown(blocks: Sequence[Block], out_dir: Path) -> str:
    lines: list[str] = []
    for b in blocks:
        if b.kind == "h1":
            lines += [f"# {b.text}", ""]
        elif b.kind == "h2":
            lines += [f"## {b.text}", ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "table":
            lines.append("| " + " | ".join(map(_md_cell, b.headers)) + " |")
            lines.append("|" + "|".join(" --- " for _ in b.headers) + "|")
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in b.rows]
            lines.append("")
        elif b.kind == "figure":
            lines += [f"![{b.text}]({b.path.relative_to(out_dir).as_posix()})", ""]
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
