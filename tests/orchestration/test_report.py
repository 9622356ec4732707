"""The sweep report, built from a real sqlite MLflow store that the project's own SweepTracker
filled in the sweep's shape (sweep -> configuration -> fold runs with epochs, test reports,
hardware and wall time): its tables agree with numbers computed here from the raw predictions,
every figure is an embedded PNG that decodes, and the files are logged to the sweep run."""

from __future__ import annotations

import base64
import io
import re
import statistics
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from features.us8k import CLASS_NAMES
from model.hardware import hardware_label
from model.metrics import classification_report
from orchestration.compare import compare
from orchestration.report import main
from orchestration.results import verdict
from orchestration.sweep_runner import _sweep_report
from orchestration.tracking import TAG_HARDWARE, SweepTracker

FOLDS = (1, 2)
CPU = {"cpu_model": "AMD EPYC 7B13", "cpus_per_worker": 2, "gpu_model": "", "gpus_per_worker": 0, "workers": 1}
GPU = {"cpu_model": "Intel Xeon", "cpus_per_worker": 4, "gpu_model": "Tesla T4", "gpus_per_worker": 1, "workers": 1}
# configuration -> (learning rate, share of correct predictions, hardware, seconds per epoch)
CONFIGS = {"c1": (1e-3, 0.9, CPU, 6.0), "c2": (1e-2, 0.6, GPU, 0.5), "c3": (1e-4, 0.3, CPU, 8.0)}
FIGURES = {"accuracy_heatmap.png", "per_class_f1.png", "confusion_counts.png", "confusion_normalised.png",
           "learning_curves.png"}


def _fold(tracker: SweepTracker, rng, cfg: str, fold: int, truth: dict) -> tuple[float, float, float]:
    lr, skill, hardware, per_epoch = CONFIGS[cfg]
    params = {"learning_rate": lr, "epochs": 3, "filters": [8, 8, 16, 16]}
    run = tracker.fold_run(cfg, fold, params)
    history = [{"epoch": e, "loss": 2.0 / e, "accuracy": skill * e / 3, "val_loss": 2.2 / e,
                "val_accuracy": skill * e / 3 - 0.05, "epoch_seconds": per_epoch + 0.1 * e} for e in (1, 2, 3)]
    for h in history:
        tracker.log_epoch(run, h)
    y_true = rng.integers(0, len(CLASS_NAMES), 150)
    y_pred = np.where(rng.random(150) < skill, y_true, rng.integers(0, len(CLASS_NAMES), 150))
    truth.setdefault(cfg, []).append((y_true, y_pred))
    test = classification_report(y_true, y_pred, len(CLASS_NAMES), CLASS_NAMES)
    seconds_per_epoch = statistics.fmean(h["epoch_seconds"] for h in history)
    wall = 3 * seconds_per_epoch + 4.0 + fold
    final = {"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"], "epochs_trained": 3,
             "seconds_per_epoch": seconds_per_epoch, "time_total_s": wall, "loop_seconds": wall - 1}
    tracker.finish_fold(run, final, {"test": test, "history": history, "hardware": hardware}, None, f"{cfg} fold {fold}")
    return test["accuracy"], seconds_per_epoch, wall


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A finished 3-configuration x 3-fold sweep written by SweepTracker; what was written."""
    tmp = tmp_path_factory.mktemp("report")
    store = f"sqlite:///{tmp}/mlflow.db"
    rng = np.random.default_rng(0)
    tracker = SweepTracker(store, "exp", "s1")
    tracker.start_sweep({"sweep": {"folds": list(FOLDS)}}, {"us8k.dataset_fingerprint": "abc", "us8k.clips": "450"})
    accuracy, timing, truth = {}, {}, {}
    for cfg, (lr, *_rest) in CONFIGS.items():
        tracker.config_run(cfg, f"learning_rate={lr}", {"learning_rate": lr, "epochs": 3, "filters": [8, 8, 16, 16]},
                           ["learning_rate"])
        for fold in FOLDS:
            accuracy.setdefault(cfg, {})[fold], *timing[(cfg, fold)] = _fold(tracker, rng, cfg, fold, truth)
        tracker.update_config(cfg, len(FOLDS))
    tracker.finish_sweep("FINISHED", {"wall_seconds": 321.0, "scheduling_ratio": 1.2})
    return {"store": store, "tmp": tmp, "tracker": tracker, "accuracy": accuracy, "timing": timing, "truth": truth}


@pytest.fixture(scope="module")
def built(sweep):
    out = sweep["tmp"] / "out"
    assert main(["--sweep", "s1", "--tracking-uri", sweep["store"], "--out", str(out)]) == 0
    return out, (out / "report.html").read_text(), (out / "report.md").read_text()


def _md_rows(markdown: str, first_header: str) -> list[list[str]]:
    """The body rows of the markdown table whose first header is ``first_header``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_the_ranked_table_and_comparisons_agree_with_the_fold_accuracies(sweep, built):
    _, page, markdown = built
    acc = sweep["accuracy"]
    order = sorted(acc, key=lambda c: -statistics.fmean(acc[c].values()))
    assert order == ["c1", "c2", "c3"]  # the skills differ enough for the ranking to be certain
    rows = _md_rows(markdown, "rank")
    assert [r[1] for r in rows] == order and [r[0] for r in rows] == ["1", "2", "3"]
    for row, cfg in zip(rows, order, strict=True):
        values = list(acc[cfg].values())
        assert row[2] == f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}"
        assert row[4:4 + len(FOLDS)] == [f"{acc[cfg][f]:.3f}" for f in FOLDS]
        assert row[-1] == f"learning_rate={CONFIGS[cfg][0]}"
    versus = 4 + len(FOLDS)
    assert rows[0][versus] == "best"
    for row in rows[1:]:
        assert row[versus] == verdict(compare(acc["c1"], acc[row[1]]))  # the paired comparison with the best
    assert "Ranked configurations" in page and "not distinguishable from the best" in page


def test_every_figure_is_an_embedded_png_that_decodes(built):
    out, page, markdown = built
    embedded = dict(re.findall(r'data-figure="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page))
    assert set(embedded) == FIGURES
    for name, data in embedded.items():
        image = plt.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200, name
        assert image.std() > 0.01, name  # something is drawn
        assert f"figures/{name})" in markdown and (out / "figures" / name).read_bytes() == base64.b64decode(data)
    assert "<img" in page and 'src="figures/' not in page  # self-contained: no file references


def test_per_class_f1_pools_each_configurations_test_predictions(sweep, built):
    _, _, markdown = built
    rows = {r[0]: r for r in _md_rows(markdown, "configuration")}
    for cfg, pairs in sweep["truth"].items():
        y_true = np.concatenate([t for t, _ in pairs])
        y_pred = np.concatenate([p for _, p in pairs])
        expected = classification_report(y_true, y_pred, len(CLASS_NAMES), CLASS_NAMES)
        assert rows[cfg][1] == f"{expected['macro_f1']:.3f}" and rows[cfg][2] == str(len(FOLDS))
        assert rows[cfg][3:] == [f"{c['f1']:.3f}" for c in expected["per_class"]]


def test_time_to_solution_groups_fold_runs_by_hardware(sweep, built):
    _, page, markdown = built
    rows = _md_rows(markdown, "hardware")
    cpu, gpu = hardware_label(CPU), hardware_label(GPU)
    assert (cpu, gpu) == ("CPU (AMD EPYC 7B13, 2 cores)", "1xGPU (Tesla T4)")
    assert [r[0] for r in rows] == [cpu, gpu]  # CPU rows first, then GPUs
    for row, configs in ((rows[0], ("c1", "c3")), (rows[1], ("c2",))):
        timing = [sweep["timing"][(c, f)] for c in configs for f in FOLDS]
        assert row[1:4] == ["1", str(len(timing)), "3.0"]
        assert row[4] == f"{statistics.fmean(t[0] for t in timing):.2f}"
        assert row[5] == f"{statistics.fmean(t[1] for t in timing):.1f}"
        assert row[6] == f"{sum(t[1] for t in timing):.0f}"
    assert "Time to solution" in page and f"<td>{gpu}</td>" in page


def test_fold_runs_carry_hardware_and_wall_time_and_the_report_is_logged(sweep, built):
    client = MlflowClient(sweep["store"])
    tracker = sweep["tracker"]
    fold_run = client.get_run(tracker.fold_run("c2", 2, {}))
    assert fold_run.data.tags[TAG_HARDWARE] == hardware_label(GPU)
    assert fold_run.data.tags["us8k.hw.gpu_model"] == "Tesla T4" and fold_run.data.tags["us8k.hw.workers"] == "1"
    assert fold_run.data.metrics["wall_seconds"] == pytest.approx(sweep["timing"][("c2", 2)][1])
    logged = {a.path for a in client.list_artifacts(tracker.sweep_run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/figures"} <= logged
    figures = {Path(a.path).name for a in client.list_artifacts(tracker.sweep_run_id, "report/figures")}
    assert figures == FIGURES


def test_the_sweep_is_found_by_run_id_or_as_the_latest(sweep, tmp_path, capsys):
    tracker = sweep["tracker"]
    by_fold = tmp_path / "by-fold"
    assert main(["--run-id", tracker.fold_run("c1", 1, {}), "--tracking-uri", sweep["store"], "--out", str(by_fold), "--no-log"]) == 0
    assert "report of sweep s1" in capsys.readouterr().out and (by_fold / "report.html").exists()
    latest = tmp_path / "latest"
    assert main(["--tracking-uri", sweep["store"], "--out", str(latest), "--no-log"]) == 0
    assert "Sweep s1" in (latest / "report.html").read_text()


def test_an_unknown_sweep_is_a_clear_error(sweep, tmp_path, capsys):
    assert main(["--sweep", "nope", "--tracking-uri", sweep["store"], "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no sweep named 'nope'" in err and "--tracking-uri" in err
    assert not (tmp_path / "report.html").exists()


def test_a_missing_sqlite_store_is_an_error_not_a_new_database(tmp_path, capsys):
    store = tmp_path / "nowhere" / "mlflow.db"
    assert main(["--tracking-uri", f"sqlite:///{store}", "--out", str(tmp_path / "out")]) == 2
    assert f"no tracking store at {store}" in capsys.readouterr().err
    assert not store.exists() and not (tmp_path / "out").exists()


def test_a_failing_report_warns_and_never_fails_the_sweep(sweep, tmp_path, capsys):
    tracker = SweepTracker(sweep["store"], "exp", "s1")
    tracker.sweep_run_id = "0" * 32  # no such run: gathering fails
    assert _sweep_report(tracker, tmp_path / "report") is None
    err = capsys.readouterr().err
    assert "warning: the sweep report could not be written" in err and "python -m orchestration.report --run-id" in err


def test_raced_out_and_failed_folds_are_shown_for_what_they_are(sweep, tmp_path):
    """A second sweep in the same store: a configuration raced out after one fold, another
    fold failed. Only this sweep's runs are read, and the out one is listed last, unranked."""
    rng = np.random.default_rng(1)
    tracker = SweepTracker(sweep["store"], "exp", "s2")
    tracker.start_sweep({"sweep": {"folds": [1, 2, 3]}}, {})
    accuracy = {}
    for cfg in ("c1", "c3"):
        tracker.config_run(cfg, cfg, {"learning_rate": CONFIGS[cfg][0]}, ["learning_rate"])
        for fold in ((1, 2) if cfg == "c1" else (1,)):
            accuracy[(cfg, fold)] = _fold(tracker, rng, cfg, fold, {})[0]
    tracker.fail_fold(tracker.fold_run("c1", 3, {}), "trial failed; see /tmp/error.txt")
    tracker.update_config("c1", 3)
    tracker.mark_raced_out("c3", {"after_folds": 1, "p_value": 0.03125, "leader": "c1", "folds": [1]})
    tracker.finish_sweep("FAILED", {})
    out = tmp_path / "s2"
    assert main(["--sweep", "s2", "--tracking-uri", sweep["store"], "--out", str(out), "--no-log"]) == 0
    rows = _md_rows((out / "report.md").read_text(), "rank")
    assert [(r[0], r[1], r[3]) for r in rows] == [("1", "c1", "2"), ("out", "c3", "1")]
    assert rows[0][4:7] == [f"{accuracy[('c1', 1)]:.3f}", f"{accuracy[('c1', 2)]:.3f}", "-"]
    assert rows[1][7] == "raced out after 1 fold(s): worse than c1, one-sided p=0.0312"
    assert "(FAILED)" in (out / "report.md").read_text()
