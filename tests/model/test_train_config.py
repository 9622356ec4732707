"""TrainConfig: reference defaults, strict and JSON-friendly (de)serialisation, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.config import TrainConfig


def test_defaults_are_the_reference_demo():
    config = TrainConfig()
    assert config.filters == (32, 32, 64, 64)
    assert (config.kernel_size, config.l2, config.dropout1, config.dropout2) == (
        3,
        5e-4,
        0.07,
        0.14,
    )
    assert (config.learning_rate, config.beta_1, config.beta_2) == (1e-4, 0.99, 0.999)
    assert (config.batch_size, config.epochs, config.variant) == (128, 360, "reference")
    assert config.conv_filters == config.filters


def test_round_trips_through_json_with_lists_for_tuples():
    config = TrainConfig(
        filters=(16, 16, 32, 32), variant="deep", patience=5, mixed_precision="off"
    )
    restored = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert isinstance(restored.filters, tuple)


def test_numpy_scalars_from_search_spaces_become_python_numbers():
    config = TrainConfig(batch_size=np.int64(64), learning_rate=np.float32(0.5), epochs=10.0)
    assert type(config.batch_size) is int and config.batch_size == 64
    assert type(config.learning_rate) is float
    assert type(config.epochs) is int
    json.dumps(config.to_dict())  # must not raise


def test_unknown_key_is_rejected_by_name():
    with pytest.raises(ValueError, match=r"unknown key.*learning_rat\b"):
        TrainConfig.from_dict({"learning_rat": 0.1})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"filters": (32, 32, 64)}, "filters"),
        ({"filters": (32, 0, 64, 64)}, "filters"),
        ({"dropout1": 1.0}, "dropout1"),
        ({"variant": "huge"}, "variant"),
        ({"mixed_precision": "maybe"}, "mixed_precision"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 2.5}, "epochs"),
        ({"patience": -1}, "patience"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"normalise": "yes"}, "normalise"),
        ({"architecture": "resnet"}, "architecture"),
        ({"architecture": "sb-cnn", "variant": "wide"}, "variant"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"weight_decay": -0.1, "optimizer": "adamw"}, "weight_decay"),
        ({"weight_decay": 0.01}, "weight_decay"),  # adam: use adamw or l2
        ({"momentum": 0.9}, "momentum"),  # adam
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"lr_schedule": "cosine", "warmup_epochs": 360}, "warmup_epochs"),
        ({"warmup_epochs": 5}, "warmup_epochs"),  # constant schedule
        ({"lr_schedule": "onecycle"}, "warmup_epochs"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"mixup_alpha": -0.2}, "mixup_alpha"),
        ({"freq_masks": -1}, "freq_masks"),
        ({"freq_masks": 2}, "freq_mask_width"),
        ({"time_mask_width": -3}, "time_mask_width"),
        ({"time_masks": 1.5}, "time_masks"),
        ({"time_shift": -4}, "time_shift"),
        ({"lr_scaling": "sqrt"}, "lr_scaling"),
        ({"jit_compile": "yes", "deterministic": False}, "jit_compile"),
        ({"jit_compile": True}, "jit_compile"),  # with deterministic (the default): tensorflow#69417
    ],
)
def test_invalid_values_name_the_field(changes, field):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
        TrainConfig(**changes)


def test_lr_scaling_multiplies_the_rate_by_the_workers_only_when_linear():
    assert TrainConfig().lr_scaling == "none" and TrainConfig().jit_compile is False
    assert TrainConfig(learning_rate=1e-3).scaled_learning_rate(4) == 1e-3
    assert TrainConfig(learning_rate=1e-3, lr_scaling="linear").scaled_learning_rate(4) == pytest.approx(4e-3)
    assert TrainConfig(learning_rate=1e-3, lr_scaling="linear").scaled_learning_rate(1) == 1e-3
    with pytest.raises(ValueError, match="world_size must be >= 1"):
        TrainConfig().scaled_learning_rate(0)
    tuned = TrainConfig(lr_scaling="linear", jit_compile=True, deterministic=False)
    assert TrainConfig.from_dict(json.loads(json.dumps(tuned.to_dict()))) == tuned


def test_wide_variant_doubles_filters_and_mixed_precision_modes():
    assert TrainConfig(variant="wide").conv_filters == (64, 64, 128, 128)
    assert TrainConfig(mixed_precision="auto").use_mixed_precision(use_gpu=True)
    assert not TrainConfig(mixed_precision="auto").use_mixed_precision(use_gpu=False)
    assert TrainConfig(mixed_precision="on").use_mixed_precision(use_gpu=False)
    assert not TrainConfig(mixed_precision="off").use_mixed_precision(use_gpu=True)


def test_new_options_are_off_by_default_and_round_trip():
    config = TrainConfig()
    assert (config.architecture, config.optimizer, config.lr_schedule) == ("reference", "adam", "constant")
    assert (config.weight_decay, config.momentum, config.warmup_epochs, config.label_smoothing) == (0, 0, 0, 0)
    assert (config.mixup_alpha, config.freq_masks, config.time_masks, config.time_shift) == (0, 0, 0, 0)
    assert not config.soft_labels and not config.augments_batches
    tuned = TrainConfig(architecture="vgg-bn", optimizer="adamw", weight_decay=0.05, lr_schedule="onecycle",
                        warmup_epochs=np.float64(30), label_smoothing=0.1, mixup_alpha=0.2, freq_masks=np.int64(2),
                        freq_mask_width=8, time_masks=2, time_mask_width=20, time_shift=10)
    data = json.loads(json.dumps(tuned.to_dict()))
    assert TrainConfig.from_dict(data) == tuned and type(data["freq_masks"]) is int
    assert tuned.soft_labels and tuned.augments_batches
    assert TrainConfig(time_shift=3).augments_batches and not TrainConfig(time_shift=3).soft_labels


@pytest.mark.parametrize(
    ("changes", "shape", "message"),
    [
        ({"freq_masks": 1, "freq_mask_width": 41}, (40, 174), "freq_mask_width must be <= the input's 40 mel bands"),
        ({"time_masks": 1, "time_mask_width": 90}, (40, 87), "time_mask_width must be <= the input's 87 frames"),
        ({"time_shift": 175}, (40, 174, 1), "time_shift must be <= the input's 174 frames"),
        ({"architecture": "sb-cnn"}, (12, 174), "architecture needs inputs of at least 16 bands x 4 frames"),
        ({"variant": "deep"}, (20, 174), "architecture needs inputs of at least 24 bands"),
    ],
)
def test_settings_the_input_cannot_take_are_rejected_by_field(changes, shape, message):
    config = TrainConfig(**changes)
    with pytest.raises(ValueError, match=f"TrainConfig.{message}"):
        config.check_input(shape)
    config.check_input((128, 400))  # a larger input takes them
