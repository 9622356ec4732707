"""The TensorFlow backend that keeps TensorFlow out of the Train controller: TF_CONFIG per worker,
an address Ray and gRPC accept, and no TensorFlow import where the config is unpickled."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from orchestration import tf_backend


def test_tf_config_names_every_worker_and_this_one(monkeypatch):
    # Set through monkeypatch so both are restored: a TF_CONFIG left in this process would make
    # later in-process (local mode) runs build a MultiWorkerMirroredStrategy.
    monkeypatch.setenv("TF_CONFIG", "")
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    tf_backend._set_tf_config(["10.0.0.1:1234", "10.0.0.2:2345"], 1)
    config = json.loads(os.environ["TF_CONFIG"])
    assert config == {"cluster": {"worker": ["10.0.0.1:1234", "10.0.0.2:2345"]}, "task": {"type": "worker", "index": 1}}
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"


def test_worker_address_is_this_nodes_ip_and_a_port(ray_local):
    host, _, port = tf_backend.worker_address().rpartition(":")
    assert host == ray_local.util.get_node_ip_address()
    assert 0 < int(port) < 65536


def test_loading_the_config_imports_no_tensorflow():
    code = ("import pickle, sys; from orchestration.tf_backend import TFConfigNoImport; "
            "pickle.loads(pickle.dumps(TFConfigNoImport())); print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "False"
