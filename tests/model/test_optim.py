"""Optimizers and schedules (model/optim.py): the schedules' known values, AdamW's decoupled
decay sparing biases and batch-norm parameters, and a resumed run continuing the schedule at
the step it stopped at (float32 and under a LossScaleOptimizer)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pytest
import tf_keras as keras

from model import checkpoints as ckpt
from model.cnn import compile_model
from model.config import TrainConfig
from model.networks import build_network
from model.optim import OneCycle, learning_rate, make_optimizer

SHAPE = (16, 16, 1)


def rates(schedule, steps) -> list[float]:
    return [float(schedule(s)) for s in steps]


def test_constant_is_the_plain_rate_and_schedules_need_steps_per_epoch():
    assert learning_rate(TrainConfig(learning_rate=3e-4), None) == 3e-4
    with pytest.raises(ValueError, match="'cosine' needs the steps per epoch"):
        learning_rate(TrainConfig(lr_schedule="cosine"), None)


def test_linear_lr_scaling_scales_the_rate_and_the_schedules_peak_by_world_size():
    linear = TrainConfig(learning_rate=1e-3, lr_scaling="linear")
    assert learning_rate(linear, None, world_size=2) == pytest.approx(2e-3)
    assert learning_rate(linear.replace(lr_scaling="none"), None, world_size=2) == 1e-3
    optimizer = make_optimizer(linear, world_size=3)
    assert float(keras.backend.get_value(optimizer.learning_rate)) == pytest.approx(3e-3)
    cosine = linear.replace(lr_schedule="cosine", warmup_epochs=1, epochs=4)
    assert rates(learning_rate(cosine, 10, world_size=2), [10]) == pytest.approx([2e-3])


def test_jit_compile_reaches_the_compiled_model():
    xla = TrainConfig(jit_compile=True, deterministic=False)
    assert compile_model(build_network(SHAPE, 10, xla), xla).jit_compile
    assert not compile_model(build_network(SHAPE, 10, TrainConfig()), TrainConfig()).jit_compile


def test_cosine_warms_up_linearly_then_decays_to_zero():
    config = TrainConfig(lr_schedule="cosine", warmup_epochs=2, epochs=10, learning_rate=0.1)
    schedule = learning_rate(config, 5)  # 50 steps, 10 of warm-up, 40 of decay
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert rates(schedule, [0, 5, 10, 30, 50, 60]) == pytest.approx([0.0, 0.05, 0.1, 0.05, 0.0, 0.0], abs=1e-7)
    plain = learning_rate(config.replace(warmup_epochs=0), 5)
    assert rates(plain, [0, 25, 50]) == pytest.approx([0.1, 0.05, 0.0], abs=1e-7)


def test_onecycle_rises_from_a_25th_to_the_peak_then_falls_to_its_10000th():
    config = TrainConfig(lr_schedule="onecycle", warmup_epochs=3, epochs=10, learning_rate=0.1)
    schedule = learning_rate(config, 10)  # 100 steps, 30 rising
    assert isinstance(schedule, OneCycle) and (schedule.total_steps, schedule.warmup_steps) == (100, 30)
    start, end = 0.1 / 25, 0.1 / 25 / 1e4
    mid_rise = start + (0.1 - start) / 2
    mid_fall = end + (0.1 - end) / 2
    assert rates(schedule, [0, 15, 30, 65, 100, 120]) == pytest.approx(
        [start, mid_rise, 0.1, mid_fall, end, end], rel=1e-5
    )
    values = rates(schedule, range(101))
    assert values == sorted(values[:31]) + sorted(values[31:], reverse=True)
    restored = OneCycle.from_config(schedule.get_config())
    assert rates(restored, [7, 77]) == rates(schedule, [7, 77])


def test_adamw_decays_kernels_but_not_biases_or_batch_norm():
    config = TrainConfig(architecture="vgg-bn", optimizer="adamw", weight_decay=0.5, learning_rate=0.1)
    model = build_network(SHAPE, 10, config)
    optimizer = make_optimizer(config)
    assert isinstance(optimizer, keras.optimizers.AdamW) and optimizer.weight_decay == 0.5
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables]
    # Zero gradients: Adam's step is 0, so only the decoupled decay moves a variable.
    optimizer.apply_gradients(zip([np.zeros(v.shape, np.float32) for v in variables], variables, strict=True))
    for variable, old in zip(variables, before, strict=True):
        spared = any(part in variable.name for part in ("bias", "gamma", "beta"))
        expected = old if spared else old * (1 - 0.5 * 0.1)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, err_msg=variable.name)
    assert any("gamma" in v.name for v in variables) and any("kernel" in v.name for v in variables)


def test_sgd_takes_momentum_and_adam_stays_the_reference():
    sgd = make_optimizer(TrainConfig(optimizer="sgd", momentum=0.9, learning_rate=0.01))
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.9 and not sgd.weight_decay
    adam = make_optimizer(TrainConfig())
    assert type(adam) is keras.optimizers.Adam and (adam.beta_1, adam.beta_2) == (0.99, 0.999)
    assert float(adam.learning_rate.numpy()) == pytest.approx(1e-4) and not adam.weight_decay


def _model(config: TrainConfig, mixed: bool, steps_per_epoch: int, loss_scale: float | None = None):
    keras.utils.set_random_seed(0)
    model = compile_model(build_network(SHAPE, 10, config, mixed_precision=mixed), config,
                          steps_per_epoch=steps_per_epoch, initial_loss_scale=loss_scale)
    model.optimizer.build(model.trainable_variables)  # as the loop does, before a restore
    return model


@pytest.mark.parametrize(
    ("mixed", "options"),
    [
        (False, {"lr_schedule": "cosine", "optimizer": "adam"}),
        (True, {"lr_schedule": "onecycle", "optimizer": "adamw", "weight_decay": 0.01}),
    ],
)
def test_a_resumed_run_continues_the_schedule_at_the_step_it_stopped(mixed, options):
    # Reference network without dropout: the same batch gives the same step in both runs.
    config = TrainConfig(warmup_epochs=1, epochs=4, learning_rate=1e-2, dropout1=0.0, dropout2=0.0,
                         kernel_size=2, **options)
    steps_per_epoch = 3
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, *SHAPE)).astype(np.float32), rng.integers(0, 10, 8)
    schedule = learning_rate(config, steps_per_epoch)
    uninterrupted = _model(config, mixed, steps_per_epoch)
    for _ in range(5):
        uninterrupted.train_on_batch(x, y)
    # Checkpoint after 5 steps, as the loop does: weights, optimizer variables, loss scale.
    saved = ckpt.Resumed(ckpt.TrainState(epoch=1), uninterrupted.get_weights(),
                         ckpt.optimizer_values(uninterrupted.optimizer), None,
                         ckpt.loss_scale_state(uninterrupted.optimizer), "test")
    resumed = _model(config, mixed, steps_per_epoch, (saved.loss_scale or {}).get("scale"))
    ckpt.restore_into(resumed, saved)
    assert int(resumed.optimizer.iterations.numpy()) == 5
    uninterrupted.train_on_batch(x, y)
    resumed.train_on_batch(x, y)
    # The sixth step ran at schedule(5), past the warm-up, not at schedule(0).
    for model in (uninterrupted, resumed):
        assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(float(schedule(5)), rel=1e-6)
        assert int(model.optimizer.iterations.numpy()) == 6
    assert float(schedule(5)) > 5 * float(schedule(0))
    for a, b in zip(uninterrupted.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if mixed:
        assert isinstance(resumed.optimizer, keras.mixed_precision.LossScaleOptimizer)
        assert float(resumed.optimizer.loss_scale) == float(uninterrupted.optimizer.loss_scale)
