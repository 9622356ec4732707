"""model/runtime.py: thread pools, the strategy per world size, determinism, oneDNN settings."""

from __future__ import annotations

import json

import pytest

from model import runtime


def test_thread_counts_follow_the_cpus_held():
    assert runtime.thread_counts(1) == (1, 2)
    assert runtime.thread_counts(1.99) == (2, 2)  # a node minus a trial's 0.01
    assert runtime.thread_counts(4) == (4, 4)
    assert runtime.thread_counts(0.5) == (1, 2)
    with pytest.raises(ValueError, match="cpus must be > 0"):
        runtime.thread_counts(0)


def test_one_worker_trains_under_the_default_strategy_even_with_tf_config():
    import tensorflow as tf

    tf_config = {"TF_CONFIG": json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}})}
    assert runtime.strategy_kind(1) == runtime.DEFAULT_STRATEGY
    assert runtime.strategy_kind(2) == runtime.MULTI_WORKER_STRATEGY
    strategy = runtime.make_strategy(tf, 1, environ=tf_config)
    assert strategy is tf.distribute.get_strategy()
    assert not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    with pytest.raises(RuntimeError, match="2 workers but no TF_CONFIG"):
        runtime.make_strategy(tf, 2, environ={})
    with pytest.raises(ValueError, match="world_size must be >= 1"):
        runtime.strategy_kind(0)


def test_determinism_once_on_stays_reported_on_and_describe_names_the_settings(monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtime.set_determinism(tf, True) is True
    assert runtime.set_determinism(tf, False) is True  # no public way back: reported as in force
    described = runtime.describe(tf, runtime.DEFAULT_STRATEGY)
    assert described["op_determinism"] is True and described["strategy"] == "default"
    assert described["omp_num_threads"] == "3"
    assert described["intra_op_threads"] == tf.config.threading.get_intra_op_parallelism_threads()


def test_onednn_settings_map_to_the_environment_variable():
    assert runtime.onednn_env("default") == {}
    assert runtime.onednn_env("on") == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert runtime.onednn_env("off") == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    with pytest.raises(ValueError, match="oneDNN setting must be one of"):
        runtime.onednn_env("fast")
