"""model/train_loop.py directly (Ray Train's local mode: the loop in this process, no worker
group): its settings, its tf.data pipelines, and a whole fold's reports and final checkpoint."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from features.toy import make_toy_featureset
from model.checkpoints import load_report
from model.config import TrainConfig
from model.hardware import cpu_model
from model.train_loop import (
    EPOCH_METRIC_KEYS,
    FINAL_KEY,
    FINAL_METRIC_KEYS,
    LoopSettings,
    make_dataset,
    make_loop_config,
    train_loop_per_worker,
)

FAST = TrainConfig(batch_size=16, learning_rate=3e-3, beta_1=0.9, bn_momentum=0.8, checkpoint_every=0)


def test_loop_settings_round_trip_and_reject_unknown_or_missing_keys():
    config = make_loop_config("ref", 3, FAST, use_gpu=True, intra_op_threads=2, class_names=("a", "b"))
    settings = LoopSettings.from_loop_config(config)
    assert settings.train_config == FAST and settings.class_names == ("a", "b") and settings.use_gpu
    assert settings.to_loop_config() == config
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epochs'\]"):
        LoopSettings.from_loop_config({**config, "epochs": 3})
    with pytest.raises(ValueError, match=r"missing key\(s\) \['test_fold'\]"):
        LoopSettings.from_loop_config({k: v for k, v in config.items() if k != "test_fold"})


def test_training_pipeline_reshuffles_whole_batches_and_evaluation_keeps_every_row():
    import tensorflow as tf

    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10, dtype=np.int32)
    train = [b[1].numpy().tolist() for b in make_dataset(tf, x, y, 4, seed=0, train_passes=2)]
    assert [len(b) for b in train] == [4, 4, 4, 4]  # 2 passes x 2 whole batches, remainder dropped
    first = sorted(y for batch in train[:2] for y in batch)
    second = sorted(y for batch in train[2:] for y in batch)
    assert len(set(first)) == 8 and len(set(second)) == 8
    assert train[:2] != train[2:]  # each pass reshuffled
    evaluation = [b[1].numpy().tolist() for b in make_dataset(tf, x, y, 4, seed=0)]
    assert evaluation == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_the_loop_compiles_with_the_learning_rate_its_world_size_scales_to():
    import tensorflow as tf
    import tf_keras as keras

    from model.data import prepare_fold
    from model.train_loop import _build_model

    features = make_toy_featureset(frames=24)
    for scaling, expected in (("linear", 2e-3), ("none", 1e-3)):
        config = FAST.replace(learning_rate=1e-3, lr_scaling=scaling)
        fold = prepare_fold(features, 2, config)
        model = _build_model(tf.distribute.get_strategy(), fold, LoopSettings(features, 2, config), None, world_size=2)
        assert float(keras.backend.get_value(model.optimizer.learning_rate)) == pytest.approx(expected)


@pytest.mark.slow
def test_a_local_mode_fold_reports_every_epoch_then_the_final_metrics(ray_local):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    features = make_toy_featureset(frames=24)
    trainer = TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config=make_loop_config(ray_local.put(features), 2, FAST.replace(epochs=3)),
        scaling_config=ScalingConfig(num_workers=0),
        run_config=RunConfig(name="loop-local"),
    )
    result = trainer.fit()
    metrics = result.metrics
    assert metrics[FINAL_KEY] == 1
    assert set(EPOCH_METRIC_KEYS) | set(FINAL_METRIC_KEYS) <= set(metrics)
    assert metrics["epochs_trained"] == 3 and metrics["resumes"] == 0 and metrics["loop_seconds"] > 0
    directory = Path(result.checkpoint.path)
    try:
        report = load_report(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3]
    # The training process's CPU per second of training: positive, at most this machine's cores.
    assert all(0 < h["train_cpu_cores"] <= len(os.sched_getaffinity(0)) + 0.2 for h in report["history"])
    # One worker: the default strategy, op determinism on (TrainConfig's default).
    assert report["runtime"]["strategy"] == "default" and report["runtime"]["op_determinism"] is True
    best = report["history"][report["best_epoch"] - 1]
    assert metrics["val_loss"] == best["val_loss"] == min(h["val_loss"] for h in report["history"])
    assert report["test"]["num_samples"] == int(np.sum(features.folds == 2))
    assert metrics["test_accuracy"] == report["test"]["accuracy"]
    assert metrics["seconds_per_epoch"] == pytest.approx(np.mean([h["epoch_seconds"] for h in report["history"]]))
    assert report["hardware"]["workers"] == 1 and report["hardware"]["gpus_per_worker"] == 0
    assert report["hardware"]["cpu_model"] == cpu_model()


@pytest.mark.slow
def test_a_fold_with_every_training_option_reports_hard_label_test_metrics(ray_local):
    # Soft training labels (mixup + smoothing), masks, shift, AdamW + one-cycle, SB-CNN: the
    # loop trains on one-hot sets and evaluates the test fold on hard labels.
    from ray.train import RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    features = make_toy_featureset(frames=24)
    config = FAST.replace(
        epochs=2, architecture="sb-cnn", optimizer="adamw", weight_decay=0.01, lr_schedule="onecycle",
        warmup_epochs=0.5, mixup_alpha=0.2, label_smoothing=0.1, freq_masks=1, freq_mask_width=4,
        time_masks=1, time_mask_width=3, time_shift=2, beta_1=0.9,
    )
    trainer = TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config=make_loop_config(ray_local.put(features), 2, config),
        scaling_config=ScalingConfig(num_workers=0),
        run_config=RunConfig(name="loop-options"),
    )
    result = trainer.fit()
    directory = Path(result.checkpoint.path)
    try:
        report = load_report(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    metrics = result.metrics
    assert metrics[FINAL_KEY] == 1 and metrics["epochs_trained"] == 2
    assert np.isfinite(metrics["val_loss"]) and np.isfinite(metrics["test_loss"])
    assert report["test"]["num_samples"] == int(np.sum(features.folds == 2))
    assert metrics["test_accuracy"] == report["test"]["accuracy"]
