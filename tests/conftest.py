"""Shared fixtures. Ray tests share one local Ray instance per session (starting Ray costs seconds)."""

from __future__ import annotations

import os

import pytest

# Quiet TensorFlow's C++ logging in every process the tests start (Ray workers inherit the env).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance with 2 logical CPUs, shared by the whole session."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_dataset_root(tmp_path_factory):
    """The `tiny` synthetic UrbanSound8K tree (200 clips, all formats), generated once."""
    from features.synthetic import generate

    return generate(tmp_path_factory.mktemp("us8k-tiny"), preset="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_dataset(tiny_dataset_root):
    from features.dataset import load_dataset

    return load_dataset(tiny_dataset_root)
