"""The private Tune-session hooks train_fold relies on (pinned to Ray 2.60): a trial process
keeps one TuneReportCallback queue actor across trials, and drain_tune_reports returns once the
final report has reached Tune, which then records it as the trial's last result."""

from __future__ import annotations

import time

import pytest


@pytest.mark.slow
def test_trials_share_one_report_queue_and_keep_their_final_results(ray_local, tmp_path):
    from ray import tune

    # Defined here, so that Ray ships it by value (workers cannot import this test module).
    def _trial(config: dict) -> None:
        from ray.train._internal.session import get_session

        from orchestration.train_fold import drain_tune_reports, reuse_tune_report_queue

        assert reuse_tune_report_queue()
        queue = get_session()._inter_actor_queue  # what TuneReportCallback() would take
        queue.put({"epoch": 1})  # what TuneReportCallback.after_report does, from the controller
        queue.put({"epoch": 2, "final": 1, "i": config["i"], "queue": queue.actor._actor_id.hex()})
        started = time.monotonic()
        drain_tune_reports(timeout_s=20)
        assert time.monotonic() - started < 10  # the final report was seen, no timeout fallback

    tuner = tune.Tuner(
        tune.with_resources(_trial, {"CPU": 0.01}),
        param_space={"i": tune.grid_search([0, 1, 2])},
        tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="queues", verbose=0),
    )
    grid = tuner.fit()
    assert not grid.errors
    finals = sorted((r.metrics["i"], r.metrics["queue"], r.metrics["final"]) for r in grid)
    assert [i for i, _, _ in finals] == [0, 1, 2] and all(final == 1 for *_, final in finals)
    assert len({queue for _, queue, _ in finals}) == 1  # one queue actor for all three trials
    assert all(r.metrics["training_iteration"] == 2 for r in grid)  # both reports reached Tune
