"""Train reports reach Tune through orchestration.tune_bridge (public APIs only): every report in
order, the final one included, one queue actor per trial process, another run's leftovers
dropped, and an error raised only after what came before it was relayed."""

from __future__ import annotations

import sys

import pytest
from ray import cloudpickle

# Tune's trial processes cannot import this test module by name: ship it by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _trial(config: dict) -> None:
    from orchestration.tune_bridge import fit_with_tune_reports

    def fake_fit(callbacks):
        (forward,) = callbacks
        # What the Train controller does after each worker report (rank 0's metrics).
        forward.after_report(None, [{"epoch": 1, "i": config["i"]}], None)
        forward.queue.put(("an-earlier-run", {"epoch": 99}))  # a failed run's leftover
        final = {"epoch": 2, "final": 1, "i": config["i"], "queue": forward.queue.actor._actor_id.hex()}
        forward.after_report(None, [final], SimpleCheckpoint())
        if config.get("fail"):
            raise RuntimeError("the Train run failed after two reports")
        return "result"

    class SimpleCheckpoint:
        path = "/storage/checkpoint_000001"

    assert fit_with_tune_reports(fake_fit, f"run-{config['i']}") == "result"


@pytest.mark.slow
def test_every_report_reaches_tune_in_order_through_one_queue(ray_local, tmp_path):
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(_trial, {"CPU": 0.01}),
        param_space={"i": tune.grid_search([0, 1, 2])},
        tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="bridge", verbose=0),
    )
    grid = tuner.fit()
    assert not grid.errors
    for result in grid:
        history = result.metrics_dataframe
        assert history["epoch"].tolist() == [1, 2]  # the leftover (epoch 99) was dropped
        assert result.metrics["final"] == 1 and result.metrics["i"] == result.config["i"]
        assert result.metrics["checkpoint_path"] == "/storage/checkpoint_000001"
    assert len({r.metrics["queue"] for r in grid}) == 1  # one queue actor for all three trials


@pytest.mark.slow
def test_a_failed_fit_raises_after_its_reports_are_relayed(ray_local, tmp_path):
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(_trial, {"CPU": 0.01}),
        param_space={"i": 0, "fail": True},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="bridge-fail", verbose=0),
    )
    (result,) = tuner.fit()
    assert "the Train run failed after two reports" in str(result.error)
    assert result.metrics_dataframe["epoch"].tolist() == [1, 2]
