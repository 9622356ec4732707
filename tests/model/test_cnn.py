"""The CNN: reference shapes and parameter counts, variants, mixed precision, compilation."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pytest
import tf_keras as keras

from model.cnn import build_cnn, compile_model
from model.config import TrainConfig

INPUT = (40, 174, 1)



def layer_output_shapes(model, kinds: tuple[type, ...]) -> list[tuple[int, ...]]:
    """Output shapes (without batch axis) of the layers of the given types, in order."""
    return [tuple(layer.output_shape[1:]) for layer in model.layers if isinstance(layer, kinds)]

def expected_params(
    conv_filters: list[int], kernel: int, channels: int, classes: int
) -> tuple[int, int]:
    """(total, non-trainable) from the layer definitions: conv kernels+biases, BN 4 per channel."""
    total, frozen, c_in = 0, 0, channels
    for f in conv_filters:
        total += kernel * kernel * c_in * f + f + 4 * f  # conv + BN (gamma, beta, mean, var)
        frozen += 2 * f  # BN moving mean and variance
        c_in = f
    return total + c_in * classes + classes, frozen


def test_reference_shapes_and_parameter_counts():
    model = build_cnn(INPUT, 10, TrainConfig())
    shapes = layer_output_shapes(model, (keras.layers.Conv2D, keras.layers.MaxPooling2D))
    assert shapes == [(38, 172, 32), (36, 170, 32), (18, 85, 32), (16, 83, 64), (14, 81, 64)]
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert model.count_params() == 66_410
    assert trainable == 66_026
    assert model.output_shape == (None, 10)


def test_reference_layer_order():
    model = build_cnn(INPUT, 10, TrainConfig())
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    block = ["Conv2D", "LeakyReLU", "BatchNormalization"]
    expected = [*block, "SpatialDropout2D", *block, "MaxPooling2D", "SpatialDropout2D"]
    expected += [*block, "SpatialDropout2D", *block, "GlobalAveragePooling2D", "Dense"]
    assert kinds == expected
    drops = [
        layer.rate for layer in model.layers if isinstance(layer, keras.layers.SpatialDropout2D)
    ]
    assert drops == [0.07, 0.07, 0.14]
    conv = model.get_layer("conv1")
    assert conv.padding == "valid" and conv.kernel_size == (3, 3)
    assert float(conv.kernel_regularizer.l2) == pytest.approx(5e-4)
    assert model.get_layer("conv1_lrelu").alpha == pytest.approx(0.1)


@pytest.mark.parametrize("variant", ["wide", "deep"])
def test_variants_build_with_the_expected_parameters(variant):
    config = TrainConfig(variant=variant)
    model = build_cnn(INPUT, 10, config)
    conv_filters = [
        layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
    ]
    if variant == "wide":
        assert conv_filters == [64, 64, 128, 128]
    else:
        assert conv_filters == [32, 32, 64, 64, 128]
    total, frozen = expected_params(conv_filters, 3, 1, 10)
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == frozen
    assert model(np.zeros((2, *INPUT), np.float32)).shape == (2, 10)


def test_parameter_formula_matches_the_reference_count():
    # Guards the helper above with the independently known reference numbers.
    assert expected_params([32, 32, 64, 64], 3, 1, 10) == (66_410, 384)


def test_mixed_precision_keeps_a_float32_softmax_and_no_global_policy():
    before = keras.mixed_precision.global_policy().name
    model = compile_model(
        build_cnn((40, 24, 1), 10, TrainConfig(), mixed_precision=True), TrainConfig()
    )
    assert keras.mixed_precision.global_policy().name == before
    assert model.get_layer("conv1").compute_dtype == "float16"
    assert model.get_layer("softmax").compute_dtype == "float32"
    assert model.output.dtype == "float32"
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    probs = model(np.random.default_rng(0).normal(size=(3, 40, 24, 1)).astype(np.float32)).numpy()
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-3)


def test_compile_uses_adam_settings_and_sparse_crossentropy():
    config = TrainConfig(learning_rate=3e-4, beta_1=0.95, beta_2=0.98)
    model = compile_model(build_cnn((40, 24, 1), 10, config), config)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(3e-4)
    assert (optimizer.beta_1, optimizer.beta_2) == (0.95, 0.98)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 40, 24, 1)).astype(np.float32), np.array([0, 1, 2, 3])
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0


def test_bad_input_shape_is_rejected():
    with pytest.raises(ValueError, match="input_shape"):
        build_cnn((40, 174), 10, TrainConfig())
