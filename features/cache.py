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
fold is written as soon as it is complete, so an interrupted run loses at most the folds still in
progress.

Every file is written atomically (``atomic_write``): into a temporary file in the same folder
(``<name>.<host>.<pid>.<random>.tmp``), flushed to disk, then renamed over the final name, so a
reader sees the old file or the whole new one, never part of one. A write that fails (disk full,
permission) removes its temporary file and raises ``CacheWriteError`` naming the path; the
temporary file of a process killed mid-write is removed by the next run on that machine
(``remove_stale_temp_files``), and a fold file that cannot be read is treated as absent
(``CacheReadError``, caught by the extractors: the fold is extracted again).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import secrets
import socket
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.augment import AugmentConfig
from features.config import FeatureConfig
from features.featureset import AUGMENTED_ARRAYS, AugmentedRows, FeatureSet

CACHE_FORMAT_VERSION = 1
_ARRAYS = ("features", "labels", "folds", "fs_ids", "file_names")


class CacheWriteError(OSError):
    """A cache file could not be written; the message names it, the cause and what to do."""

    def __init__(self, path: Path, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        self.message = (
            f"cannot write {path} ({reason}); nothing partial was left there. Free some space or "
            "choose a writable cache folder (--cache-dir or $US8K_CACHE_DIR); folds already written "
            "are kept and reused by the next run"
        )
        super().__init__(cause.errno, self.message)
        self.path = path

    def __str__(self) -> str:
        return self.message


class CacheReadError(Exception):
    """A cache file exists but cannot be read (damaged): the fold is to be extracted again."""


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
    try:
        entry.directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheWriteError(entry.directory, exc) from exc
    config_json = configs["feature_config"] if len(configs) == 1 else configs
    _atomic_write_text(entry.directory / "config.json", json.dumps(config_json, indent=2))
    for name in ("file_names", "augmentation", "mixed_with"):
        if name in arrays:
            arrays[name] = np.asarray(arrays[name], dtype=str)
    atomic_write(entry.npz, lambda fh: np.savez(fh, **arrays))
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
    """One fold from the cache; raises ``CacheReadError`` if its files are damaged."""
    with _reading(entry):
        with np.load(entry.npz, allow_pickle=False) as data:
            featureset = FeatureSet(**{name: data[name] for name in _ARRAYS})
        return featureset, read_failure_report(entry.failures_csv)


def read_augmented_fold(entry: FoldEntry) -> tuple[AugmentedRows, list[Failure]]:
    with _reading(entry):
        with np.load(entry.npz, allow_pickle=False) as data:
            rows = AugmentedRows(**{name: data[name] for name in AUGMENTED_ARRAYS})
        return rows, read_failure_report(entry.failures_csv)


@contextlib.contextmanager
def _reading(entry: FoldEntry):
    try:
        yield
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CacheReadError(f"{entry.npz}: unreadable ({type(exc).__name__}: {exc})") from exc


def write_failure_report(path: Path, failures: Iterable[Failure]) -> None:
    def write(fh) -> None:
        text = io.TextIOWrapper(fh, newline="", encoding="utf-8")
        writer = csv.writer(text)
        writer.writerow(["file", "fold", "row", "reason"])
        for f in failures:
            writer.writerow([f.file, f.fold, f.row, f.reason])
        text.flush()
        text.detach()

    atomic_write(path, write)


def read_failure_report(path: Path) -> list[Failure]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [
            Failure(r["file"], int(r["fold"]), int(r["row"]), r["reason"]) for r in csv.DictReader(fh)
        ]


def cache_bytes_needed(cache_dir: Path, config: FeatureConfig, folds: dict[int, tuple[int, str]]) -> int:
    """Disk the cache will take for the folds (fold -> (clips, fold fingerprint)) it lacks:
    float32 features plus names and per-fold files, rounded up."""
    per_clip = int(np.prod(config.shape)) * 4 + 256
    return sum(clips * per_clip + 64 * 1024 for fold, (clips, fingerprint) in folds.items()
               if not fold_entry(cache_dir, config, fold, fingerprint).exists())


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
    atomic_write(path, lambda fh: fh.write(text.encode()))


_HOST = socket.gethostname().replace(".", "_")


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], object]) -> None:
    """Write ``path`` through a temporary file in its folder, flushed to disk, then renamed.

    A reader sees the old file or the whole new one. On any failure the temporary file is
    removed; an ``OSError`` (disk full, no permission) becomes a ``CacheWriteError`` naming
    ``path``. The temporary name carries host and pid, so ``remove_stale_temp_files`` can tell
    the leftovers of a killed process from a live writer's file.
    """
    tmp = path.with_name(f"{path.name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, CacheWriteError):
            raise CacheWriteError(path, exc) from exc
        raise


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Remove the temporary files that writers on this machine left when they were killed
    (their process is gone); returns them. Other machines' and live writers' files stay."""
    removed = []
    for tmp in Path(directory).glob(f"*.{_HOST}.*.tmp") if Path(directory).is_dir() else ():
        parts = tmp.name.rsplit(".", 4)  # <name>.<host>.<pid>.<random>.tmp
        if len(parts) == 5 and parts[1] == _HOST and parts[2].isdigit() and not _alive(int(parts[2])):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
