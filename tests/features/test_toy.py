"""The toy FeatureSet used by model tests and the overhead benchmark: seeded, split-able."""

from __future__ import annotations

import numpy as np
import pytest

from features.toy import make_toy_featureset
from model.config import TrainConfig
from model.data import split_fold


def test_toy_features_are_seeded_and_split_like_the_loop_splits():
    features = make_toy_featureset(frames=24, seed=3)
    assert features.features.shape[1:] == (40, 24)
    assert features.features.dtype == np.float32
    assert set(features.labels.tolist()) == set(range(10))
    assert set(features.folds.tolist()) == set(range(1, 11))
    assert np.array_equal(features.features, make_toy_featureset(frames=24, seed=3).features)
    assert not np.array_equal(features.features, make_toy_featureset(frames=24, seed=4).features)
    split = split_fold(features, 1, TrainConfig().val_fraction, seed=0)
    assert len(split.val) > 0
    assert len(split.train) >= 32 * 4  # several batches of 32 per epoch
    # A recording never spans folds (the fold split must group clips by recording).
    folds_of = {}
    for fs_id, fold in zip(features.fs_ids.tolist(), features.folds.tolist(), strict=True):
        assert folds_of.setdefault(fs_id, fold) == fold


def test_toy_features_reject_too_few_frames():
    with pytest.raises(ValueError, match="frames must be >= 12"):
        make_toy_featureset(frames=8)
