"""Fixtures for model tests."""

from __future__ import annotations

import pytest

from features.featureset import FeatureSet
from features.toy import make_toy_featureset


@pytest.fixture(scope="session")
def tiny_featureset() -> FeatureSet:
    """~300 seeded clips (40 mel x 174 frames) over 10 folds with learnable class patterns."""
    return make_toy_featureset()
