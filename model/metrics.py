"""Classification metrics (pure numpy) returning plain, JSON-serialisable dicts and lists."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = clips of true class i predicted as class j."""
    y_true = _as_labels("y_true", y_true, num_classes)
    y_pred = _as_labels("y_pred", y_pred, num_classes)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"confusion_matrix: y_true has {len(y_true)} rows, y_pred has {len(y_pred)}"
        )
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def _as_labels(name: str, values: np.ndarray, num_classes: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if arr.size == 0:
            return arr.astype(np.int64)
        raise ValueError(f"{name} must be integer class indices, got dtype {arr.dtype}")
    bad = arr[(arr < 0) | (arr >= num_classes)]
    if bad.size:
        raise ValueError(f"{name} must be in 0..{num_classes - 1}, found e.g. {bad[:3].tolist()}")
    return arr.astype(np.int64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den with 0 where den == 0 (sklearn's zero_division=0)."""
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix."""
    cm = np.asarray(cm)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def classification_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    num_classes: int,
    class_names: tuple[str, ...] | list[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, per-class scores and the confusion matrix.

    Macro averages run over all ``num_classes`` classes, absent ones scoring 0 (sklearn's
    ``labels=range(num_classes), zero_division=0``).
    """
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"classification_report: {len(class_names)} class names for {num_classes} classes"
        )
    cm = confusion_matrix(y_true, y_pred, num_classes)
    scores = per_class_scores(cm)
    total = int(cm.sum())
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    return {
        "num_samples": total,
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "macro_precision": float(scores["precision"].mean()),
        "macro_recall": float(scores["recall"].mean()),
        "macro_f1": float(scores["f1"].mean()),
        "per_class": [
            {
                "class_id": i,
                "class_name": names[i],
                "precision": float(scores["precision"][i]),
                "recall": float(scores["recall"][i]),
                "f1": float(scores["f1"][i]),
                "support": int(scores["support"][i]),
            }
            for i in range(num_classes)
        ],
        "confusion_matrix": cm.tolist(),
    }
