"""With delta channels, prediction computes exactly the training inputs: the same stored rows,
the same per-row normaliser, the same reshape into channels; and the CNN builds for them."""

from __future__ import annotations

import os

import numpy as np

from features.config import FeatureConfig
from features.featureset import FeatureSet
from features.logmel import extract_clip
from features.us8k import CLASS_NAMES
from features.windows import iter_windows
from model.config import TrainConfig
from model.data import prepare_fold

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
CONFIG = FeatureConfig(deltas=2)  # 4.04-s windows: a dataset clip is one window


def test_predictor_inputs_equal_training_inputs_with_deltas(tiny_dataset):
    import tf_keras as keras

    from model.cnn import build_cnn
    from model.predictor import AudioClassifier

    table = tiny_dataset.table[tiny_dataset.table["fold"].isin([1, 2, 3])]
    fs = FeatureSet(
        features=np.stack([extract_clip(p, CONFIG) for p in table["path"]]),
        labels=table["classID"].to_numpy(np.int64), folds=table["fold"].to_numpy(np.int64),
        fs_ids=table["fsID"].to_numpy(np.int64), file_names=table["slice_file_name"].to_numpy(str),
        channels=CONFIG.channels,
    )
    train = TrainConfig(filters=(4, 4, 8, 8), val_fraction=0.3)
    fold = prepare_fold(fs, 2, train)
    assert fold.input_shape == (CONFIG.n_mels, CONFIG.frames, 3)
    keras.utils.set_random_seed(0)
    network = build_cnn(fold.input_shape, len(CLASS_NAMES), train)
    assert network.input_shape == (None, CONFIG.n_mels, CONFIG.frames, 3)
    classifier = AudioClassifier(network, CONFIG, fold.normaliser, CLASS_NAMES)
    test_paths = table["path"].to_numpy()[fold.split.test]
    for path, x in zip(test_paths[:2], fold.x_test[:2], strict=False):
        window = next(iter_windows(path, CONFIG))
        np.testing.assert_array_equal(classifier.model_input(window.features[None])[0], x)
        expected = network.predict(x[None], verbose=0)[0]
        np.testing.assert_allclose(classifier.classify(path).probabilities, expected, atol=1e-5)
