"""Delta and delta-delta channels (FeatureConfig.deltas): librosa's deltas, stacked by rows."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from features.config import FeatureConfig
from features.logmel import extract_clip, stack_deltas


def test_stacked_blocks_are_the_features_and_librosa_deltas():
    feats = np.random.default_rng(0).normal(size=(40, 100)).astype(np.float32)
    out = stack_deltas(feats, 2)
    assert out.shape == (120, 100)
    np.testing.assert_array_equal(out[:40], feats)
    np.testing.assert_allclose(out[40:80], librosa.feature.delta(feats, width=9, order=1), atol=1e-6)
    np.testing.assert_allclose(out[80:], librosa.feature.delta(feats, width=9, order=2), atol=1e-6)


def test_short_clips_get_a_narrower_window_or_zero_deltas():
    feats = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_allclose(stack_deltas(feats, 1)[4:], librosa.feature.delta(feats, width=5), atol=1e-6)
    assert not stack_deltas(feats[:, :2], 2)[4:].any()


def test_clip_features_gain_channels_and_keep_the_base_block(tiny_dataset):
    path = tiny_dataset.table["path"].iloc[0]
    base = extract_clip(path, FeatureConfig())
    with_deltas = extract_clip(path, FeatureConfig(deltas=2))
    assert with_deltas.shape == FeatureConfig(deltas=2).shape == (120, 174)
    np.testing.assert_array_equal(with_deltas[:40], base)
    assert np.abs(with_deltas[40:]).max() > 0


def test_deltas_are_validated_and_change_the_cache_key_only_when_set():
    with pytest.raises(ValueError, match="deltas"):
        FeatureConfig(deltas=3)
    assert FeatureConfig(deltas=1).digest() != FeatureConfig().digest()
    assert FeatureConfig().channels == 1 and FeatureConfig(deltas=2).channels == 3
    # The default digest is the one from before the field existed (existing caches stay valid).
    assert FeatureConfig().digest() == "60723a961a89530d"
