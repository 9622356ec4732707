"""One fold on Ray Train with two CPU workers: learning, rank-0 metrics, final checkpoint,
and recovery from a worker crash (tiny synthetic features, 40 x 44 frames)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from ray import cloudpickle
from ray.train import UserCallback

from features.toy import make_toy_featureset
from model.checkpoints import STATE_FILE, load_model, load_report
from model.config import TrainConfig
from model.data import Normaliser, apply_normaliser, as_model_input
from model.train_loop import ENV_FAIL_AT_EPOCH, ENV_FAIL_MARKER
from orchestration.train_fold import RunSettings, WorkerResources, train_fold

pytestmark = pytest.mark.slow

# The recorder below runs in the Train controller actor, which cannot import this test
# module by name: ship it by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

TEST_FOLD = 3
EPOCHS = 6
# Small, quick-learning settings: 8 per worker x 2 workers, ~15 steps per epoch; BatchNorm
# momentum lowered so inference statistics settle within a few dozen steps.
FAST = TrainConfig(batch_size=8, learning_rate=3e-3, beta_1=0.9, bn_momentum=0.8, seed=0)


class ReportRecorder(UserCallback):
    """Appends every report's per-worker metrics to a JSON-lines file (runs in the controller)."""

    def __init__(self, path: str):
        self.path = path

    def after_report(self, run_context, metrics, checkpoint):
        with open(self.path, "a") as f:
            f.write(json.dumps({"metrics": metrics, "checkpoint": checkpoint is not None}) + "\n")


@pytest.fixture(scope="module")
def features_ref(ray_local):
    return ray_local.put(make_toy_featureset(frames=44))


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_workers_learn_and_ship_a_model(ray_local, features_ref, tmp_path):
    record = tmp_path / "reports.jsonl"
    result = train_fold(
        features_ref,
        TEST_FOLD,
        FAST.replace(epochs=EPOCHS, checkpoint_every=0),
        WorkerResources(workers=2),
        RunSettings(storage_path=str(tmp_path / "runs"), name="learn"),
        callbacks=[ReportRecorder(str(record))],
    )
    assert result.error is None
    metrics = result.metrics
    assert metrics["final"] == 1
    assert metrics["test_accuracy"] > 0.4, metrics  # chance is 0.1

    reports = _records(record)
    epochs = [r for r in reports if "final" not in r["metrics"][0]]
    assert [r["metrics"][0]["epoch"] for r in epochs] == list(range(1, EPOCHS + 1))
    # Both workers saw the same numbers (decisions are made on rank 0's), and the
    # final test metrics exist only on rank 0: the Result's metrics are rank 0's.
    assert all(r["metrics"][0] == r["metrics"][1] for r in epochs)
    final = reports[-1]["metrics"]
    assert "test_accuracy" in final[0] and "test_accuracy" not in final[1]
    assert final[0]["test_accuracy"] == metrics["test_accuracy"]
    losses = [r["metrics"][0]["loss"] for r in epochs]
    assert losses[-1] < 0.7 * losses[0], losses

    with result.checkpoint.as_directory() as directory:
        report = load_report(directory)
        state = json.loads((Path(directory) / STATE_FILE).read_text())
        model = load_model(directory)
        normaliser = Normaliser.from_dict(state["normaliser"])
    fs = make_toy_featureset(frames=44)
    test_rows = np.flatnonzero(fs.folds == TEST_FOLD)
    assert state["split_sizes"]["test"] == len(test_rows)
    assert report["test"]["num_samples"] == len(test_rows)
    assert np.sum(report["test"]["confusion_matrix"]) == len(test_rows)
    assert report["test"]["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert 1 <= report["best_epoch"] <= EPOCHS
    # Two workers: MultiWorkerMirroredStrategy (one worker would train under the default one).
    assert report["runtime"]["strategy"] == "multi_worker_mirrored"
    assert report["runtime"]["intra_op_threads"] == 1  # 1 CPU per worker
    # The shipped model reproduces the reported test accuracy in this process.
    x = as_model_input(apply_normaliser(fs.features[test_rows], normaliser))
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    assert np.mean(predicted == fs.labels[test_rows]) == pytest.approx(report["test"]["accuracy"])


def test_worker_crash_resumes_from_last_checkpoint(ray_local, features_ref, tmp_path):
    marker = tmp_path / "rank1_failed"
    result = train_fold(
        features_ref,
        TEST_FOLD,
        FAST.replace(epochs=4, checkpoint_every=1),
        WorkerResources(workers=2),
        RunSettings(
            storage_path=str(tmp_path / "runs"),
            name="crash",
            max_failures=1,
            worker_env={ENV_FAIL_AT_EPOCH: "3", ENV_FAIL_MARKER: str(marker)},
        ),
    )
    assert marker.exists(), "the failure hook never fired"
    assert result.error is None
    assert result.metrics["resumes"] == 1
    with result.checkpoint.as_directory() as directory:
        report = load_report(directory)
    first_attempt, second_attempt = report["attempt_start_epochs"]
    assert first_attempt == 0
    # Rank 1 died at the start of epoch 3; with a checkpoint every epoch the second
    # attempt resumes after epoch 1 or 2, never from scratch.
    assert 1 <= second_attempt <= 2
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3, 4]
    assert report["epochs_trained"] == 4


def test_local_mode_stops_early_patience_epochs_after_the_best(ray_local, features_ref):
    # num_workers=0: Ray Train's local mode runs the loop in this process (no worker group).
    # A high learning rate makes val_loss noisy, so patience 2 ends the run well before 30.
    patience = 2
    result = train_fold(
        features_ref,
        TEST_FOLD,
        FAST.replace(epochs=30, patience=patience, batch_size=16, learning_rate=3e-2),
        WorkerResources(workers=0),
        RunSettings(name="local"),
    )
    directory = Path(result.checkpoint.path)
    try:
        report = load_report(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert report["stopped_early"]
    history = report["history"]
    best = report["best_epoch"]
    assert report["epochs_trained"] == best + patience < 30
    best_loss = history[best - 1]["val_loss"]
    assert best_loss == min(h["val_loss"] for h in history)
    assert all(h["val_loss"] >= best_loss for h in history[best:])
    assert result.metrics["best_epoch"] == best and result.metrics["final"] == 1


def test_a_stopped_trial_ends_its_train_run_at_the_next_report(ray_local, features_ref, tmp_path):
    """What tune_bridge does when Tune stops a trial: ForwardReports raises in the controller
    at the run's next report, and the run ends there instead of training every epoch."""
    import ray
    from ray.util.queue import Queue

    from orchestration.tune_bridge import ForwardReports

    reports, stop = Queue(), Queue()
    stop.put("stopped")  # as if Tune had already stopped the trial
    with pytest.raises(ray.train.TrainingFailedError, match="its Tune trial was stopped"):
        train_fold(
            features_ref, TEST_FOLD, FAST.replace(epochs=20, checkpoint_every=0), WorkerResources(workers=1),
            RunSettings(storage_path=str(tmp_path / "runs"), name="stopped"),
            callbacks=[ForwardReports(reports, stop, "stopped")],
        )
    epochs = []
    while not reports.empty():
        epochs.append(reports.get_nowait()[1]["epoch"])
    assert epochs == [1]  # the first report went through, then the run ended
