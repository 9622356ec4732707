"""Figures for a fold run: confusion matrix and learning curves (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # the sweep driver has no display; select before pyplot is imported
import matplotlib.pyplot as plt
import numpy as np


def confusion_matrix_png(report: Mapping[str, Any], path: Path, title: str, normalize: bool = True) -> Path:
    """The confusion matrix of a ``classification_report`` dict, drawn by scikit-learn's
    ``ConfusionMatrixDisplay``: row-normalised (each true class's recall spread over the
    predictions) or, with ``normalize=False``, clip counts."""
    from sklearn.metrics import ConfusionMatrixDisplay

    cm = np.asarray(report["confusion_matrix"], dtype=float)
    names = [c["class_name"] for c in report["per_class"]]
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    fig, ax = plt.subplots(figsize=(8, 7))
    display = ConfusionMatrixDisplay(shown, display_labels=names)
    display.plot(ax=ax, cmap="Blues", values_format=".2f" if normalize else ".0f", xticks_rotation=60)
    if normalize:
        display.im_.set_clim(0, 1)
    ax.set(xlabel="predicted", ylabel="true")
    ax.tick_params(labelsize=8)
    for text in display.text_.ravel():
        text.set_fontsize(7)
    ax.set_title(f"{title}\naccuracy {report['accuracy']:.3f}, macro F1 {report['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curve_png(history: Sequence[Mapping[str, float]], path: Path, title: str) -> Path:
    """Loss and accuracy per epoch, training vs validation."""
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in ((left, "loss"), (right, "accuracy")):
        ax.plot(epochs, [h[key] for h in history], marker="o", label=f"train {key}")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], marker="o", label=f"validation {key}")
        ax.set(xlabel="epoch", ylabel=key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def per_class_table(report: Mapping[str, Any]) -> str:
    """The per-class report as a fixed-width text table."""
    lines = [f"{'class':<18} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    for c in report["per_class"]:
        lines.append(
            f"{c['class_name']:<18} {c['precision']:9.3f} {c['recall']:7.3f} {c['f1']:6.3f} {c['support']:8d}"
        )
    lines.append(
        f"{'macro':<18} {report['macro_precision']:9.3f} {report['macro_recall']:7.3f} "
        f"{report['macro_f1']:6.3f} {report['num_samples']:8d}"
    )
    lines.append(f"accuracy {report['accuracy']:.4f}")
    return "\n".join(lines) + "\n"
