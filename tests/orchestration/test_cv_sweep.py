"""The sweep end to end: Ray Tune trials of Ray Train runs, logged to a real MLflow server;
argument validation that fails before any compute; resume after the driver is killed."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from orchestration.cv_sweep import main
from orchestration.tracking import TAG_CONFIG, TAG_FOLD, TAG_KIND, TAG_SWEEP

FOLDS = (1, 2)
PAIRS = 2 * len(FOLDS)  # two configurations
HANG_GUARD_S = 3600  # only against hangs: never a speed expectation
# Short clips (1 s of the 4 s log-mel) and one epoch: the sweep's machinery, not its accuracy.
FAST = ["--epochs", "1", "--no-refit", "--set", "features.frames=44", "--set", "train.filters=[8,8,16,16]", "--set", "train.batch_size=32", "--set", "train.bn_momentum=0.8",
        "--set", "train.checkpoint_every=1", "--set", "train.learning_rate=3e-3"]


def _sweep_args(root: Path, tmp_path: Path, uri: str, name: str, experiment: str) -> list[str]:
    return [
        "--data-dir", str(root), "--folds", ",".join(map(str, FOLDS)),
        "--search-space", '{"dropout1": [0.0, 0.2]}',
        "--cache-dir", str(tmp_path / "cache"), "--storage-path", str(tmp_path / "ray"),
        "--tracking-uri", uri, "--experiment", experiment, "--name", name, *FAST,
    ]


def _runs(client: MlflowClient, experiment: str, sweep: str, kind: str):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs(
        [exp.experiment_id], f"tags.`{TAG_SWEEP}` = '{sweep}' and tags.`{TAG_KIND}` = '{kind}'", max_results=500
    )


def _tune_final_results(experiment_dir: Path) -> dict[tuple[str, int], float]:
    """test_accuracy per (configuration, fold), read from Tune's own result files."""
    found = {}
    for result_file in experiment_dir.glob("*/result.json"):
        rows = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
        final = [r for r in rows if "test_accuracy" in r]
        if final:
            config = final[-1]["config"]
            found[(config["config_id"], int(config["fold"]))] = final[-1]["test_accuracy"]
    return found


@pytest.mark.slow
def test_sweep_logs_the_run_tree_and_agrees_with_tune(ray_local, tiny_dataset_root, mlflow_server, tmp_path, capsys):
    # Through the reference recipe (its search space replaced by the flags): its name is logged.
    args = ["--recipe", "reference", *_sweep_args(tiny_dataset_root, tmp_path, mlflow_server, "e2e", "e2e-tree")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Cross-validation results of sweep e2e" in out and f"open {mlflow_server}" in out

    client = MlflowClient(mlflow_server)
    (sweep_run,) = _runs(client, "e2e-tree", "e2e", "sweep")
    assert sweep_run.info.status == "FINISHED"
    tags = sweep_run.data.tags
    for key in ("us8k.dataset_fingerprint", "us8k.feature_cache_keys", "us8k.git_commit", "us8k.ray_resources"):
        assert tags.get(key), key
    assert sweep_run.data.params["sweep.folds"] == str(list(FOLDS))
    assert tags["us8k.recipe"] == "reference" and sweep_run.data.params["sweep.recipe"] == "reference"

    configs = _runs(client, "e2e-tree", "e2e", "config")
    folds = _runs(client, "e2e-tree", "e2e", "fold")
    assert len(configs) == 2 and len(folds) == PAIRS
    assert {c.data.tags["mlflow.parentRunId"] for c in configs} == {sweep_run.info.run_id}
    # The same parameter names on every configuration run: MLflow's compare view lines them up.
    assert configs[0].data.params.keys() == configs[1].data.params.keys()
    assert {c.data.params["dropout1"] for c in configs} == {"0.0", "0.2"}

    tune_acc = _tune_final_results(tmp_path / "ray" / "e2e")
    assert len(tune_acc) == PAIRS
    config_run_ids = {c.data.tags[TAG_CONFIG]: c.info.run_id for c in configs}
    for fold_run in folds:
        cfg, fold = fold_run.data.tags[TAG_CONFIG], int(fold_run.data.tags[TAG_FOLD])
        assert fold_run.info.status == "FINISHED"
        assert fold_run.data.tags["mlflow.parentRunId"] == config_run_ids[cfg]
        assert fold_run.data.metrics["test_accuracy"] == pytest.approx(tune_acc[(cfg, fold)], abs=1e-12)
        assert [m.step for m in client.get_metric_history(fold_run.info.run_id, "loss")] == [1]
        artifacts = {a.path for a in client.list_artifacts(fold_run.info.run_id)}
        assert {"confusion_matrix.png", "learning_curve.png", "test_report.json", "per_class_report.txt"} <= artifacts
        report = json.loads(Path(client.download_artifacts(fold_run.info.run_id, "test_report.json", str(tmp_path))).read_text())
        assert report["accuracy"] == pytest.approx(fold_run.data.metrics["test_accuracy"])
    models = client.search_logged_models(experiment_ids=[sweep_run.info.experiment_id])
    assert {m.source_run_id for m in models} == {f.info.run_id for f in folds}
    # A logged model carries its input signature and predicts class probabilities.
    mlflow.set_tracking_uri(mlflow_server)
    shape = mlflow.models.get_model_info(models[0].model_uri).signature.inputs.inputs[0].shape
    assert shape[0] == -1 and shape[1] == 40 and shape[3] == 1
    probabilities = mlflow.pyfunc.load_model(models[0].model_uri).predict(np.zeros((2, *shape[1:]), np.float32))
    assert np.asarray(probabilities).shape == (2, 10)
    assert np.allclose(np.asarray(probabilities).sum(axis=1), 1.0, atol=1e-4)
    local = Path(mlflow.artifacts.download_artifacts(models[0].model_uri, dst_path=str(tmp_path / "model")))
    assert zipfile.is_zipfile(local / "data" / "model.keras")  # the native format, not HDF5

    for config_run in configs:
        cfg = config_run.data.tags[TAG_CONFIG]
        accs = [tune_acc[(cfg, f)] for f in FOLDS]
        metrics = config_run.data.metrics
        assert metrics["folds_completed"] == len(FOLDS)
        assert metrics["cv_accuracy_mean"] == pytest.approx(statistics.fmean(accs))
        assert metrics["cv_accuracy_std"] == pytest.approx(statistics.pstdev(accs))
        assert [metrics[f"fold_{f}_accuracy"] for f in FOLDS] == pytest.approx(accs)

    results = json.loads((tmp_path / "ray" / "e2e" / "results.json").read_text())
    assert [c["cv_accuracy_mean"] for c in results["configurations"]] == sorted(
        (c["cv_accuracy_mean"] for c in results["configurations"]), reverse=True
    )
    # Scheduling: the sum of the fold runs' in-loop seconds against Tuner.fit's wall.
    sched = results["scheduling"]
    loops = [f.data.metrics["loop_seconds"] for f in folds]
    assert sched["trials"] == PAIRS and sched["loop_seconds"] == pytest.approx(sum(loops))
    assert all(seconds > 0 for seconds in loops)
    assert sched["tune_seconds"] * sched["concurrency"] >= sched["loop_seconds"]  # wall covers the work
    assert sched["ratio"] == pytest.approx(sched["tune_seconds"] / (sum(loops) / sched["concurrency"]))
    assert sweep_run.data.metrics["scheduling_ratio"] == pytest.approx(sched["ratio"])
    assert f"scheduling: {PAIRS} trial(s) spent" in out

    # Each fold run records its hardware, seconds per epoch and wall time, and the end of the
    # sweep logs its report (HTML, markdown, figures) to the sweep run.
    for fold_run in folds:
        tags, metrics = fold_run.data.tags, fold_run.data.metrics
        assert tags["us8k.hardware"].startswith("CPU (") and tags["us8k.hw.workers"] == "1"
        assert tags["mlflow.source.name"] == "orchestration/cv_sweep.py"  # the UI's Source column
        assert tags["mlflow.source.git.commit"] == sweep_run.data.tags["us8k.git_commit"]
        assert 0 < metrics["seconds_per_epoch"] < metrics["wall_seconds"] and metrics["epochs_trained"] == 1
    logged = {a.path for a in client.list_artifacts(sweep_run.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/figures"} <= logged
    page = (tmp_path / "ray" / "e2e" / "report" / "report.html").read_text()
    assert "Time to solution" in page and folds[0].data.tags["us8k.hardware"] in page
    assert f"report: {tmp_path / 'ray' / 'e2e' / 'report' / 'report.html'}" in out
    link = f"{mlflow_server}/#/experiments/{sweep_run.info.experiment_id}/runs?workflowType=machine_learning"
    assert f"the sweep's runs in the MLflow UI: {link}" in out


def _nothing_computed(tmp_path: Path) -> None:
    """No dataset generated, no feature extracted, no sweep state or tracking store written."""
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "ray").exists() or not any((tmp_path / "ray").iterdir())
    assert not (tmp_path / "m.db").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--folds", "0,1"], "fold 0 is outside 1..10"),
        (["--folds", "11"], "fold 11 is outside 1..10"),
        (["--epochs", "-1"], "epochs must be >= 1"),
        (["--set", "train.unknown=1"], "unknown key(s) unknown"),
        (["--data-dir", "/nonexistent/us8k"], "not a directory"),
    ],
)
def test_bad_arguments_fail_before_any_compute_with_a_message(tmp_path, capsys, extra, message):
    args = ["--storage-path", str(tmp_path / "ray"), "--cache-dir", str(tmp_path / "cache"),
            "--tracking-uri", f"sqlite:///{tmp_path}/m.db", *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    _nothing_computed(tmp_path)


def test_unreachable_tracking_server_fails_before_any_compute(tmp_path, capsys, unused_port):
    uri = f"http://127.0.0.1:{unused_port}"
    assert main(["--storage-path", str(tmp_path / "ray"), "--cache-dir", str(tmp_path / "cache"),
                 "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the MLflow tracking server at {uri}" in err
    _nothing_computed(tmp_path)


def test_gpus_requested_on_a_cluster_without_gpus_fail_before_compute(ray_local, tmp_path, capsys):
    code = main(["--gpus-per-worker", "1", "--storage-path", str(tmp_path / "ray"), "--cache-dir",
                 str(tmp_path / "cache"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert code == 2
    assert "but the Ray cluster has 0 GPU(s)" in capsys.readouterr().err
    _nothing_computed(tmp_path)


@pytest.mark.slow
def test_a_killed_racing_sweep_resumes_with_each_pair_once_and_refits_the_winner(tiny_dataset_root, mlflow_server, tmp_path):
    """The driver (and the Ray it started) is killed once the race has dropped a hopeless
    configuration (learning rate 1e-7); --resume finishes the sweep: one MLflow run per
    (configuration, fold) that ran, runs finished before the kill untouched, the dropped
    configuration never brought back, the winner refit on all folds and registered."""
    folds, name, experiment = (1, 2, 3), "resumed", "e2e-resume"
    # alpha 0.5: at 2 folds the one-sided t-test fires as soon as the leader is ahead on both,
    # so the drop comes before the last fold on any machine (a test of the plumbing, not of alpha).
    args = [sys.executable, "-m", "orchestration.cv_sweep", "--address", "local", "--max-concurrent", "1",
            "--data-dir", str(tiny_dataset_root), "--folds", "1-3", "--epochs", "2", *FAST[3:],
            "--search-space", '{"learning_rate": [3e-3, 1e-7]}', "--racing", "ttest", "--racing-min-folds", "2",
            "--racing-alpha", "0.5", "--refit", "--register-as", "us8k-e2e",
            "--cache-dir", str(tmp_path / "cache"), "--storage-path", str(tmp_path / "ray"),
            "--tracking-uri", mlflow_server, "--experiment", experiment, "--name", name]
    # The command's own environment: no RAY_ADDRESS, and not the TF_USE_LEGACY_KERAS=1 that
    # tests/conftest.py sets (the command must set it itself, or models log as SavedModels).
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TF_USE_LEGACY_KERAS")}
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    client = MlflowClient(mlflow_server)
    # Waits on the runs' states, not on the clock: a hang guard only (a slow machine is fine).
    deadline = time.monotonic() + HANG_GUARD_S
    finished_before = {}
    while time.monotonic() < deadline and first.poll() is None:
        if client.get_experiment_by_name(experiment):
            done = [r for r in _runs(client, experiment, name, "fold") if r.info.status == "FINISHED"]
            if len(done) >= 4:  # folds 1 and 2 of both: the race has decided
                finished_before = {(r.data.tags[TAG_CONFIG], r.data.tags[TAG_FOLD]): r.info.end_time for r in done}
                break
        time.sleep(0.5)
    assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray cluster it started
    first.wait(timeout=60)

    resumed = subprocess.run([*args, "--resume", name], capture_output=True, text=True, env=env, timeout=HANG_GUARD_S)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "[resumed]" in resumed.stdout

    configs = {r.data.params["learning_rate"]: r for r in _runs(client, experiment, name, "config")}
    good, bad = configs["0.003"], configs["1e-07"]
    after = int(bad.data.tags["us8k.raced_out_after_folds"])
    assert bad.data.tags["us8k.raced_out"] == "true" and 2 <= after < len(folds) and bad.info.status == "KILLED"
    assert bad.data.tags["us8k.raced_out_leader"] == good.data.tags[TAG_CONFIG]
    assert float(bad.data.tags["us8k.raced_out_p_value"]) < 0.5
    assert "us8k.raced_out" not in good.data.tags and good.data.metrics["folds_completed"] == len(folds)

    runs = _runs(client, experiment, name, "fold")
    pairs = [(r.data.tags[TAG_CONFIG], int(r.data.tags[TAG_FOLD])) for r in runs]
    assert len(pairs) == len(set(pairs))  # exactly one MLflow run per (configuration, fold)
    assert sorted(f for c, f in pairs if c == bad.data.tags[TAG_CONFIG]) == list(range(1, after + 1))
    assert sorted(f for c, f in pairs if c == good.data.tags[TAG_CONFIG]) == list(folds)
    assert all(r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics for r in runs)
    by_pair = {(r.data.tags[TAG_CONFIG], r.data.tags[TAG_FOLD]): r for r in runs}
    for pair, end_time in finished_before.items():
        assert by_pair[pair].info.end_time == end_time  # finished before the kill: never touched again
    (sweep_run,) = _runs(client, experiment, name, "sweep")
    assert sweep_run.info.status == "FINISHED"
    assert sweep_run.data.metrics["trials_run"] == len(pairs) and sweep_run.data.metrics["trials_full_sweep"] == 2 * len(folds)
    # Each fold run's model is a Keras model, not a bare SavedModel ("tf2-module").
    models = client.search_logged_models(experiment_ids=[sweep_run.info.experiment_id])
    mlflow.set_tracking_uri(mlflow_server)
    for fold_run in runs:
        (model,) = [m for m in models if m.source_run_id == fold_run.info.run_id and m.name == "model"][-1:]
        assert mlflow.models.get_model_info(model.model_uri).flavors["tensorflow"]["model_type"] == "keras"
    # Scheduling counts only the pairs trained by the resumed run, not those reused.
    results = json.loads((tmp_path / "ray" / name / "results.json").read_text())
    assert results["scheduling"]["trials"] == len(pairs) - len(finished_before)
    assert results["configurations"][-1]["config_id"] == bad.data.tags[TAG_CONFIG]  # listed last, unranked
    # The winner was refit on all folds and registered as the champion, with where it came from.
    (refit,) = _runs(client, experiment, name, "refit")
    assert refit.data.tags["mlflow.parentRunId"] == sweep_run.info.run_id and refit.info.status == "FINISHED"
    version = client.get_model_version_by_alias("us8k-e2e", "champion")
    assert version.run_id == refit.info.run_id and version.tags["us8k.config_id"] == good.data.tags[TAG_CONFIG]
    assert float(version.tags["us8k.cv_accuracy_mean"]) == pytest.approx(good.data.metrics["cv_accuracy_mean"], abs=1e-6)
    assert version.tags["us8k.dataset_fingerprint"] == sweep_run.data.tags["us8k.dataset_fingerprint"]
    assert "refit: MLflow run" in resumed.stdout and "as @champion" in resumed.stdout
