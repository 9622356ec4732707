"""A trial that trains in its own Tune process (``in_trial``): every epoch reaches Tune, the final
checkpoint (with the model) is Tune's, a reused trial process trains the next pair exactly as a
fresh one would, and a retried trial resumes from its last checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from features.toy import make_toy_featureset
from model.train_loop import FINAL_KEY
from orchestration.callback import final_result
from orchestration.trial import TrialSettings, run_fold_trial

BASE = {"epochs": 3, "batch_size": 32, "filters": [4, 4, 8, 8], "bn_momentum": 0.8, "checkpoint_every": 1,
        "learning_rate": 3e-3}


def _settings(tmp_path: Path) -> TrialSettings:
    return TrialSettings(base_train=BASE, workers_per_trial=1, cpus_per_worker=1.0, gpus_per_worker=0.0,
                         storage_path=str(tmp_path / "storage"), sweep_name="t", train_max_failures=0,
                         in_trial=True)


def _tuner(tmp_path: Path, settings: TrialSettings, configs: list[dict], name: str):
    from ray import tune

    features = make_toy_featureset(frames=24, seed=1)
    fn = tune.with_parameters(run_fold_trial, features=features, settings=settings)
    return tune.Tuner(
        tune.with_resources(fn, settings.trial_resources()),
        param_space={"config_id": tune.grid_search([c["config_id"] for c in configs]), "fold": 2,
                     "params": tune.sample_from(lambda spec: {})},
        tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), name=name, verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )


@pytest.mark.slow
def test_in_trial_runs_report_every_epoch_and_a_reused_process_trains_like_a_fresh_one(ray_local, tmp_path):
    settings = _settings(tmp_path)
    assert settings.trial_resources() == {"CPU": 1.0}  # it holds the worker's CPU itself
    grid = _tuner(tmp_path, settings, [{"config_id": "a"}, {"config_id": "b"}], "reuse").fit()
    assert not grid.errors
    results = sorted(grid, key=lambda r: r.config["config_id"])
    pids = set()
    for result in results:
        history = result.metrics_dataframe
        epochs = [int(e) for e in history["epoch"].tolist() if e == e]
        assert epochs[:3] == [1, 2, 3] and result.metrics[FINAL_KEY] == 1
        assert 0.0 <= result.metrics["test_accuracy"] <= 1.0
        pids.add(int(result.metrics["pid"]))
        # The final checkpoint is Tune's, and carries the report and the model.
        assert (Path(result.checkpoint.path) / "model.keras").exists()
        report = json.loads((Path(result.checkpoint.path) / "report.json").read_text())
        assert report["epochs_trained"] == 3
    assert len(pids) == 1  # the second trial ran in the first one's (reused) process
    # ... and trained exactly as the first did: same seeds, clean Keras state.
    first, second = (r.metrics_dataframe.dropna(subset=["loss"])["loss"].tolist() for r in results)
    assert first == second
    assert results[0].metrics["test_accuracy"] == results[1].metrics["test_accuracy"]


class _TrialLike:
    """What the callback reads off a Tune trial."""

    def __init__(self, last_result, checkpoint):
        self.last_result, self.checkpoint = last_result, checkpoint


def test_the_callback_takes_an_in_trial_runs_model_from_tunes_checkpoint():
    class Checkpoint:
        path = "/storage/t/trial/checkpoint_000003"

    relayed = {FINAL_KEY: 1, "checkpoint_path": "/storage/train/checkpoint_000002"}
    assert final_result(_TrialLike(relayed, Checkpoint()))["checkpoint_path"].endswith("000002")
    assert final_result(_TrialLike({FINAL_KEY: 1}, Checkpoint()))["checkpoint_path"].endswith("000003")
    assert "checkpoint_path" not in final_result(_TrialLike({"epoch": 2}, Checkpoint()))
    assert "checkpoint_path" not in final_result(_TrialLike({FINAL_KEY: 1}, None))


def _crashing_trial(config: dict, *, features, settings: TrialSettings) -> None:
    """The trial function, with the loop's failure hook armed in this (the trial's) process."""
    import os

    from model.train_loop import ENV_FAIL_AT_EPOCH, ENV_FAIL_MARKER, ENV_FAIL_RANK

    os.environ.update({ENV_FAIL_AT_EPOCH: "3", ENV_FAIL_MARKER: config["marker"], ENV_FAIL_RANK: "0"})
    run_fold_trial(config, features=features, settings=settings)


@pytest.mark.slow
def test_a_crashed_in_trial_run_is_retried_by_tune_from_its_last_checkpoint(ray_local, tmp_path):
    import sys

    from ray import cloudpickle, tune

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    settings = _settings(tmp_path)
    fn = tune.with_parameters(_crashing_trial, features=make_toy_featureset(frames=24, seed=1), settings=settings)
    marker = tmp_path / "crashed"
    tuner = tune.Tuner(
        tune.with_resources(fn, settings.trial_resources()),
        param_space={"config_id": "a", "fold": 2, "params": {}, "marker": str(marker)},
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), name="crash", verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1)),
    )
    (result,) = tuner.fit()
    assert marker.exists() and result.error is None  # it crashed once, then finished
    assert result.metrics[FINAL_KEY] == 1 and result.metrics["resumes"] == 1
    report = json.loads((Path(result.checkpoint.path) / "report.json").read_text())
    assert report["attempt_start_epochs"] == [0, 2]  # the retry started after epoch 2, not from 0
