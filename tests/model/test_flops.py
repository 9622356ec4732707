"""FLOPs per sample from layer shapes (model/flops.py), against counts done by hand."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tf_keras as keras

from model.cnn import build_cnn
from model.config import TrainConfig
from model.flops import (
    TRAINING_FACTOR,
    conv2d_flops,
    dense_flops,
    forward_flops_per_sample,
    layer_flops,
    training_flops_per_sample,
)


def test_one_conv_and_one_dense_layer_counted_by_hand():
    inputs = keras.Input((10, 12, 2))
    x = keras.layers.Conv2D(8, (3, 3), name="c")(inputs)  # valid: 8 x 10 x 8
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="d")(x)
    model = keras.Model(inputs, outputs)
    # conv: 2 * 3*3 (kernel) * 2 (c_in) * 8 (c_out) * 8*10 (H_out x W_out) = 23,040; dense: 2 * 8 * 4 = 64
    layers = layer_flops(model)
    assert [(layer.name, layer.forward) for layer in layers] == [("c", 23_040), ("d", 64)]
    assert layers[0].output_shape == (8, 10, 8) and layers[0].kernel == (3, 3, 2, 8)
    assert forward_flops_per_sample(model) == 23_104
    assert training_flops_per_sample(model) == 3 * 23_104 == TRAINING_FACTOR * 23_104


def test_padding_same_strides_and_groups_follow_the_output_shape():
    inputs = keras.Input((9, 9, 4))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", groups=2, name="g")(inputs)  # 5 x 5 x 6
    model = keras.Model(inputs, x)
    # 2 * 3*3 * (4 / 2) * 6 * 5*5 = 5,400
    assert forward_flops_per_sample(model) == 5_400 == conv2d_flops((3, 3), 4, 6, (5, 5), groups=2)


def test_dense_on_a_sequence_counts_every_position():
    inputs = keras.Input((7, 5))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    assert forward_flops_per_sample(model) == dense_flops(5, 3, positions=7) == 2 * 5 * 3 * 7


def test_the_reference_network_on_40_by_174():
    # conv1 38x172x32 from 1 channel, conv2 36x170x32, pool 18x85, conv3 16x83x64, conv4 14x81x64, dense 64->10
    expected = (2 * 9 * 1 * 32 * 38 * 172 + 2 * 9 * 32 * 32 * 36 * 170 + 2 * 9 * 32 * 64 * 16 * 83
                + 2 * 9 * 64 * 64 * 14 * 81 + 2 * 64 * 10)
    assert expected == 249_132_800
    assert forward_flops_per_sample(build_cnn((40, 174, 1), 10, TrainConfig())) == expected


def test_convolutions_it_cannot_count_are_refused():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.DepthwiseConv2D(3)(inputs))
    with pytest.raises(ValueError, match="DepthwiseConv2D is not counted"):
        layer_flops(model)
    with pytest.raises(ValueError, match="not a multiple of groups"):
        conv2d_flops((3, 3), 5, 4, (2, 2), groups=2)
