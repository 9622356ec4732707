"""Faults on real processes (issue #15): tiny sweeps as their own processes against a real
``mlflow server`` that is killed and restarted, or killed for good; two sweeps at once on one
Ray cluster. Each scenario is ``benchmarks.fault_scenarios`` (the same code
``python -m benchmarks.faults`` tabulates); here its outcome is checked in detail. Every wait
is on a state (runs, the spool's journal, process exits), never on the clock."""

from __future__ import annotations

import pytest

from benchmarks import fault_scenarios as fs


@pytest.mark.slow
def test_mlflow_killed_mid_sweep_and_back_later_loses_and_doubles_nothing(tiny_dataset_root, tmp_path):
    outcome = fs.mlflow_restart(tiny_dataset_root, tmp_path)
    details = outcome.details
    assert details["exit"] == 0, details["log"]
    assert outcome.runs_lost == 0 and outcome.runs_duplicated == 0, details
    assert details["complete"] == details["runs"] == 2  # one FINISHED run, one model per fold
    assert "unreachable" in details["log"] and "back after" in details["log"]
    assert outcome.survived


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
def test_a_sweep_killed_mid_fold_and_resumed_ends_with_the_same_accuracies(tiny_dataset_root, tmp_path, mlflow_server):
    """Op determinism is on (TrainConfig.deterministic) and a reused trial process trains like
    a fresh one: a fold the kill did not cut must end with exactly the straight run's accuracy.
    The fold resumed mid-training restores weights, optimizer state and the epoch counter, but
    its later shuffle order and dropout masks are not the straight run's (model/train_loop.py):
    within fs.RESUMED_FOLD_TOLERANCE, and the difference is reported."""
    outcome = fs.determinism(tiny_dataset_root, tmp_path, mlflow_server)
    details = outcome.details
    assert details["exits"] == [0, 0], details["log"]
    for pair, difference in details["differences"].items():
        if pair not in details["cut_after_epochs"]:
            assert difference == 0, details
        else:
            assert difference <= fs.RESUMED_FOLD_TOLERANCE, details
    print(f"accuracies straight {details['straight']}, resumed {details['resumed']}, cut {details['cut_after_epochs']}")
    assert outcome.runs_lost == 0 and outcome.runs_duplicated == 0 and outcome.survived
