"""The model family (model/networks.py): SB-CNN's published shapes and parameter count, its
adaptation to 40-band inputs, vgg-bn under 1M parameters, one mixed-precision training step
per network, minimum inputs, and every network saved as a fold's final model and loaded back
through the predictor."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pytest
import soundfile as sf
import tf_keras as keras

from features.config import FeatureConfig
from features.logmel import extract_clip
from model.cnn import compile_for_evaluation, compile_model
from model.config import ARCHITECTURES, TrainConfig
from model.data import Normaliser
from model.networks import build_network
from model.predictor import AudioClassifier

SHAPED = (keras.layers.Conv2D, keras.layers.MaxPooling2D)


def shapes(model, kinds=SHAPED) -> list[tuple[int, ...]]:
    return [tuple(layer.output_shape[1:]) for layer in model.layers if isinstance(layer, kinds)]


def sb_cnn_params(flat: int, classes: int = 10) -> int:
    conv = (5 * 5 * 1 * 24 + 24) + (5 * 5 * 24 * 48 + 48) + (5 * 5 * 48 * 48 + 48)
    return conv + flat * 64 + 64 + 64 * classes + classes


def test_sb_cnn_on_its_published_input_has_the_published_layout():
    model = build_network((128, 128, 1), 10, TrainConfig(architecture="sb-cnn"))
    assert shapes(model) == [(124, 124, 24), (31, 62, 24), (27, 58, 48), (6, 29, 48), (2, 25, 48)]
    assert model.count_params() == sb_cnn_params(2 * 25 * 48) == 241_434
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Conv2D", "MaxPooling2D", "ReLU", "Conv2D", "MaxPooling2D", "ReLU", "Conv2D", "ReLU",
                     "Flatten", "Dropout", "Dense", "Dropout", "Dense"]
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.5, 0.5]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [64, 10]
    assert [float(d.kernel_regularizer.l2) for d in dense] == pytest.approx([1e-3, 1e-3])
    assert all(layer.kernel_regularizer is None for layer in model.layers if isinstance(layer, keras.layers.Conv2D))


def test_sb_cnn_adapts_to_forty_bands_with_same_padding():
    model = build_network((40, 174, 1), 10, TrainConfig(architecture="sb-cnn"))
    assert shapes(model) == [(40, 174, 24), (10, 87, 24), (10, 87, 48), (2, 43, 48), (2, 43, 48)]
    assert model.count_params() == sb_cnn_params(2 * 43 * 48)


def test_vgg_bn_is_under_a_million_parameters_with_the_stated_shapes():
    config = TrainConfig(architecture="vgg-bn")
    model = build_network((40, 174, 1), 10, config)
    assert shapes(model) == [
        (40, 174, 32), (40, 174, 32), (20, 87, 32),
        (20, 87, 64), (20, 87, 64), (10, 43, 64),
        (10, 43, 128), (10, 43, 128), (5, 21, 128),
        (5, 21, 256),
    ]
    conv = [3 * 3 * a * b for a, b in zip((1, 32, 32, 64, 64, 128, 128), (32, 32, 64, 64, 128, 128, 256), strict=True)]
    expected = sum(conv) + 4 * (32 + 32 + 64 + 64 + 128 + 128 + 256) + 256 * 10 + 10
    assert model.count_params() == expected == 586_282 <= 1_000_000
    assert len([x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]) == 7
    assert isinstance(model.get_layer("gap"), keras.layers.GlobalAveragePooling2D)
    assert model.get_layer("drop").rate == config.dropout2
    # Global pooling: the parameter count does not depend on the input size.
    assert build_network((128, 300, 1), 10, config).count_params() == expected


# AdamW + a schedule on one network (its jit-compiled update is slow to build on CPU; the
# schedule's resume under loss scaling is in test_optim.py), Adam on the others.
MIXED_CASES = [
    ("reference", {"optimizer": "adamw", "weight_decay": 0.01, "lr_schedule": "cosine", "warmup_epochs": 1}),
    ("sb-cnn", {"label_smoothing": 0.1}),
    ("vgg-bn", {"mixup_alpha": 0.2}),
]


@pytest.mark.parametrize(("architecture", "options"), MIXED_CASES)
def test_every_network_trains_a_step_under_mixed_precision_and_leaves_no_global_policy(architecture, options):
    assert {a for a, _ in MIXED_CASES} == set(ARCHITECTURES)
    before = keras.mixed_precision.global_policy().name
    config = TrainConfig(architecture=architecture, epochs=3, learning_rate=1e-3, **options)
    shape = (40, 24, 1)
    model = compile_model(build_network(shape, 10, config, mixed_precision=True), config, steps_per_epoch=2)
    assert keras.mixed_precision.global_policy().name == before
    assert any(layer.compute_dtype == "float16" for layer in model.layers)
    assert model.get_layer("softmax").compute_dtype == "float32" and model.output.dtype == "float32"
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    inner = keras.optimizers.AdamW if config.optimizer == "adamw" else keras.optimizers.Adam
    assert type(model.optimizer.inner_optimizer) is inner
    soft = keras.losses.CategoricalCrossentropy if config.soft_labels else keras.losses.SparseCategoricalCrossentropy
    assert isinstance(model.loss, soft)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, *shape)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[[1, 2, 3, 4]] * 0.7 + np.eye(10, dtype=np.float32)[[5, 6, 7, 8]] * 0.3
    if not config.soft_labels:
        y = np.array([1, 2, 3, 4])
    before_weights = [w.copy() for w in model.get_weights()]
    losses = [model.train_on_batch(x, y)[0] for _ in range(2)]  # the warm-up's step 0 has lr 0
    assert np.isfinite(losses).all()
    assert int(model.optimizer.iterations.numpy()) == 2
    assert any(not np.array_equal(a, b) for a, b in zip(before_weights, model.get_weights(), strict=True))
    probs = model.predict(x, verbose=0)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-3)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_minimum_inputs_build_and_smaller_ones_are_rejected_by_name(architecture):
    config = TrainConfig(architecture=architecture)
    bands, frames = config.min_input()
    assert build_network((bands, frames, 1), 10, config).output_shape == (None, 10)
    with pytest.raises(ValueError, match=f"TrainConfig.architecture needs inputs of at least {bands} bands"):
        build_network((bands - 1, frames + 10, 1), 10, config)


def test_unknown_architecture_is_rejected_by_name():
    with pytest.raises(ValueError, match=r"TrainConfig.architecture must be one of .*'resnet'"):
        TrainConfig(architecture="resnet")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_network_saved_as_a_fold_model_loads_and_predicts_through_the_predictor(architecture, tmp_path):
    # As model/train_loop.py's _finish: a float32 copy compiled for evaluation, model.save().
    features = FeatureConfig(frames=43)  # 1 s clips keep it quick
    keras.utils.set_random_seed(0)
    network = compile_for_evaluation(build_network((*features.shape, 1), 10, TrainConfig(architecture=architecture)))
    network.save(tmp_path / "model.keras")
    normaliser = Normaliser(np.full(features.n_mels, -40.0, np.float32), np.full(features.n_mels, 20.0, np.float32))
    names = [f"class{i}" for i in range(10)]
    classifier = AudioClassifier.from_files(
        tmp_path / "model.keras",
        {"feature_config": features.to_dict(), "normaliser": normaliser.to_dict(), "class_names": names},
    )
    sr = features.sample_rate
    t = np.arange(features.frames * features.hop_length) / sr  # one window of audio
    wav = tmp_path / "tone.wav"
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    prediction = classifier.classify(str(wav))
    assert prediction.probabilities.shape == (10,)
    expected = AudioClassifier(network, features, normaliser, names).probabilities_of_features(
        extract_clip(str(wav), features)[None]
    )[0]
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-5)
