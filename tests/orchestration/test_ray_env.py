"""Trials and Train actors start without runtime envs when Ray was started by ray_env.init_ray
(the session's ``ray_local`` is), and with Ray's usual ones otherwise. These tests also pin the
private Ray 2.60 hooks ray_env replaces: each fails if its hook stops taking effect."""

from __future__ import annotations

import json
import os
import sys

import pytest
from ray import cloudpickle
from ray.train.v2._internal.execution.callback import ControllerCallback, WorkerGroupCallback

from features.toy import make_toy_featureset
from model.config import TrainConfig
from orchestration.ray_env import MARKER, _snapshot, raylet_env_suffices

# The recorder runs in the Train controller, which cannot import this module by name.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

HEALTH = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


def test_marker_matches_only_the_environment_it_recorded(monkeypatch):
    monkeypatch.delenv(MARKER, raising=False)
    assert not raylet_env_suffices()
    monkeypatch.setenv(MARKER, json.dumps(_snapshot()))
    assert raylet_env_suffices()
    # A forwarded variable changed after Ray started: the raylet's copy is stale.
    monkeypatch.setenv(HEALTH, "7")
    assert not raylet_env_suffices()
    monkeypatch.setenv(MARKER, "{not json")
    assert not raylet_env_suffices()


def test_every_process_of_a_ray_started_by_init_ray_has_the_variables(ray_local):
    def probe() -> dict:
        from orchestration.ray_env import raylet_env_suffices

        return {
            "runtime_env": dict(ray_local.get_runtime_context().runtime_env),
            "health": os.environ.get(HEALTH),
            "marker": os.environ.get(MARKER),
            "suffices": raylet_env_suffices(),
        }

    seen = ray_local.get(ray_local.remote(probe).remote())
    assert seen["runtime_env"] == {}
    assert seen["health"] == os.environ[HEALTH]  # TRAIN_ENV's, unless this shell set another
    assert seen["marker"] == os.environ[MARKER]
    assert seen["suffices"] and raylet_env_suffices()


@pytest.mark.slow
def test_tune_trials_have_no_runtime_env_only_inside_the_block(ray_local, tmp_path):
    from ray import tune

    from orchestration.ray_env import tune_trials_without_runtime_env

    def trial(config: dict) -> None:
        import ray

        tune.report({"env": json.dumps(dict(ray.get_runtime_context().runtime_env))})

    def fit(name: str) -> dict:
        tuner = tune.Tuner(
            tune.with_resources(trial, {"CPU": 0.01}),
            run_config=tune.RunConfig(storage_path=str(tmp_path), name=name, verbose=0),
        )
        (result,) = tuner.fit()
        return json.loads(result.metrics["env"])

    with tune_trials_without_runtime_env() as bare:
        inside = fit("inside")
    outside = fit("outside")
    assert bare and inside == {}
    assert outside["env_vars"]["PL_DISABLE_FORK"] == "1"  # Tune's own runtime env


class EnvRecorder(ControllerCallback, WorkerGroupCallback):
    """Writes the controller's and the workers' runtime envs and health-check setting to a file."""

    def __init__(self, path: str):
        self.path = path

    def after_worker_group_start(self, worker_group) -> None:
        import ray

        def worker_env() -> dict:
            return dict(ray.get_runtime_context().runtime_env)

        with open(self.path, "w") as f:
            json.dump(
                {
                    "controller": dict(ray.get_runtime_context().runtime_env),
                    "controller_pid": os.getpid(),
                    "controller_health": os.environ.get(HEALTH),
                    "workers": worker_group.execute(worker_env),
                },
                f,
            )


@pytest.fixture(scope="module")
def features_ref(ray_local):
    return ray_local.put(make_toy_featureset(frames=24))


def _train(features_ref, tmp_path, name: str) -> dict:
    from orchestration.train_fold import train_fold

    record = tmp_path / f"{name}.json"
    result = train_fold(
        features_ref, 1, TrainConfig(epochs=1, batch_size=32), num_workers=1,
        storage_path=str(tmp_path / "runs"), name=name,
        worker_env={"US8K_PROBE": name}, callbacks=[EnvRecorder(str(record))],
    )
    assert result.error is None and result.metrics["final"] == 1
    return json.loads(record.read_text())


@pytest.mark.slow
def test_train_fold_starts_its_actors_without_runtime_env(ray_local, features_ref, tmp_path):
    from orchestration import ray_env

    seen = _train(features_ref, tmp_path, "bare")
    assert seen["controller"] == {}
    # Only the run's own variables: Train's RAY_TRAIN_* come from the raylet's environment.
    assert seen["workers"] == [{"env_vars": {"US8K_PROBE": "bare"}}]
    assert seen["controller_health"] == os.environ[HEALTH]
    # The next run's controller runs in the same ControllerHost process...
    again = _train(features_ref, tmp_path, "again")
    assert again["controller_pid"] == seen["controller_pid"] != os.getpid()
    # ...and one that died is replaced.
    ray_local.kill(ray_env.controller_host())
    replaced = _train(features_ref, tmp_path, "replaced")
    assert replaced["controller_pid"] != seen["controller_pid"]


@pytest.mark.slow
def test_train_fold_forwards_variables_the_raylet_lacks(ray_local, features_ref, tmp_path, monkeypatch):
    monkeypatch.setenv(HEALTH, "0.3")  # not what the raylet has: runtime envs carry it
    assert not raylet_env_suffices()
    seen = _train(features_ref, tmp_path, "forwarded")
    assert seen["controller"]["env_vars"][HEALTH] == "0.3"
    assert seen["controller_health"] == "0.3"
    (worker,) = seen["workers"]
    assert worker["env_vars"][HEALTH] == "0.3" and worker["env_vars"]["US8K_PROBE"] == "forwarded"


@pytest.mark.slow
def test_a_failed_run_leaves_the_controller_host_usable(ray_local, features_ref, tmp_path):
    import ray.train

    from orchestration.train_fold import train_fold

    before = _train(features_ref, tmp_path, "before")
    with pytest.raises(ray.train.TrainingFailedError, match="test fold 99 has no clips"):
        train_fold(features_ref, 99, TrainConfig(epochs=1), num_workers=1,
                   storage_path=str(tmp_path / "runs"), name="fails")
    after = _train(features_ref, tmp_path, "after")
    assert after["controller_pid"] == before["controller_pid"]
