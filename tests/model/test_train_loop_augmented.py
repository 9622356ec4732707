"""The worker loop with augmented rows (float16, cast per batch) and delta channels."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from features.featureset import AugmentedRows
from features.toy import make_toy_featureset
from model.checkpoints import STATE_FILE
from model.config import TrainConfig
from model.train_loop import FINAL_KEY, make_dataset, make_loop_config, train_loop_per_worker


def test_float16_training_rows_reach_the_model_as_float32():
    import tensorflow as tf

    x = np.arange(24, dtype=np.float16).reshape(6, 2, 2, 1)
    y = np.arange(6, dtype=np.int32)
    batches = list(make_dataset(tf, x, y, 3, seed=0, train_passes=1))
    assert all(b[0].dtype == tf.float32 for b in batches)
    assert sorted(np.concatenate([b[0].numpy() for b in batches]).ravel().tolist()) == list(range(24))


@pytest.mark.slow
def test_a_local_mode_fold_trains_on_augmented_rows_with_delta_channels(ray_local):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    fs = make_toy_featureset(frames=24)
    fs = dataclasses.replace(fs, features=np.concatenate([fs.features, fs.features / 10], axis=1), channels=2)
    src = np.repeat(np.arange(len(fs)), 2)
    augmented = AugmentedRows(
        features=(fs.features[src] * 1.1).astype(np.float16), labels=fs.labels[src], folds=fs.folds[src],
        fs_ids=fs.fs_ids[src], file_names=fs.file_names[src], augmentation=np.tile(["a", "b"], len(fs)),
        mixed_with=np.full(len(src), ""),
    )
    fs = dataclasses.replace(fs, augmented=augmented)
    config = TrainConfig(batch_size=32, epochs=1, learning_rate=3e-3, checkpoint_every=0, filters=(4, 4, 8, 8))
    trainer = TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config=make_loop_config(ray_local.put(fs), 4, config),
        scaling_config=ScalingConfig(num_workers=0),
        run_config=RunConfig(name="loop-augmented"),
    )
    result = trainer.fit()
    directory = Path(result.checkpoint.path)
    try:
        state = json.loads((directory / STATE_FILE).read_text())
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert result.metrics[FINAL_KEY] == 1 and result.metrics["test_accuracy"] >= 0
    assert state["input_shape"] == [40, 24, 2]
    sizes = state["split_sizes"]
    assert sizes["train_augmented"] == 2 * sizes["train"]  # every training clip's two variants
    assert sizes["test"] == int(np.sum(fs.folds == 4))
