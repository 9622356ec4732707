"""The test-fold classification report: scikit-learn's metrics as a plain, JSON-ready dict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    num_classes: int,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, per-class scores and the confusion matrix.

    All ``num_classes`` classes count, absent ones scoring 0 (``labels=range(num_classes)``,
    ``zero_division=0``), so reports of different folds have the same shape. Labels outside
    ``0..num_classes-1`` are an error (scikit-learn would silently drop them).
    """
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"classification_report: {len(class_names)} class names for {num_classes} classes")
    y_true = _as_labels("y_true", y_true, num_classes)
    y_pred = _as_labels("y_pred", y_pred, num_classes)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"classification_report: y_true has {len(y_true)} rows, y_pred has {len(y_pred)}")
    labels = list(range(num_classes))
    names = list(class_names) if class_names is not None else [str(i) for i in labels]
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "num_samples": len(y_true),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": [
            {
                "class_id": i,
                "class_name": names[i],
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in labels
        ],
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def _as_labels(name: str, values: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be integer class indices, got dtype {arr.dtype}")
    bad = arr[(arr < 0) | (arr >= num_classes)]
    if bad.size:
        raise ValueError(f"{name} must be in 0..{num_classes - 1}, found e.g. {bad[:3].tolist()}")
    return arr.astype(np.int64)
