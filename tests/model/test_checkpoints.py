"""What a fold run saves and a resumed attempt reads back, through public tf_keras APIs only:
weights, optimizer slots, and under mixed precision the dynamic loss scale and its counter."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from model import checkpoints as ckpt
from model.cnn import build_cnn, compile_model
from model.config import TrainConfig

SHAPE = (40, 24, 1)


def _trained(mixed: bool, initial_loss_scale: float | None = None):
    config = TrainConfig(seed=0)
    model = compile_model(build_cnn(SHAPE, 10, config, mixed_precision=mixed), config,
                          initial_loss_scale=initial_loss_scale)
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(8, *SHAPE)).astype(np.float32), np.arange(8) % 10, batch_size=4, verbose=0)
    return model


def test_train_state_round_trips_through_json_with_no_best_yet():
    state = ckpt.TrainState(epoch=3, attempt_start_epochs=[0, 2], history=[{"epoch": 1.0, "loss": 2.0}])
    text = json.dumps(state.to_json())  # JSON has no infinity: best_val_loss goes as null
    assert json.loads(text)["best_val_loss"] is None
    back = ckpt.TrainState.from_json(json.loads(text))
    assert back == state and math.isinf(back.best_val_loss)


def test_checkpoint_files_round_trip(tmp_path):
    model = _trained(mixed=False)
    arrays = {ckpt.WEIGHTS_FILE: model.get_weights(), ckpt.OPTIMIZER_FILE: ckpt.optimizer_values(model.optimizer),
              ckpt.BEST_WEIGHTS_FILE: None}
    ckpt.write_checkpoint(tmp_path, ckpt.TrainState(epoch=1), arrays, {"train_config": {"a": 1}})
    assert not (tmp_path / ckpt.BEST_WEIGHTS_FILE).exists()
    weights = ckpt.load_arrays(tmp_path / ckpt.WEIGHTS_FILE)
    assert len(weights) == len(model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))
    payload = json.loads((tmp_path / ckpt.STATE_FILE).read_text())
    assert payload["state"]["epoch"] == 1 and payload["train_config"] == {"a": 1}


def test_restore_puts_weights_and_adam_slots_into_a_fresh_model():
    trained = _trained(mixed=False)
    resumed = ckpt.Resumed(ckpt.TrainState(epoch=1), trained.get_weights(),
                           ckpt.optimizer_values(trained.optimizer), None, None, "test")
    config = TrainConfig(seed=1)
    fresh = compile_model(build_cnn(SHAPE, 10, config), config)
    fresh.optimizer.build(fresh.trainable_variables)
    ckpt.restore_into(fresh, resumed)
    assert all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), trained.get_weights(), strict=True))
    assert int(fresh.optimizer.iterations.numpy()) == int(trained.optimizer.iterations.numpy()) == 2


def test_optimizer_mismatch_names_the_checkpoint():
    trained = _trained(mixed=False)
    resumed = ckpt.Resumed(ckpt.TrainState(), trained.get_weights(), [np.zeros(1)], None, None, "s3://b/ckpt_7")
    with pytest.raises(ValueError, match=r"checkpoint s3://b/ckpt_7: 1 optimizer arrays saved"):
        ckpt.restore_into(trained, resumed)


def test_mixed_precision_loss_scale_survives_a_resume():
    trained = _trained(mixed=True, initial_loss_scale=2.0**10)
    saved = ckpt.loss_scale_state(trained.optimizer)
    assert saved is not None and saved["scale"] == 2.0**10  # no overflow in 2 steps: unchanged
    assert saved["counter"] == 2  # two good steps towards the next doubling
    resumed = ckpt.Resumed(ckpt.TrainState(epoch=1), trained.get_weights(),
                           ckpt.optimizer_values(trained.optimizer), None, saved, "test")
    config = TrainConfig(seed=0)
    fresh = compile_model(build_cnn(SHAPE, 10, config, mixed_precision=True), config,
                          initial_loss_scale=resumed.loss_scale["scale"])
    fresh.optimizer.build(fresh.trainable_variables)
    ckpt.restore_into(fresh, resumed)
    assert float(fresh.optimizer.loss_scale) == 2.0**10  # not the default 2**15
    assert int(fresh.optimizer.dynamic_counter) == 2
    assert ckpt.loss_scale_state(_trained(mixed=False).optimizer) is None
