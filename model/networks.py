"""The model family (pure tf_keras, no Ray): every network a ``TrainConfig.architecture`` names.

``build_network`` is the one entry point; ``reference`` is ``model.cnn.build_cnn``.

- ``sb-cnn``: Salamon & Bello, "Deep convolutional neural networks and data augmentation for
  environmental sound classification", IEEE SPL 2017. Conv(24, 5x5) -> MaxPool(4, 2) -> ReLU,
  Conv(48, 5x5) -> MaxPool(4, 2) -> ReLU, Conv(48, 5x5) -> ReLU, Flatten, Dropout 0.5,
  Dense 64 (L2 0.001) -> ReLU, Dropout 0.5, Dense classes (L2 0.001) -> softmax. The published
  constants are fixed (the reference network's fields do not apply). Published input: 128
  bands x 128 frames, 'valid' convolutions (241,434 parameters). Adapted: that layout needs at
  least 100 bands x 32 frames (three 5x5 'valid' convs between (4, 2) pools); smaller inputs
  (the project's 40-band features) get 'same' padding in all three convs instead, so they
  still pool twice by (4, 2) (at least 16 bands x 4 frames). The dense layer's size follows
  from the input (flatten), as in the paper.
- ``vgg-bn``: a from-scratch VGG-style network (Simonyan & Zisserman 2015) with batch
  normalisation (Ioffe & Szegedy 2015) and global average pooling (Lin et al. 2014), under
  1M parameters: [Conv3x3-BN-ReLU] x2 at 32, 64, 128 filters, each pair followed by
  MaxPool(2, 2), then one at 256, global average pooling, dropout ``dropout2``, dense softmax.
  'same' padding throughout, so any input of at least 8 x 8 builds; L2 ``l2`` on every kernel,
  BatchNormalization momentum ``bn_momentum``; convs have no bias (the BN shift replaces it).
  586,282 parameters for 10 classes, whatever the input size.

Mixed precision: every layer computes in float16 except the softmax output (float32), set per
layer so that building leaves no global policy behind (as ``build_cnn``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tf_keras as keras

from model.cnn import MIXED_POLICY, build_cnn
from model.config import TrainConfig

SB_CNN_L2 = 1e-3
SB_CNN_DROPOUT = 0.5
SB_CNN_DENSE = 64
# Smallest input the published 'valid' SB-CNN layout builds for (bands, frames).
SB_CNN_VALID_MIN = (100, 32)
VGG_BLOCKS = ((32, 32), (64, 64), (128, 128), (256,))


def build_network(
    input_shape: tuple[int, int, int],
    num_classes: int,
    config: TrainConfig,
    *,
    mixed_precision: bool = False,
) -> keras.Model:
    """The network ``config.architecture`` names, for inputs (bands, frames, channels)."""
    if len(input_shape) != 3:
        raise ValueError(
            f"build_network: input_shape must be (bands, frames, channels), got {input_shape!r}"
        )
    if num_classes < 2:
        raise ValueError(f"build_network: num_classes must be >= 2, got {num_classes}")
    config.check_input(input_shape)
    if config.architecture == "reference":
        return build_cnn(input_shape, num_classes, config, mixed_precision=mixed_precision)
    dtype = MIXED_POLICY if mixed_precision else None
    if config.architecture == "sb-cnn":
        return build_sb_cnn(input_shape, num_classes, dtype)
    return build_vgg_bn(input_shape, num_classes, config, dtype)


def sb_cnn_padding(input_shape: tuple[int, ...]) -> str:
    """'valid' (as published) when the input is large enough for it, else 'same'."""
    big = input_shape[0] >= SB_CNN_VALID_MIN[0] and input_shape[1] >= SB_CNN_VALID_MIN[1]
    return "valid" if big else "same"


def build_sb_cnn(input_shape: tuple[int, int, int], num_classes: int, dtype: str | None) -> keras.Model:
    padding = sb_cnn_padding(input_shape)
    layers = keras.layers
    inputs = keras.Input(shape=tuple(input_shape), name="logmel")
    x = inputs
    for i, filters in enumerate((24, 48, 48), start=1):
        x = layers.Conv2D(filters, 5, padding=padding, dtype=dtype, name=f"conv{i}")(x)
        if i < 3:
            x = layers.MaxPooling2D(pool_size=(4, 2), dtype=dtype, name=f"pool{i}")(x)
        x = layers.ReLU(dtype=dtype, name=f"conv{i}_relu")(x)
    x = layers.Flatten(dtype=dtype, name="flatten")(x)
    x = layers.Dropout(SB_CNN_DROPOUT, dtype=dtype, name="drop1")(x)
    x = layers.Dense(
        SB_CNN_DENSE,
        activation="relu",
        kernel_regularizer=keras.regularizers.l2(SB_CNN_L2),
        dtype=dtype,
        name="dense1",
    )(x)
    x = layers.Dropout(SB_CNN_DROPOUT, dtype=dtype, name="drop2")(x)
    outputs = layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=keras.regularizers.l2(SB_CNN_L2),
        dtype="float32",
        name="softmax",
    )(x)
    return keras.Model(inputs, outputs, name="us8k_sb_cnn")


def build_vgg_bn(
    input_shape: tuple[int, int, int], num_classes: int, config: TrainConfig, dtype: str | None
) -> keras.Model:
    layers = keras.layers
    inputs = keras.Input(shape=tuple(input_shape), name="logmel")
    x = inputs
    for b, block in enumerate(VGG_BLOCKS, start=1):
        for c, filters in enumerate(block, start=1):
            name = f"block{b}_conv{c}"
            x = layers.Conv2D(
                filters,
                3,
                padding="same",
                use_bias=False,
                kernel_regularizer=keras.regularizers.l2(config.l2),
                dtype=dtype,
                name=name,
            )(x)
            x = layers.BatchNormalization(
                momentum=config.bn_momentum, dtype=dtype, name=f"{name}_bn"
            )(x)
            x = layers.ReLU(dtype=dtype, name=f"{name}_relu")(x)
        if b < len(VGG_BLOCKS):
            x = layers.MaxPooling2D(pool_size=(2, 2), dtype=dtype, name=f"block{b}_pool")(x)
    x = layers.GlobalAveragePooling2D(dtype=dtype, name="gap")(x)
    x = layers.Dropout(config.dropout2, dtype=dtype, name="drop")(x)
    outputs = layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=keras.regularizers.l2(config.l2),
        dtype="float32",
        name="softmax",
    )(x)
    return keras.Model(inputs, outputs, name="us8k_vgg_bn")
