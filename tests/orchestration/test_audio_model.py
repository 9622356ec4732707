"""The registered model: a pyfunc that takes audio. Loaded back with mlflow.pyfunc it gives the
fold model's probabilities on the cached features of the same clips, in every WAV format; it
windows long recordings, reports unusable inputs per row, and a real `mlflow models serve`
process answers a REST request carrying a WAV file."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from features.config import FeatureConfig
from features.logmel import extract_clip
from features.us8k import CLASS_NAMES
from model.cnn import build_cnn
from model.config import TrainConfig
from model.data import Normaliser
from model.predictor import AudioClassifier
from orchestration.audio_model import log_audio_model
from orchestration.headless_ray import free_local_port
from orchestration.registry import CHAMPION, register

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
CONFIG = FeatureConfig()
TOLERANCE = 1e-5  # same features, same network: float32 rounding only


@pytest.fixture(scope="module")
def classifier():
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    network = build_cnn((*CONFIG.shape, 1), len(CLASS_NAMES), TrainConfig(filters=(4, 4, 8, 8)))
    rng = np.random.default_rng(0)
    normaliser = Normaliser(rng.normal(0, 0.1, CONFIG.n_mels).astype(np.float32),
                            rng.uniform(0.5, 1.5, CONFIG.n_mels).astype(np.float32))
    return AudioClassifier(network, CONFIG, normaliser, CLASS_NAMES)


@pytest.fixture(scope="module")
def logged(classifier, tmp_path_factory):
    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("audio", artifact_location=str(folder / "artifacts"))
    mlflow.set_experiment(experiment_id=experiment)
    run = client.create_run(experiment)
    model_uri = log_audio_model(run.info.run_id, classifier.model, classifier.settings())
    return {"uri": uri, "client": client, "run_id": run.info.run_id, "model_uri": model_uri, "folder": folder}


@pytest.mark.slow
def test_pyfunc_on_wav_files_equals_the_fold_model_on_cached_features(classifier, logged, tiny_dataset):
    table = tiny_dataset.table.groupby(tiny_dataset.table["path"].map(lambda p: sf.info(p).subtype)).head(2)
    assert len(set(table["path"].map(lambda p: sf.info(p).subtype))) >= 5  # several WAV formats
    model = mlflow.pyfunc.load_model(logged["model_uri"])
    out = model.predict(pd.DataFrame({"path": table["path"].tolist()}))
    cached = np.stack([extract_clip(p, CONFIG) for p in table["path"]])  # what the cache holds
    expected = classifier.probabilities_of_features(cached)
    probabilities = out[[f"prob_{n}" for n in CLASS_NAMES]].to_numpy()
    np.testing.assert_allclose(probabilities, expected, atol=TOLERANCE)
    assert out["top_class"].tolist() == [CLASS_NAMES[i] for i in expected.argmax(axis=1)]
    assert (out["windows"] == 1).all() and (out["error"] == "").all()


@pytest.mark.slow
def test_long_recordings_are_windowed_and_bad_rows_are_reported(logged, tmp_path):
    long = tmp_path / "street.wav"
    t = np.arange(12 * 16_000) / 16_000
    sf.write(long, 0.2 * np.sin(2 * np.pi * 300 * t), 16_000, subtype="PCM_16")
    garbage = tmp_path / "notes.wav"
    garbage.write_text("not audio")
    model = mlflow.pyfunc.load_model(logged["model_uri"])
    frame = pd.DataFrame({"path": [str(long), str(garbage), None],
                          "audio_base64": [None, None, base64.b64encode(long.read_bytes()).decode()]})
    out = model.predict(frame, params={"per_window": True, "hop_seconds": 4.0})
    # Windows at 0 and 4 s; one at 8 s would overrun the end, so the last one ends at 12 s.
    assert out.loc[0, "windows"] == 3
    timeline = json.loads(out.loc[0, "window_predictions"])
    assert [round(w["start"], 2) for w in timeline] == [0.0, 4.0, round(12 - 174 * 512 / 22050, 2)]
    mean = np.mean([w["probabilities"] for w in timeline], axis=0)
    np.testing.assert_allclose(out.loc[0, [f"prob_{n}" for n in CLASS_NAMES]].to_numpy(float), mean, atol=1e-5)
    assert out.loc[1, "error"].startswith("row 1: cannot decode audio") and pd.isna(out.loc[1, "top_class"])
    assert out.loc[2, "windows"] == 3 and out.loc[2, "top_class"] == out.loc[0, "top_class"]  # bytes == path


class _LosesTheRace(MlflowClient):
    """Right after its lookup finds no registered model, another refit creates it (two sweeps'
    refits at once; the store is real)."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.uri = uri
        self.raced = False

    def get_registered_model(self, name):
        try:
            return super().get_registered_model(name)
        finally:
            if not self.raced:
                self.raced = True
                MlflowClient(self.uri).create_registered_model(name)


@pytest.mark.slow
def test_two_refits_registering_a_new_name_at_once_both_get_a_version(logged):
    tags = {"us8k.cv_accuracy_mean": "0.70", "us8k.dataset_fingerprint": "data-a"}
    done = register(_LosesTheRace(logged["uri"]), "us8k-race", logged["model_uri"], logged["run_id"], tags)
    assert done.version == "1" and done.champion
    assert [str(v.version) for v in logged["client"].search_model_versions("name='us8k-race'")] == ["1"]


class _OvertakenBeforeItsMove(MlflowClient):
    """Between its look at the champion and its move of the alias, another refit on the same
    dataset registers a better version and moves the alias first (the store is real)."""

    def __init__(self, uri: str, other_tags: dict[str, str], model_uri: str, run_id: str) -> None:
        super().__init__(uri)
        self.other = (uri, other_tags, model_uri, run_id)
        self.other_done = None

    def set_registered_model_alias(self, name, alias, version):
        if self.other_done is None:
            uri, tags, model_uri, run_id = self.other
            self.other_done = register(MlflowClient(uri), name, model_uri, run_id, tags)
        return super().set_registered_model_alias(name, alias, version)


@pytest.mark.slow
def test_two_refits_at_once_leave_the_champion_on_the_better_one(logged):
    name, client = "us8k-alias-race", logged["client"]
    tags = {"us8k.cv_accuracy_mean": "0.60", "us8k.dataset_fingerprint": "data-a"}
    assert register(client, name, logged["model_uri"], logged["run_id"], tags).version == "1"
    racer = _OvertakenBeforeItsMove(logged["uri"], {**tags, "us8k.cv_accuracy_mean": "0.80"},
                                    logged["model_uri"], logged["run_id"])
    slower = register(racer, name, logged["model_uri"], logged["run_id"], {**tags, "us8k.cv_accuracy_mean": "0.70"})
    # Version 2 (0.70) looked first, version 3 (0.80) registered and moved the alias before it.
    assert racer.other_done.version == "3" and racer.other_done.champion
    assert slower.version == "2" and not slower.champion, slower.message
    assert "version 3 (CV mean 0.8000 on the same dataset), registered at the same time, holds @champion" in slower.message
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "3"


@pytest.mark.slow
def test_champion_moves_only_for_a_better_model_on_the_same_dataset(logged):
    client, name = logged["client"], "us8k-test"
    tags = {"us8k.cv_accuracy_mean": "0.70", "us8k.dataset_fingerprint": "data-a"}
    first = register(client, name, logged["model_uri"], logged["run_id"], tags)
    assert first.champion and first.version == "1"
    worse = register(client, name, logged["model_uri"], logged["run_id"], {**tags, "us8k.cv_accuracy_mean": "0.65"})
    assert not worse.champion and "the champion stays version 1" in worse.message
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "1"
    better = register(client, name, logged["model_uri"], logged["run_id"], {**tags, "us8k.cv_accuracy_mean": "0.75"})
    assert better.champion and str(client.get_model_version_by_alias(name, CHAMPION).version) == better.version
    other = register(client, name, logged["model_uri"], logged["run_id"], {**tags, "us8k.dataset_fingerprint": "data-b"})
    assert other.champion and "another dataset" in other.message
    assert client.get_model_version(name, other.version).tags["us8k.dataset_fingerprint"] == "data-b"


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_rest_request_with_a_wav(logged, tiny_dataset):
    client = logged["client"]
    register(client, "us8k-serve", logged["model_uri"], logged["run_id"],
             {"us8k.cv_accuracy_mean": "0.5", "us8k.dataset_fingerprint": "x"})
    port = free_local_port()
    log = (logged["folder"] / "serve.log").open("w")
    # `mlflow models serve` execs `uvicorn` by name: the virtual environment's bin on PATH, as
    # with an activated venv.
    env = {**os.environ, "MLFLOW_TRACKING_URI": logged["uri"],
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/us8k-serve@{CHAMPION}",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 900  # a hang guard only: the server imports TensorFlow
        while time.monotonic() < deadline:
            assert server.poll() is None, (logged["folder"] / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        path = tiny_dataset.table["path"].iloc[0]
        body = json.dumps({"dataframe_split": {"columns": ["audio_base64"],
                                               "data": [[base64.b64encode(Path(path).read_bytes()).decode()]]}})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as r:
            answer = json.loads(r.read())
        (row,) = answer["predictions"]
        assert row["top_class"] in CLASS_NAMES and row["error"] == "" and row["windows"] == 1
        assert sum(row[f"prob_{n}"] for n in CLASS_NAMES) == pytest.approx(1.0, abs=1e-4)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(timeout=60)
        log.close()


@pytest.mark.slow
def test_predict_cli_classifies_files_and_folders_and_reports_failures(logged, tiny_dataset, tmp_path, capsys):
    from orchestration.predict import main

    nested = tmp_path / "recordings" / "street corner"  # spaces and a non-ASCII name below
    nested.mkdir(parents=True)
    clips = tiny_dataset.table["path"].tolist()[:3]
    for i, path in enumerate(clips):
        (nested / f"clip-{i}-é.wav").write_bytes(Path(path).read_bytes())
    (nested / "broken.wav").write_bytes(b"RIFF\x00\x00")
    (nested / "readme.txt").write_text("not audio, not listed")
    args = [str(tmp_path / "recordings"), "--model", logged["model_uri"], "--tracking-uri", logged["uri"]]
    assert main(args) == 1  # one file failed, the others were classified
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 4 and "readme" not in captured.out
    assert sum("FAILED: cannot decode audio" in line for line in lines) == 1
    assert all("top 3:" in line for line in lines if "broken" not in line)
    assert "1 of 4 file(s) could not be classified" in captured.err

    assert main([str(nested / "clip-0-é.wav"), "--model", logged["model_uri"], "--tracking-uri", logged["uri"], "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert row["top_class"] in CLASS_NAMES and row["windows"] == 1

    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(10 * 8_000, np.int16), 8_000, subtype="PCM_16")
    assert main([str(long), "--model", logged["model_uri"], "--tracking-uri", logged["uri"], "--windows", "--csv", "--hop", "3"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    # Windows at 0 and 3 s, then the tail window ending at 10 s (a window at 6 s would overrun).
    assert table["start"].round(2).tolist() == [0.0, 3.0, round(10 - 174 * 512 / 22050, 2)]


def test_predict_cli_rejects_bad_arguments_before_loading(tmp_path, capsys):
    from orchestration.predict import main

    assert main([str(tmp_path), "--model", "models:/nope@champion"]) == 2
    assert "no audio files found" in capsys.readouterr().err
    (tmp_path / "a.wav").write_bytes(b"")
    assert main([str(tmp_path / "a.wav"), "--hop", "0"]) == 2
