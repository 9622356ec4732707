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
    ],
)
def test_invalid_values_name_the_field(changes, field):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
        TrainConfig(**changes)


def test_wide_variant_doubles_filters_and_mixed_precision_modes():
    assert TrainConfig(variant="wide").conv_filters == (64, 64, 128, 128)
    assert TrainConfig(mixed_precision="auto").use_mixed_precision(use_gpu=True)
    assert not TrainConfig(mixed_precision="auto").use_mixed_precision(use_gpu=False)
    assert TrainConfig(mixed_precision="on").use_mixed_precision(use_gpu=False)
    assert not TrainConfig(mixed_precision="off").use_mixed_precision(use_gpu=True)
