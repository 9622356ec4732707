"""The UrbanSound8K CNN (pure tf_keras, no Ray): build it and compile it from a TrainConfig."""

from __future__ import annotations

import os

# Keras 3 fails under MultiWorkerMirroredStrategy; this must precede the TensorFlow import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tf_keras as keras

from model.config import TrainConfig
from model.optim import make_optimizer

MIXED_POLICY = "mixed_float16"


def build_cnn(
    input_shape: tuple[int, int, int],
    num_classes: int,
    config: TrainConfig,
    *,
    mixed_precision: bool = False,
) -> keras.Model:
    """The reference network for ``TrainConfig()``; ``config.variant`` widens or deepens it.

    Layout ('valid' padding throughout): conv(f1) [drop d1] conv(f2) pool [drop d1]
    conv(f3) [drop d2] conv(f4) -> global average pool -> dense softmax, where every conv is
    Conv2D(L2) -> LeakyReLU -> BatchNorm. ``mixed_precision`` gives every layer the
    mixed_float16 policy except the softmax output, which stays float32 for a stable loss.
    The policy is set per layer, not globally, so building a model leaves no global state.
    """
    if len(input_shape) != 3:
        raise ValueError(
            f"build_cnn: input_shape must be (bands, frames, channels), got {input_shape!r}"
        )
    if num_classes < 2:
        raise ValueError(f"build_cnn: num_classes must be >= 2, got {num_classes}")
    dtype = MIXED_POLICY if mixed_precision else None
    f1, f2, f3, f4 = config.conv_filters

    inputs = keras.Input(shape=tuple(input_shape), name="logmel")
    x = _conv_block(inputs, f1, config, dtype, "conv1")
    x = keras.layers.SpatialDropout2D(config.dropout1, dtype=dtype, name="drop1")(x)
    x = _conv_block(x, f2, config, dtype, "conv2")
    x = keras.layers.MaxPooling2D(pool_size=(2, 2), dtype=dtype, name="pool2")(x)
    x = keras.layers.SpatialDropout2D(config.dropout1, dtype=dtype, name="drop2")(x)
    x = _conv_block(x, f3, config, dtype, "conv3")
    x = keras.layers.SpatialDropout2D(config.dropout2, dtype=dtype, name="drop3")(x)
    x = _conv_block(x, f4, config, dtype, "conv4")
    if config.variant == "deep":
        x = keras.layers.MaxPooling2D(pool_size=(2, 2), dtype=dtype, name="pool4")(x)
        x = keras.layers.SpatialDropout2D(config.dropout2, dtype=dtype, name="drop4")(x)
        x = _conv_block(x, 2 * f4, config, dtype, "conv5")
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype, name="gap")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="softmax"
    )(x)
    return keras.Model(inputs, outputs, name=f"us8k_cnn_{config.variant}")


def _conv_block(x, filters: int, config: TrainConfig, dtype: str | None, name: str):
    x = keras.layers.Conv2D(
        filters,
        kernel_size=config.kernel_size,
        padding="valid",
        kernel_regularizer=keras.regularizers.l2(config.l2),
        dtype=dtype,
        name=name,
    )(x)
    x = keras.layers.LeakyReLU(alpha=config.leaky_relu_alpha, dtype=dtype, name=f"{name}_lrelu")(x)
    return keras.layers.BatchNormalization(
        momentum=config.bn_momentum, dtype=dtype, name=f"{name}_bn"
    )(x)


def uses_float16(model: keras.Model) -> bool:
    return any(layer.compute_dtype == "float16" for layer in model.layers)


def compile_model(
    model: keras.Model,
    config: TrainConfig,
    *,
    initial_loss_scale: float | None = None,
    steps_per_epoch: int | None = None,
    world_size: int = 1,
) -> keras.Model:
    """The configured optimizer + cross-entropy + accuracy, for training.

    Labels are integer classIDs (sparse cross-entropy), or, when the config makes soft labels
    (mixup, label smoothing), probability vectors (categorical cross-entropy: the training
    pipeline one-hot encodes every set it feeds ``fit``). ``steps_per_epoch`` is needed by
    a learning-rate schedule; ``world_size`` (workers in the run) by ``lr_scaling``.
    ``config.jit_compile`` compiles the training step with XLA.
    """
    loss = (
        keras.losses.CategoricalCrossentropy()
        if config.soft_labels
        else keras.losses.SparseCategoricalCrossentropy()
    )
    model.compile(
        optimizer=make_optimizer(
            config,
            loss_scale=uses_float16(model),
            initial_loss_scale=initial_loss_scale,
            steps_per_epoch=steps_per_epoch,
            world_size=world_size,
        ),
        loss=loss,
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
    )
    return model


def compile_for_evaluation(model: keras.Model) -> keras.Model:
    """Hard labels only: sparse cross-entropy on integer classIDs + accuracy. For a float32
    copy that is evaluated and saved, never trained (its optimizer is a plain Adam)."""
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model
