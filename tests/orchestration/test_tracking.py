"""The MLflow run tree against a sqlite store (no server, no Ray): find-or-create on resume,
epochs logged once, CV metrics recomputed from the fold runs, and a fold run marked FINISHED
exactly once, after everything about it is written."""

from __future__ import annotations

import json
import os
import statistics

import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from orchestration.tracking import TAG_KIND, SweepTracker, find_or_create_experiment, flatten

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

PARAMS = {"learning_rate": 1e-3, "filters": [32, 32, 64, 64], "train": {"epochs": 2}}


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path}/mlflow.db"


def _tracker(store: str, sweep: str = "s1") -> SweepTracker:
    tracker = SweepTracker(store, "exp", sweep)
    tracker.start_sweep({"sweep": {"folds": [1, 2]}}, {"us8k.dataset_fingerprint": "abc"})
    return tracker


def _report(accuracy: float) -> dict:
    return {
        "test": {"accuracy": accuracy, "macro_f1": accuracy, "num_samples": 2, "macro_precision": 0.5,
                 "macro_recall": 0.5, "confusion_matrix": [[1, 0], [0, 1]],
                 "per_class": [{"class_id": i, "class_name": n, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
                               for i, n in enumerate(["a", "b"])]},
        "history": [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4}],
    }


def test_a_second_tracker_of_the_same_sweep_finds_the_same_runs(store):
    first = _tracker(store)
    cfg = first.config_run("c1", "lr=0.001", PARAMS, ["learning_rate"])
    fold = first.fold_run("c1", 1, PARAMS)
    again = _tracker(store)
    assert again.sweep_run_id == first.sweep_run_id
    assert again.config_run("c1", "lr=0.001", PARAMS, ["learning_rate"]) == cfg
    assert again.fold_run("c1", 1, PARAMS) == fold
    other_sweep = _tracker(store, "s2")
    assert other_sweep.sweep_run_id != first.sweep_run_id  # runs are found by sweep id only
    run = MlflowClient(store).get_run(fold)
    assert run.data.tags["mlflow.parentRunId"] == cfg and run.data.tags[TAG_KIND] == "fold"
    assert run.data.params["filters"] == "[32, 32, 64, 64]" and run.data.params["train.epochs"] == "2"


def test_epochs_are_logged_once_even_after_a_resume(store):
    tracker = _tracker(store)
    tracker.config_run("c1", "x", PARAMS, [])
    run = tracker.fold_run("c1", 1, PARAMS)
    for epoch in (1, 2):
        tracker.log_epoch(run, {"epoch": epoch, "loss": 1.0 / epoch, "val_loss": float("nan")})
    resumed = _tracker(store)  # the driver died; a new one continues the same run
    resumed.config_run("c1", "x", PARAMS, [])
    resumed.fold_run("c1", 1, PARAMS)
    for epoch in (2, 3):  # epoch 2 again: the attempt resumed from an epoch-1 checkpoint
        resumed.log_epoch(run, {"epoch": epoch, "loss": 1.0 / epoch})
    history = MlflowClient(store).get_metric_history(run, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert not MlflowClient(store).get_metric_history(run, "val_loss")  # NaN is not logged


def test_configuration_metrics_are_recomputed_from_finished_folds(store):
    tracker = _tracker(store)
    tracker.config_run("c1", "x", PARAMS, [])
    for fold, accuracy in ((1, 0.5), (2, 0.75)):
        run = tracker.fold_run("c1", fold, PARAMS)
        tracker.finish_fold(run, {"test_accuracy": accuracy, "epochs_trained": 2}, None, None, f"fold {fold}")
    tracker.fail_fold(tracker.fold_run("c1", 3, PARAMS), "trial failed")
    assert tracker.update_config("c1", folds_total=3) == {1: 0.5, 2: 0.75}
    config_run = MlflowClient(store).get_run(tracker._config_runs["c1"])
    metrics = config_run.data.metrics
    assert metrics["cv_accuracy_mean"] == pytest.approx(0.625)
    assert metrics["cv_accuracy_std"] == pytest.approx(statistics.pstdev([0.5, 0.75]))
    assert metrics["folds_completed"] == 2 and config_run.info.status == "RUNNING"  # 2 of 3


def test_a_fold_run_is_finished_once_after_its_model_is_written(store, tmp_path, monkeypatch):
    import tf_keras as keras

    model = keras.Sequential([keras.Input((4, 3, 1)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    model.save(checkpoint / "model.keras")
    tracker = _tracker(store)
    tracker.config_run("c1", "x", PARAMS, [])
    run = tracker.fold_run("c1", 1, PARAMS)
    client = MlflowClient(store)
    seen = []
    terminate = tracker.client.set_terminated

    def record(run_id, status=None, end_time=None):
        seen.append((client.get_run(run_id).info.status, status))
        return terminate(run_id, status, end_time)

    monkeypatch.setattr(tracker.client, "set_terminated", record)
    tracker.finish_fold(run, {"test_accuracy": 1.0}, _report(1.0), checkpoint, "c1 fold 1")
    # One termination, and the run was still RUNNING when it came: nothing marked it
    # finished while its artifacts and model were being written.
    assert seen == [("RUNNING", "FINISHED")]
    finished = client.get_run(run)
    assert finished.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(run)}
    assert {"confusion_matrix.png", "learning_curve.png", "test_report.json", "per_class_report.txt"} <= artifacts
    (logged,) = client.search_logged_models(experiment_ids=[tracker.experiment_id])
    assert logged.source_run_id == run
    assert json.loads(client.download_artifacts(run, "test_report.json", str(tmp_path)) and
                      (tmp_path / "test_report.json").read_text())["accuracy"] == 1.0
    # A resumed driver finds it finished and leaves it alone.
    again = _tracker(store)
    again.config_run("c1", "x", PARAMS, [])
    assert again.fold_run("c1", 1, PARAMS) == run
    assert client.get_run(run).info.end_time == finished.info.end_time
    probabilities = np.asarray(keras.models.load_model(checkpoint / "model.keras").predict(np.zeros((1, 4, 3, 1)), verbose=0))
    assert probabilities.shape == (1, 2)


def test_flatten_nests_sections_with_dots():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": {}}) == {"a.b": 1, "a.c.d": 2, "e": {}}


def test_the_experiment_opens_on_its_runs_and_fold_runs_name_their_datasets(store):
    tracker = _tracker(store)
    assert MlflowClient(store).get_experiment(tracker.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    tracker.feature_keys = {1: "k1", 2: "k2", 3: "k3"}
    tracker.config_run("c1", "x", PARAMS, [])
    run = MlflowClient(store).get_run(tracker.fold_run("c1", 2, PARAMS))
    by_context = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert set(by_context) == {"training", "validation", "test"}
    assert by_context["test"].digest == "k2" and by_context["test"].name == "us8k-features fold 2"
    assert by_context["training"].name == "us8k-features folds 1,3"


class _LosesTheRace(MlflowClient):
    """A client whose experiment lookup is followed at once by another sweep creating that
    experiment (the interleaving of two sweeps started together; both stores are real)."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.uri = uri
        self.other_ids: list[str] = []

    def get_experiment_by_name(self, name):
        found = super().get_experiment_by_name(name)
        if found is None and not self.other_ids:
            self.other_ids.append(MlflowClient(self.uri).create_experiment(name))
        return found


def test_two_sweeps_creating_the_experiment_at_once_share_it(store):
    client = _LosesTheRace(store)
    experiment = find_or_create_experiment(client, "exp")
    assert client.other_ids == [experiment.experiment_id]  # the other sweep's, found again by name
    assert [e.name for e in MlflowClient(store).search_experiments()].count("exp") == 1
    with pytest.raises(MlflowException) as raised:  # what the tracker used to die of
        MlflowClient(store).create_experiment("exp")
    assert raised.value.error_code == "RESOURCE_ALREADY_EXISTS"


def _snapshot(client: MlflowClient, run_id: str) -> dict:
    run = client.get_run(run_id)
    history = {k: sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, k)) for k in run.data.metrics}
    return {"status": run.info.status, "end_time": run.info.end_time, "params": run.data.params,
            "tags": run.data.tags, "history": history}


def test_a_finished_fold_run_is_never_written_again(store):
    """Issue #15 §0: whatever a resumed driver (or a replayed spool) does with a pair whose run
    is FINISHED, nothing of that run changes, end time included."""
    tracker = _tracker(store)
    tracker.config_run("c1", "x", PARAMS, [])
    run = tracker.fold_run("c1", 1, PARAMS)
    tracker.log_epoch(run, {"epoch": 1, "loss": 1.0}, time_ms=1000)
    tracker.finish_fold(run, {"test_accuracy": 0.5}, None, None, "c1 fold 1", time_ms=2000)
    client = MlflowClient(store)
    before = _snapshot(client, run)
    assert before["status"] == "FINISHED" and before["history"]["test_accuracy"] == [(0, 2000, 0.5)]

    resumed = _tracker(store)
    resumed.config_run("c1", "x", {**PARAMS, "extra": 1}, ["learning_rate"])
    assert resumed.fold_run("c1", 1, {**PARAMS, "extra": 1}) == run == resumed.fold_run_id("c1", 1)
    resumed.log_epoch(run, {"epoch": 2, "loss": 0.5})
    resumed.finish_fold(run, {"test_accuracy": 0.9}, None, None, "c1 fold 1")
    resumed.fail_fold(run, "a later attempt failed")
    resumed.stop_fold(run, "raced out")
    resumed.update_config("c1", folds_total=1)
    assert _snapshot(client, run) == before


def test_a_finish_cut_short_is_not_finished_and_a_retry_stores_it_once(store, monkeypatch):
    """The tracking server goes away while a fold's report is uploaded: the run is not marked
    FINISHED (it is not complete); the same write retried later completes it, its metrics once."""
    tracker = _tracker(store)
    tracker.config_run("c1", "x", PARAMS, [])
    run = tracker.fold_run("c1", 1, PARAMS)
    upload = tracker.client.log_artifacts

    def server_gone(*args, **kwargs):
        raise ConnectionError("the tracking server went away")

    monkeypatch.setattr(tracker.client, "log_artifacts", server_gone)
    final = {"test_accuracy": 1.0, "epochs_trained": 1}
    with pytest.raises(ConnectionError):
        tracker.finish_fold(run, final, _report(1.0), None, "c1 fold 1", time_ms=5000)
    client = MlflowClient(store)
    assert client.get_run(run).info.status == "RUNNING"
    monkeypatch.setattr(tracker.client, "log_artifacts", upload)
    again = _tracker(store)  # the retry may come from another driver, or a replay
    again.config_run("c1", "x", PARAMS, [])
    again.fold_run("c1", 1, PARAMS)
    again.finish_fold(run, final, _report(1.0), None, "c1 fold 1", time_ms=5000)
    finished = client.get_run(run)
    assert finished.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(run, "test_accuracy")] == [(0, 1.0)]
    assert "test_report.json" in {a.path for a in client.list_artifacts(run)}


def test_a_create_that_died_halfway_is_completed_not_duplicated(store, monkeypatch):
    """The run was created but its params were not logged (the server went away in between):
    the retried create finds that run by its tags and logs what it lacks."""
    tracker = _tracker(store)
    log_batch = tracker.client.log_batch
    calls = []

    def fail_first_params(run_id, metrics=(), params=(), tags=()):
        if params and not calls:
            calls.append(run_id)
            raise ConnectionError("the tracking server went away")
        return log_batch(run_id, metrics=metrics, params=params, tags=tags)

    monkeypatch.setattr(tracker.client, "log_batch", fail_first_params)
    with pytest.raises(ConnectionError):
        tracker.config_run("c1", "x", PARAMS, ["learning_rate"])
    run = tracker.config_run("c1", "x", PARAMS, ["learning_rate"])
    assert calls == [run]
    client = MlflowClient(store)
    (only,) = client.search_runs([tracker.experiment_id], f"tags.`{TAG_KIND}` = 'config'")
    assert only.info.run_id == run and only.data.params["learning_rate"] == "0.001"
    assert only.data.tags["us8k.searched"] == "learning_rate"
