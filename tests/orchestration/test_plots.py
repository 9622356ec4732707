"""Fold-run figures: real PNG files drawn from a classification report and a history."""

from __future__ import annotations

from model.metrics import classification_report
from orchestration.plots import confusion_matrix_png, learning_curve_png, per_class_table

PNG = b"\x89PNG\r\n\x1a\n"


def test_confusion_matrix_and_learning_curve_are_pngs(tmp_path):
    report = classification_report([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3, ["a", "b", "c"])
    for normalize in (True, False):
        path = confusion_matrix_png(report, tmp_path / f"cm-{normalize}.png", "c1 fold 1", normalize=normalize)
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000
    history = [{"epoch": e, "loss": 1 / e, "val_loss": 1.2 / e, "accuracy": e / 4, "val_accuracy": e / 5} for e in (1, 2, 3)]
    curve = learning_curve_png(history, tmp_path / "curve.png", "c1 fold 1")
    assert curve.read_bytes()[:8] == PNG


def test_per_class_table_lists_every_class_and_the_accuracy():
    report = classification_report([0, 1, 1], [0, 1, 0], 2, ["dog", "siren"])
    table = per_class_table(report)
    assert table.splitlines()[1].startswith("dog") and table.splitlines()[2].startswith("siren")
    assert "accuracy 0.6667" in table
