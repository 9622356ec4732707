"""Fixtures for model tests."""

from __future__ import annotations

import pytest
from helpers_features import make_tiny_featureset

from features.featureset import FeatureSet


@pytest.fixture(scope="session")
def tiny_featureset() -> FeatureSet:
    """~300 seeded clips (40 mel x 174 frames) over 10 folds with learnable class patterns."""
    return make_tiny_featureset()
