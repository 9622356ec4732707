"""On-disk feature cache: one ``.npz`` per fold, keyed by feature config and the fold's file list.

Layout (no pickle anywhere: ``np.load(..., allow_pickle=False)`` reads it)::

    <cache_dir>/features/<config digest>/config.json
    <cache_dir>/features/<config digest>/fold<N>-<key>.npz            features, labels, folds, fs_ids, file_names
    <cache_dir>/features/<config digest>/fold<N>-<key>.json           manifest: counts, seconds, dataset root
    <cache_dir>/features/<config digest>/fold<N>-<key>.failures.csv   file, fold, row, reason

Augmented variants (``features.augment``) are cached the same way, per fold, under
``<cache_dir>/augmented/<augment digest>-<config digest>/``, keyed by the augmentation config,
the feature config and the fold's fingerprint (the noise partners come from the same fold);
their ``.npz`` adds ``augmentation`` and ``mixed_with`` columns and stores features as float16
by default.

A fold's key hashes the feature config digest with the fingerprint of that fold's rows (file
names, sizes, mtimes, labels), so editing a file, adding a row or changing the config misses the
cache, while running a fold subset first and all ten folds later reuses the finished folds. Each
fold is written as soon as it is complete (atomically), so an interrupted run loses at most the
folds still in progress.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.augment import AugmentConfig
from features.config import FeatureConfig
from features.featureset import AUGMENTED_ARRAYS, AugmentedRows, FeatureSet

CACHE_FORMAT_VERSION = 1
_ARRAYS = ("features", "labels", "folds", "fs_ids", "file_names")


def default_cache_dir() -> Path:
    """``$US8K_CACHE_DIR``, else ``~/.cache/us8k-ray``."""
    env = os.environ.get("US8K_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "us8k-ray"


@dataclass(frozen=True)
class Failure:
    """A clip excluded from the features, and why."""

    file: str
    fold: int
    row: int
    reason: str


@dataclass(frozen=True)
class FoldEntry:
    """Where one fold's features live in the cache."""

    directory: Path
    fold: int
    key: str

    @property
    def stem(self) -> Path:
        return self.directory / f"fold{self.fold}-{self.key}"

    @property
    def npz(self) -> Path:
        return self.stem.with_suffix(".npz")

    @property
    def manifest(self) -> Path:
        return self.stem.with_suffix(".json")

    @property
    def failures_csv(self) -> Path:
        return self.stem.with_name(self.stem.name + ".failures.csv")

    def exists(self) -> bool:
        # The manifest is written last: a fold without one was never completed.
        return self.npz.is_file() and self.manifest.is_file()


def fold_entry(cache_dir: Path, config: FeatureConfig, fold: int, fold_fingerprint: str) -> FoldEntry:
    blob = f"{CACHE_FORMAT_VERSION}:{config.digest()}:{fold}:{fold_fingerprint}".encode()
    key = hashlib.sha256(blob).hexdigest()[:16]
    return FoldEntry(Path(cache_dir) / "features" / config.digest(), fold, key)


def augmented_entry(
    cache_dir: Path, config: FeatureConfig, augment: AugmentConfig, fold: int, fold_fingerprint: str
) -> FoldEntry:
    blob = f"{CACHE_FORMAT_VERSION}:{augment.digest()}:{config.digest()}:{fold}:{fold_fingerprint}".encode()
    key = hashlib.sha256(blob).hexdigest()[:16]
    return FoldEntry(Path(cache_dir) / "augmented" / f"{augment.digest()}-{config.digest()}", fold, key)


def write_fold(
    entry: FoldEntry,
    config: FeatureConfig,
    featureset: FeatureSet,
    failures: Sequence[Failure],
    info: dict,
) -> None:
    """Write one fold's features, failure report and manifest, each atomically, manifest last."""
    _write_entry(entry, {"feature_config": config.to_dict()}, {name: getattr(featureset, name) for name in _ARRAYS},
                 failures, {"clips": len(featureset), **info})


def write_augmented_fold(
    entry: FoldEntry,
    config: FeatureConfig,
    augment: AugmentConfig,
    rows: AugmentedRows,
    failures: Sequence[Failure],
    info: dict,
) -> None:
    """One fold's augmented rows, like ``write_fold`` (atomic files, manifest last)."""
    configs = {"feature_config": config.to_dict(), "augment_config": augment.to_dict()}
    arrays = {name: getattr(rows, name) for name in AUGMENTED_ARRAYS}
    _write_entry(entry, configs, arrays, failures, {"rows": len(rows), **info})


def _write_entry(entry: FoldEntry, configs: dict, arrays: dict, failures: Sequence[Failure], info: dict) -> None:
    entry.directory.mkdir(parents=True, exist_ok=True)
    config_json = configs["feature_config"] if len(configs) == 1 else configs
    _atomic_write_text(entry.directory / "config.json", json.dumps(config_json, indent=2))
    for name in ("file_names", "augmentation", "mixed_with"):
        if name in arrays:
            arrays[name] = np.asarray(arrays[name], dtype=str)
    tmp = entry.npz.with_name(entry.npz.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, entry.npz)
    write_failure_report(entry.failures_csv, failures)
    manifest = {
        "format_version": CACHE_FORMAT_VERSION,
        "fold": entry.fold,
        "key": entry.key,
        **configs,
        "failures": len(failures),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **info,
    }
    _atomic_write_text(entry.manifest, json.dumps(manifest, indent=2))


def read_fold(entry: FoldEntry) -> tuple[FeatureSet, list[Failure]]:
    with np.load(entry.npz, allow_pickle=False) as data:
        featureset = FeatureSet(**{name: data[name] for name in _ARRAYS})
    return featureset, read_failure_report(entry.failures_csv)


def read_augmented_fold(entry: FoldEntry) -> tuple[AugmentedRows, list[Failure]]:
    with np.load(entry.npz, allow_pickle=False) as data:
        rows = AugmentedRows(**{name: data[name] for name in AUGMENTED_ARRAYS})
    return rows, read_failure_report(entry.failures_csv)


def write_failure_report(path: Path, failures: Iterable[Failure]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "fold", "row", "reason"])
        for f in failures:
            writer.writerow([f.file, f.fold, f.row, f.reason])
    os.replace(tmp, path)


def read_failure_report(path: Path) -> list[Failure]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [
            Failure(r["file"], int(r["fold"]), int(r["row"]), r["reason"]) for r in csv.DictReader(fh)
        ]


def concat(parts: Sequence[FeatureSet], config: FeatureConfig) -> FeatureSet:
    """Concatenate fold feature sets (an empty list gives an empty, correctly shaped set)."""
    if not parts:
        return FeatureSet(
            features=np.zeros((0, *config.shape), np.float32),
            labels=np.zeros(0, np.int64),
            folds=np.zeros(0, np.int64),
            fs_ids=np.zeros(0, np.int64),
            file_names=np.zeros(0, dtype=str),
            channels=config.channels,
        )
    arrays = {name: np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAYS}
    return FeatureSet(**arrays, channels=config.channels)


def empty_augmented(config: FeatureConfig, dtype: str = "float16") -> AugmentedRows:
    strings = {name: np.zeros(0, dtype=str) for name in ("file_names", "augmentation", "mixed_with")}
    return AugmentedRows(features=np.zeros((0, *config.shape), dtype), labels=np.zeros(0, np.int64),
                         folds=np.zeros(0, np.int64), fs_ids=np.zeros(0, np.int64), **strings)


def concat_augmented(parts: Sequence[AugmentedRows], config: FeatureConfig, dtype: str = "float16") -> AugmentedRows:
    """Concatenate folds' augmented rows, into one preallocated array (no second full copy)."""
    if not parts:
        return empty_augmented(config, dtype)
    features = np.empty((sum(len(p) for p in parts), *config.shape), dtype)
    start = 0
    for p in parts:
        features[start : start + len(p)] = p.features
        start += len(p)
    meta = {name: np.concatenate([getattr(p, name) for p in parts]) for name in AUGMENTED_ARRAYS[1:]}
    return AugmentedRows(features=features, **meta)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
