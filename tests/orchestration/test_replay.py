"""python -m orchestration.replay against a sqlite store: a spool whose tracking server never
answered (files copied into it, originals gone) is stored completely, and a second replay
changes nothing."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from mlflow.tracking import MlflowClient

from orchestration.replay import main, replay
from orchestration.spool import Spool, TrackingWriter
from orchestration.tracking import TAG_KIND, SweepTracker
from orchestration.tracking_ops import apply_unit, fold_args, spool_files

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
PARAMS = {"learning_rate": 1e-3}


def _report(accuracy: float) -> dict:
    test = {"accuracy": accuracy, "macro_f1": accuracy, "num_samples": 2, "macro_precision": 0.5, "macro_recall": 0.5,
            "confusion_matrix": [[1, 0], [0, 1]],
            "per_class": [{"class_id": i, "class_name": n, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
                          for i, n in enumerate(["a", "b"])]}
    return {"test": test, "history": [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4}]}


@pytest.fixture
def checkpoint(tmp_path):
    """A final checkpoint as a trial leaves it: the best model and its report."""
    import tf_keras as keras

    folder = tmp_path / "ray" / "trial" / "checkpoint_000001"
    folder.mkdir(parents=True)
    model = keras.Sequential([keras.Input((4, 3, 1)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    model.save(folder / "model.keras")
    (folder / "report.json").write_text(json.dumps(_report(0.5)))
    return folder


def test_a_spool_the_server_never_took_is_replayed_once(tmp_path, checkpoint, monkeypatch, unused_port):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the dead server is refused at once
    dead = f"http://127.0.0.1:{unused_port}"
    spool = Spool(tmp_path / "spool", {"tracking_uri": dead, "experiment": "exp", "sweep_id": "s1"})
    writer = TrackingWriter(spool, dead, lambda unit: apply_unit(SweepTracker(dead, "exp", "s1"), unit), spool_files,
                            first_backoff_s=0.1)
    results = tmp_path / "results"
    results.mkdir()
    (results / "results.json").write_text("{}")
    full = fold_args({"config_id": "c1", "fold": 1}, PARAMS, "lr=0.001", ("learning_rate",))
    writer.submit("fold_start", full)
    for epoch in (1, 2):
        writer.submit("epoch", {**fold_args({"config_id": "c1", "fold": 1}), "result": {"epoch": epoch, "loss": 1.0 / epoch}})
    writer.submit("finish", {**full, "result": {"final": 1, "test_accuracy": 0.5}, "folds_total": 1,
                             "checkpoint": str(checkpoint), "storage_path": str(tmp_path / "ray"), "log_models": True})
    writer.submit("comparison", {"config_id": "c1", "values": None, "words": "the best"})
    writer.submit("finish_sweep", {"status": "FINISHED", "metrics": {"wall_seconds": 12.5},
                                   "files": [str(results / "results.json")]})
    report = writer.close(grace_s=1.0)
    assert report.pending == 6 and report.written == 0
    shutil.rmtree(tmp_path / "ray")  # the sweep's storage is gone: the spool has copies
    shutil.rmtree(results)

    store = f"sqlite:///{tmp_path}/mlflow.db"
    assert replay(str(spool.folder), store) == (6, 0)
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("exp").experiment_id
    (sweep,) = client.search_runs([exp], f"tags.`{TAG_KIND}` = 'sweep'")
    (config,) = client.search_runs([exp], f"tags.`{TAG_KIND}` = 'config'")
    (fold,) = client.search_runs([exp], f"tags.`{TAG_KIND}` = 'fold'")
    assert sweep.info.status == "FINISHED" and sweep.data.metrics["wall_seconds"] == 12.5
    assert "results/results.json" in {a.path for a in client.list_artifacts(sweep.info.run_id, "results")}
    assert config.data.tags["us8k.vs_best"] == "the best" and config.info.status == "FINISHED"
    assert fold.info.status == "FINISHED" and fold.data.metrics["test_accuracy"] == 0.5
    assert fold.data.params["learning_rate"] == "0.001"
    assert sorted(m.step for m in client.get_metric_history(fold.info.run_id, "loss")) == [1, 2]
    (model,) = client.search_logged_models(experiment_ids=[exp])
    assert model.source_run_id == fold.info.run_id and str(model.status) == "READY"
    # Replayed again (say, a second time by hand): nothing left, nothing doubled.
    assert main([str(spool.folder), "--tracking-uri", store]) == 0
    assert len(client.search_runs([exp], "")) == 3 and len(client.search_logged_models(experiment_ids=[exp])) == 1


def test_a_half_written_model_is_replaced_and_a_complete_one_kept(tmp_path, checkpoint):
    from orchestration.mlflow_model import log_keras_model, run_models

    store = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(store)
    exp = client.create_experiment("exp")
    run = client.create_run(exp).info.run_id
    client.create_logged_model(exp, name="model", source_run_id=run)  # an upload the server lost: PENDING
    log_keras_model(client, store, exp, run, checkpoint)
    log_keras_model(client, store, exp, run, checkpoint)  # a retry after it was complete
    (model,) = run_models(client, exp, run)
    assert str(model.status) == "READY"


def test_replay_of_a_folder_that_is_not_a_spool_says_so(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "not an MLflow spool" in capsys.readouterr().err
