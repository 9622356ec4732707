"""Plan-time checks of what a sweep reads and writes: the dataset, and the folders it writes to.

Run by ``orchestration.plan.preflight`` before Ray starts: the UrbanSound8K metadata and audio
files (``features.dataset.load_dataset``: every problem, with its CSV line), the folds asked for,
and a write probe plus a free-space check of the feature cache folder, the local Ray storage
folder and the tracking store's folder (``features.writable.check_folder``). Each failure is a
``SweepError`` naming the path and what to do. Remote stores (``s3://`` storage, an ``http``
tracking server) are not probed here; the tracking server's health is checked by
``orchestration.tracking.check_tracking_uri``.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from features.cache import default_cache_dir
from features.dataset import DatasetError, DatasetIndex, load_dataset
from features.extract import CACHE_FIX, check_cache_folder
from features.writable import FolderError, check_folder


class InputError(Exception):
    """A dataset or folder problem found at plan time (turned into a ``SweepError``)."""


def check_inputs(spec, storage_path: str, tracking_uri: str) -> DatasetIndex | None:
    """The validated dataset (None for the synthetic demo, generated later), after probing
    every local folder the sweep writes to. Raises ``InputError``."""
    sweep = spec.sweep
    cache_dir = Path(sweep.cache_dir).expanduser() if sweep.cache_dir else default_cache_dir()
    try:
        index = _dataset(sweep)
        if index is not None:
            check_cache_folder(index, spec.features, cache_dir)
        else:
            check_folder(cache_dir, "feature cache folder", CACHE_FIX)
        if "://" not in storage_path:
            check_folder(storage_path, "Ray storage folder", "choose another with --storage-path (or $US8K_STORAGE_PATH)")
        folder = tracking_folder(tracking_uri)
        if folder is not None:
            check_folder(folder, "MLflow tracking folder", "choose another store with --tracking-uri (or $MLFLOW_TRACKING_URI)")
    except (DatasetError, FolderError) as exc:
        raise InputError(str(exc)) from None
    return index


def _dataset(sweep) -> DatasetIndex | None:
    if sweep.data_dir is None:
        return None
    index = load_dataset(Path(sweep.data_dir).expanduser(), folds=None, skip_missing=sweep.skip_missing)
    absent = sorted(set(sweep.folds) - set(index.folds))
    if absent:
        raise DatasetError(
            f"folds {', '.join(map(str, absent))} have no clips in {index.root}; the CSV has folds "
            f"{', '.join(map(str, index.folds))}: choose among them with --folds",
            ["selection"],
        )
    return index


def tracking_folder(uri: str) -> Path | None:
    """The local folder a ``sqlite:`` or file tracking store writes into (None: a server)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "sqlite":
        return Path(uri.removeprefix("sqlite:///").split("?")[0]).expanduser().absolute().parent
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme == "file" else uri).expanduser().absolute()
    return None
