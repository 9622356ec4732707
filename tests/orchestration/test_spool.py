"""The MLflow spool: a journal that survives the driver, and a writer that waits out a real
``mlflow server`` being killed and started again, storing every write exactly once."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from benchmarks.fault_scenarios import MlflowServer, wait_for
from orchestration.spool import JOURNAL, Spool, TrackingWriter
from orchestration.tracking import TAG_KIND, SweepTracker
from orchestration.tracking_ops import apply_unit, fold_args, spool_files

PARAMS = {"learning_rate": 1e-3, "dropout1": 0.0}
FOLD = {"config_id": "c1", "fold": 1}


def test_the_journal_keeps_what_is_not_stored_across_a_restart(tmp_path):
    spool = Spool(tmp_path / "spool", {"tracking_uri": "http://u:secret@host:5000", "experiment": "e", "sweep_id": "s"})
    first = spool.add("epoch", {"n": 1}, time_ms=10)
    second = spool.add("epoch", {"n": 2})
    spool.mark_done(first.seq)
    spool.mark_failed(second.seq, "boom")
    third = spool.add("finish", {"n": 3})
    with (tmp_path / "spool" / JOURNAL).open("a") as fh:
        fh.write('{"done": ')  # a kill in the middle of an append
    again = Spool(tmp_path / "spool")
    assert [(u.seq, u.args["n"]) for u in again.pending()] == [(second.seq, 2), (third.seq, 3)]
    assert again.failed == {second.seq: "boom"} and again.pending()[0].time_ms > 0
    assert "secret" not in (tmp_path / "spool" / "meta.json").read_text()  # no credentials on disk
    assert again.meta["sweep_id"] == "s"


def _epoch(n: int) -> dict:
    return {**fold_args(FOLD), "result": {"epoch": n, "loss": 1.0 / n, "val_accuracy": 0.1 * n}}


@pytest.fixture
def fail_fast(monkeypatch):
    """As the sweep sets it (orchestration.spool.fail_fast_http), for this test only."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


@pytest.mark.slow
def test_the_writer_waits_out_a_killed_server_and_stores_everything_once(tmp_path, fail_fast):
    server = MlflowServer(tmp_path / "server").start()
    try:
        tracker = SweepTracker(server.uri, "exp", "s1")
        tracker.start_sweep({"sweep": {"folds": [1]}}, {})
        spool = Spool(tmp_path / "spool", {"tracking_uri": server.uri, "experiment": "exp", "sweep_id": "s1"})
        writer = TrackingWriter(spool, server.uri, lambda unit: apply_unit(tracker, unit), spool_files,
                                first_backoff_s=0.2, max_backoff_s=2.0)
        writer.submit("fold_start", fold_args(FOLD, PARAMS, "lr=0.001", ("learning_rate",)))
        writer.submit("epoch", _epoch(1))
        assert writer.drain(600)

        server.kill()
        writer.submit("epoch", _epoch(2))
        final = {"final": 1, "test_accuracy": 0.75, "epoch": 2}
        writer.submit("finish", {**fold_args(FOLD, PARAMS, "lr=0.001", ("learning_rate",)), "result": final,
                                 "folds_total": 1, "checkpoint": None})
        wait_for("the writer to see the outage", lambda: writer.down_since is not None, 600)
        assert len(spool.pending()) == 2  # both writes wait, in order, on disk

        server.start()
        assert writer.drain(600)
        report = writer.close(0)
        assert report.pending == 0 and len(report.outages) == 1 and report.outages[0][1] is not None
        assert "unreachable 1 time(s)" in report.lines(server.uri)[0]

        client = MlflowClient(server.uri)
        (run,) = client.search_runs([tracker.experiment_id], f"tags.`{TAG_KIND}` = 'fold'")
        assert run.info.status == "FINISHED" and run.data.metrics["test_accuracy"] == 0.75
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss")) == [1, 2]
        (config,) = client.search_runs([tracker.experiment_id], f"tags.`{TAG_KIND}` = 'config'")
        assert config.info.status == "FINISHED" and config.data.metrics["cv_accuracy_mean"] == 0.75
    finally:
        server.kill()


@pytest.mark.slow
def test_a_server_that_never_comes_back_leaves_a_replayable_spool(tmp_path, fail_fast):
    from orchestration.replay import main

    server = MlflowServer(tmp_path / "server").start()
    tracker = SweepTracker(server.uri, "exp", "s1")
    tracker.start_sweep({}, {})
    spool = Spool(tmp_path / "spool", {"tracking_uri": server.uri, "experiment": "exp", "sweep_id": "s1"})
    writer = TrackingWriter(spool, server.uri, lambda unit: apply_unit(tracker, unit), first_backoff_s=0.2)
    server.kill()
    writer.submit("fold_start", fold_args(FOLD, PARAMS, "x", ()))
    writer.submit("epoch", _epoch(1))
    report = writer.close(grace_s=1.0)
    assert report.pending == 2
    text = "\n".join(report.lines(server.uri))
    assert "did not come back" in text and f"python -m orchestration.replay {spool.folder}" in text

    server.start()
    try:
        assert main([str(spool.folder)]) == 0  # the sweep's own URI, from the spool
        assert main([str(spool.folder)]) == 0  # again: nothing left, nothing written twice
        client = MlflowClient(server.uri)
        (run,) = client.search_runs([tracker.experiment_id], f"tags.`{TAG_KIND}` = 'fold'")
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1]
        done = [json.loads(line) for line in (spool.folder / JOURNAL).read_text().splitlines()]
        assert sum("done" in d for d in done) == 2
    finally:
        server.kill()
