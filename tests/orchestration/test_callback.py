"""The driver's MLflow callback on hand-made trials, against a sqlite store (no Ray cluster):
what each Tune event writes to MLflow, and what survives Tune pickling the callback."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from orchestration.callback import MLflowSweepCallback
from orchestration.tracking import TAG_CONFIG, TAG_FOLD, TAG_KIND, TAG_SWEEP

PARAMS = {"learning_rate": 1e-3}


def _label(params) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _callback(store: str) -> MLflowSweepCallback:
    spool = store.removeprefix("sqlite:///").replace("mlflow.db", "spool")
    return MLflowSweepCallback(
        tracking_uri=store, experiment="exp", sweep_id="s1", folds_total=2,
        fold_params=dict, config_label=_label, searched=("learning_rate",),
        storage_path="/nonexistent", spool_dir=spool, log_models=False,
    )


def _trial(fold: int, status: str = "RUNNING", **last_result) -> SimpleNamespace:
    return SimpleNamespace(trial_id=f"t{fold}", status=status, error_file="/tmp/error.txt",
                           config={"config_id": "c1", "fold": fold, "params": PARAMS}, last_result=last_result)


def _runs(store: str, kind: str):
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("exp")
    if exp is None:  # nothing was ever written
        return []
    return client.search_runs([exp.experiment_id], f"tags.`{TAG_SWEEP}` = 's1' and tags.`{TAG_KIND}` = '{kind}'")


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path}/mlflow.db"


def test_trial_events_become_the_fold_run_and_the_configuration_metrics(store):
    callback = _callback(store)
    trial = _trial(1)
    callback.on_trial_start(0, [trial], trial)
    callback.on_trial_result(0, [trial], trial, {"epoch": 1, "loss": 2.0, "accuracy": 0.3})
    callback.on_trial_result(0, [trial], trial, {"epoch": 1, "loss": 9.0, "final": 1})  # not a new step
    trial.last_result = {"final": 1, "test_accuracy": 0.8, "epochs_trained": 1}
    callback.on_trial_complete(0, [trial], trial)
    failed = _trial(2)
    callback.on_trial_start(0, [trial, failed], failed)
    callback.on_trial_error(0, [trial, failed], failed)
    callback.on_experiment_end([trial, failed])
    assert callback.flush()
    assert not callback.writer.spool.pending()  # every unit stored
    folds = {int(r.data.tags[TAG_FOLD]): r for r in _runs(store, "fold")}
    assert folds[1].info.status == "FINISHED" and folds[1].data.metrics["test_accuracy"] == 0.8
    history = MlflowClient(store).get_metric_history(folds[1].info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.0)]
    assert folds[2].info.status == "FAILED" and "/tmp/error.txt" in folds[2].data.tags["us8k.error"]
    (config,) = _runs(store, "config")
    assert config.data.tags[TAG_CONFIG] == "c1" and config.data.params["learning_rate"] == "0.001"
    assert config.data.metrics["cv_accuracy_mean"] == 0.8 and config.data.metrics["folds_completed"] == 1


def test_a_pair_reused_from_mlflow_is_not_written_again(store):
    callback = _callback(store)
    trial = _trial(1, final=1, reused=1, test_accuracy=0.5)
    callback.on_trial_complete(0, [trial], trial)
    callback.flush()
    assert not _runs(store, "fold")


def test_after_a_restore_it_logs_what_tune_finished_and_mlflow_missed(store):
    first = _callback(store)
    assert first.writer.spool.folder.exists()  # a live client and writer thread: not pickled
    restored = pickle.loads(pickle.dumps(first))
    assert restored._writer is None
    assert restored.writer is first.writer  # found again in this process, not a second one
    done = _trial(1, status="TERMINATED", final=1, test_accuracy=0.6)
    running = _trial(2, status="RUNNING", epoch=1)
    restored.on_step_begin(0, [done, running])
    restored.on_step_begin(1, [done, running])  # once per restore, not per step
    assert restored.flush()
    (fold,) = _runs(store, "fold")
    assert int(fold.data.tags[TAG_FOLD]) == 1 and fold.info.status == "FINISHED"
    assert fold.data.metrics["test_accuracy"] == 0.6
