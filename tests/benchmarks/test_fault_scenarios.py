"""Faults on real processes (issue #15): tiny sweeps as their own processes against a real
``mlflow server`` killed for good; two sweeps at once on one Ray cluster; one sweep
interrupted three times (a worker, the tracking server, the driver) against a straight run.
Each scenario is ``benchmarks.fault_scenarios`` or ``benchmarks.fault_determinism`` (the code
``python -m benchmarks.faults`` tabulates); here its outcome is checked in detail. Every wait
is on a state (runs, the spool's journal, process exits), never on the clock."""

from __future__ import annotations

import pytest

from benchmarks import fault_determinism
from benchmarks import fault_scenarios as fs


@pytest.mark.slow
def test_mlflow_gone_for_good_leaves_a_spool_that_replays_everything_once(tiny_dataset_root, tmp_path):
    outcome = fs.mlflow_gone(tiny_dataset_root, tmp_path)
    details = outcome.details
    assert details["exit"] == 3, details["log"]  # trained everything; MLflow writes left spooled
    assert details["said"] and details["spooled"] > 0, details["log"]
    assert outcome.runs_lost == 0 and outcome.runs_duplicated == 0, details
    assert details["complete"] == 2 and outcome.survived, details["replay"]


@pytest.mark.slow
def test_two_sweeps_at_once_on_one_cluster_and_server_keep_to_their_own_runs(tiny_dataset_root, tmp_path, mlflow_server):
    with fs.RayHead(tmp_path, cpus=2) as head:  # one cluster, its own processes: not this process's Ray
        outcome = fs.two_sweeps(tiny_dataset_root, tmp_path, mlflow_server, head)
    details = outcome.details
    assert details["exits"] == [0, 0] and details["resume_exit"] == 0, details["logs"]
    assert all(t["runs"] == t["complete"] == 2 for t in details["before"]), details["before"]
    assert details["untouched"]  # the resumed sweep found only its own runs, and wrote none
    assert outcome.runs_lost == 0 and outcome.runs_duplicated == 0 and outcome.survived


@pytest.mark.slow
def test_three_interruptions_lose_nothing_and_end_with_the_straight_runs_accuracies(tiny_dataset_root, tmp_path):
    """A worker SIGKILLed, the tracking server killed and back, the driver killed and resumed,
    at points drawn from a seeded RNG, in one sweep: every fold ends with exactly the
    accuracy of an uninterrupted run (op determinism, a resumed attempt gets the uninterrupted
    batches, no dropout); one complete run per fold, nothing logged twice. This is also the
    suite's "MLflow server killed mid-sweep and back later" test (``fs.mlflow_restart`` is the
    same fault alone, for the table of ``python -m benchmarks.faults``)."""
    outcome = fault_determinism.three_interruptions(tiny_dataset_root, tmp_path, seed=0)
    details = outcome.details
    assert details["exits"] == [0, 0], details["log"]
    hit = details["hit"]
    assert {"worker_killed", "mlflow_killed_after_retry_epochs", "driver_killed"} <= set(hit), (hit, details["log"])
    assert 1 <= hit["worker_killed"]["after_epoch"] < fault_determinism.EPOCHS
    assert 1 <= hit["driver_killed"]["fold_2_after_epoch"] < fault_determinism.EPOCHS
    assert "unreachable" in details["log"] and "back after" in details["log"]
    assert details["complete"] == details["runs"] == 2
    assert outcome.runs_lost == 0 and outcome.runs_duplicated == 0, details
    print(f"points {details['points']}, hit {hit}, accuracies straight {details['straight']}, "
          f"interrupted {details['resumed']}")
    assert details["differences"] and all(d == 0 for d in details["differences"].values()), details
    assert outcome.survived
    # A checkpoint every epoch of sub-second epochs: Tune's "snapshotting ... may become a
    # bottleneck" warning fired at nearly every epoch before the sweep silenced it.
    straight = (tmp_path / "straight-sweep.log").read_text()
    assert "fold 2: test accuracy" in straight and "Experiment state snapshotting" not in straight


def test_the_interruption_points_are_seeded_and_inside_the_run():
    draws = [fault_determinism.draw_points(seed) for seed in range(50)]
    assert draws[0] == fault_determinism.draw_points(0)
    assert len({tuple(d.values()) for d in draws}) > 1
    for d in draws:
        assert 1 <= d["worker_kill_after"] < fault_determinism.EPOCHS // 2
        assert d["mlflow_kill_after"] >= 1
        assert d["worker_kill_after"] + d["mlflow_kill_after"] < fault_determinism.EPOCHS
        assert 1 <= d["driver_kill_after"] <= fault_determinism.EPOCHS // 2
