"""The classification report: hand-worked cases, absent classes, label checks, JSON."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from model.metrics import classification_report


def test_hand_worked_three_class_case():
    # true 0,0,1,1,2 / predicted 0,1,1,1,0:
    # class 0: tp 1, predicted 2, actual 2 -> P 1/2, R 1/2, F1 1/2
    # class 1: tp 2, predicted 3, actual 2 -> P 2/3, R 1,   F1 2*(2/3)/(5/3) = 4/5
    # class 2: tp 0, predicted 0, actual 1 -> P 0 (0/0),  R 0, F1 0
    report = classification_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], 3, ["a", "b", "c"])
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report["accuracy"] == pytest.approx(3 / 5)
    per_class = report["per_class"]
    assert [c["precision"] for c in per_class] == pytest.approx([1 / 2, 2 / 3, 0.0])
    assert [c["recall"] for c in per_class] == pytest.approx([1 / 2, 1.0, 0.0])
    assert [c["f1"] for c in per_class] == pytest.approx([1 / 2, 4 / 5, 0.0])
    assert [c["support"] for c in per_class] == [2, 2, 1]
    assert [c["class_name"] for c in per_class] == ["a", "b", "c"]
    assert report["macro_f1"] == pytest.approx((1 / 2 + 4 / 5) / 3)
    assert report["macro_precision"] == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert report["num_samples"] == 5


def test_absent_class_scores_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = classification_report(np.array([0, 0]), np.array([0, 0]), 3)
    assert [c["precision"] for c in report["per_class"]] == [1.0, 0.0, 0.0]
    assert [c["f1"] for c in report["per_class"]] == [1.0, 0.0, 0.0]
    assert report["macro_f1"] == pytest.approx(1 / 3)


def test_perfect_prediction():
    y = np.arange(10).repeat(3)
    report = classification_report(y, y, 10)
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    assert np.array_equal(np.array(report["confusion_matrix"]), 3 * np.eye(10, dtype=int))


def test_report_is_plain_json():
    report = classification_report(np.array([0, 1, 1]), np.array([0, 1, 0]), 2)
    assert json.loads(json.dumps(report)) == report


def test_bad_labels_are_rejected():
    with pytest.raises(ValueError, match=r"y_pred must be in 0\.\.2"):
        classification_report(np.array([0, 1]), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="integer class indices"):
        classification_report(np.array([0.0, 1.0]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="2 rows"):
        classification_report(np.array([0, 1]), np.array([0, 1, 1]), 3)
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        classification_report(np.array([0]), np.array([0]), 3, ["a", "b"])
