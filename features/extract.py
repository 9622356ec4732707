"""python -m features.extract --data-dir DIR [--folds 1,2,10] [--cache-dir DIR] [--force]

Extract log-mel features of an UrbanSound8K tree with Ray tasks on every core of the cluster
``ray.init()`` connects to (``--address`` or ``RAY_ADDRESS``; a local one otherwise), into the
feature cache (see ``features.cache``). Runtime: the synthetic demo set (300 clips) takes about 4 s
on 2 cores, nearly all of it Ray starting its workers; the real 8,732 clips should take ~20 CPU-seconds
(1.5 ms per 4 s clip at 44.1 kHz on the synthetic set, more at 96/192 kHz; an estimate, not
measured on real data). A second run with the same config and files loads the cache and
extracts nothing.

Clips travel in batches (one task per batch, not per clip). On a multi-node cluster the driver
ships each clip's bytes through the object store, so no shared filesystem is assumed; the
features come back the same way. A clip that cannot be decoded is listed in the fold's failure
report and left out; a batch whose worker crashes is retried clip by clip to isolate the culprit.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from features.cache import (
    CacheReadError,
    CacheWriteError,
    Failure,
    FoldEntry,
    cache_bytes_needed,
    concat,
    default_cache_dir,
    fold_entry,
    read_fold,
    remove_stale_temp_files,
    write_fold,
)
from features.config import FeatureConfig
from features.dataset import DatasetError, DatasetIndex, load_dataset
from features.featureset import FeatureSet
from features.logmel import AudioDecodeError, extract_clip
from features.writable import FolderError, check_folder

Transport = Literal["auto", "path", "bytes"]

# Audio shipped through the object store and not yet processed, at most (bytes transport):
# 32 MiB per cluster CPU (~50 real clips of 0.1-4.6 MB, 0.65 MB on average: a batch or two per
# CPU), at least 256 MiB. Without a cap a large cluster would queue gigabytes of WAVs in the
# head's object store; with a fixed cap it would leave most of its CPUs idle.
MAX_BYTES_IN_FLIGHT_PER_CPU = 32 * 2**20
MIN_BYTES_IN_FLIGHT = 256 * 2**20


@dataclass(frozen=True)
class ExtractionResult:
    """Features of every successfully decoded clip, the failures, and what the run did."""

    featureset: FeatureSet
    failures: tuple[Failure, ...]
    extracted_clips: int  # clips decoded in this run (0 on a full cache hit)
    cached_folds: tuple[int, ...]
    extracted_folds: tuple[int, ...]
    seconds: float
    entries: tuple[FoldEntry, ...]
    nodes: tuple[str, ...] = ()  # Ray node ids that ran extraction tasks in this run

    @property
    def clips_per_second(self) -> float:
        return self.extracted_clips / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        lines = [
            f"features: {len(self.featureset)} clips x {self.featureset.features.shape[1:]} "
            f"({len(self.failures)} failed) from folds "
            f"{', '.join(map(str, sorted(set(self.cached_folds) | set(self.extracted_folds))))}",
        ]
        if self.extracted_folds:
            lines.append(
                f"extracted {self.extracted_clips} clips of folds {', '.join(map(str, self.extracted_folds))} "
                f"in {self.seconds:.1f} s ({self.clips_per_second:.1f} clips/s) on {len(self.nodes)} node(s)"
            )
        if self.cached_folds:
            lines.append(f"loaded from cache (no extraction): folds {', '.join(map(str, self.cached_folds))}")
        if self.failures:
            reports = [e.failures_csv for e in self.entries if _has_failures(e, self.failures)]
            lines.extend(describe_failures(self.failures, reports))
        if self.entries:
            lines.append(f"cache: {self.entries[0].directory}")
        return "\n".join(lines)


FAILURE_HINT = (
    "what to do: nothing, to go on without them (the rest is cached); or replace them from the "
    "UrbanSound8K archive (or delete their CSV lines) and run again: only their folds are redone"
)
SHOWN_FAILURES = 5


def describe_failures(failures: Sequence[Failure], reports: Sequence[Path]) -> list[str]:
    """What the user reads about clips left out: each file, its CSV line, why, what to do."""
    lines = [f"{len(failures)} clip(s) left out, they cannot be used as audio:"]
    lines.extend(f"  {f.file} (CSV line {f.row}, fold {f.fold}): {f.reason}" for f in failures[:SHOWN_FAILURES])
    if len(failures) > SHOWN_FAILURES:
        lines.append(f"  ... and {len(failures) - SHOWN_FAILURES} more")
    lines.extend(f"  all of them, per fold: {r}" for r in reports)
    lines.append(f"  {FAILURE_HINT}")
    return lines


def _has_failures(entry: FoldEntry, failures: Sequence[Failure]) -> bool:
    return any(f.fold == entry.fold for f in failures)


# ---------------------------------------------------------------------------------------------
# Work done inside a Ray task (plain functions: testable without Ray).


def extract_batch(
    items: Sequence[tuple[int, str | bytes]], config: FeatureConfig
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Features of a batch of (item id, path-or-bytes); undecodable clips come back as failures."""
    ids, feats, failed = [], [], []
    for item_id, source in items:
        try:
            feats.append(extract_clip(source, config))
            ids.append(item_id)
        except AudioDecodeError as exc:
            failed.append((item_id, exc.reason))
        except Exception as exc:
            failed.append((item_id, f"{type(exc).__name__}: {exc}"))
    stacked = np.stack(feats) if feats else np.zeros((0, *config.shape), np.float32)
    return np.asarray(ids, np.int64), stacked, failed


# ---------------------------------------------------------------------------------------------
# Driver side.


def extract_features(
    index: DatasetIndex,
    config: FeatureConfig,
    cache_dir: Path | None = None,
    *,
    force: bool = False,
    batch_size: int | None = None,
    transport: Transport = "auto",
    progress: bool = True,
    max_bytes_in_flight: int | None = None,
) -> ExtractionResult:
    """Load every fold of ``index`` from the cache, extracting the missing ones with Ray tasks."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    started = time.perf_counter()
    entries = {f: fold_entry(cache_dir, config, f, _fold_index(index, f).fingerprint()) for f in index.folds}
    if entries:
        remove_stale_temp_files(next(iter(entries.values())).directory)
    parts = {} if force else load_cached_folds(entries, read_fold)
    todo = [f for f in index.folds if f not in parts]
    extracted, nodes = 0, set()
    if todo:
        rows = index.table[index.table["fold"].isin(todo)]
        extracted = len(rows)

        def on_fold_done(fold: int, fs: FeatureSet, failures: list[Failure], seconds: float) -> None:
            write_fold(entries[fold], config, fs, failures, {"dataset_root": str(index.root), "seconds": seconds})
            parts[fold] = (fs, failures)

        options = {"batch_size": batch_size, "transport": transport, "progress": progress,
                   "max_bytes_in_flight": max_bytes_in_flight}
        nodes = _run_ray_extraction(rows, config, todo, on_fold_done, options)
    ordered = [parts[f] for f in index.folds]
    return ExtractionResult(
        featureset=concat([p[0] for p in ordered], config),
        failures=tuple(f for p in ordered for f in p[1]),
        extracted_clips=extracted,
        cached_folds=tuple(f for f in index.folds if f not in todo),
        extracted_folds=tuple(todo),
        seconds=time.perf_counter() - started,
        entries=tuple(entries[f] for f in index.folds),
        nodes=tuple(sorted(nodes)),
    )


def load_cached_folds(entries: dict[int, FoldEntry], read: Callable[[FoldEntry], Any]) -> dict[int, Any]:
    """The folds whose cache entry is complete and readable. A damaged one (a disk error, or
    a file another tool cut short) is reported and left out, so it is extracted again."""
    parts = {}
    for fold, entry in entries.items():
        if not entry.exists():
            continue
        try:
            parts[fold] = read(entry)
        except CacheReadError as exc:
            print(f"warning: {exc}; extracting fold {fold} again", file=sys.stderr)
    return parts


def _fold_index(index: DatasetIndex, fold: int) -> DatasetIndex:
    return dataclasses.replace(index, table=index.table[index.table["fold"] == fold])


@dataclass(frozen=True)
class _Run:
    """One extraction run's settings, resolved against the cluster."""

    config: FeatureConfig
    cpus: int
    transport: Transport
    batch_size: int
    max_bytes_in_flight: int
    progress: bool


def _run_ray_extraction(
    rows,
    config: FeatureConfig,
    folds: Sequence[int],
    on_fold_done: Callable[[int, FeatureSet, list[Failure], float], None],
    options: dict,
    job: BatchJob | None = None,
) -> set[str]:
    """Run the batches; returns the ids of the nodes that ran them.

    ``options``: batch_size, transport, progress, max_bytes_in_flight (None = automatic).
    ``job``: what each batch task does (default: base feature extraction).
    """
    import ray

    if not ray.is_initialized():
        ray.init()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Fold by fold (the real CSV interleaves folds): each fold is complete, and written to the
    # cache, while later folds are still being extracted, instead of all ten at the very end.
    rows = rows.sort_values("fold", kind="stable").reset_index(drop=True)
    job = job or BatchJob(_remote_batch_task(), config.to_dict())
    run = _Run(
        config,
        cpus,
        _auto_transport() if options["transport"] == "auto" else options["transport"],
        options["batch_size"] or job.batch_size(len(rows), cpus),
        options["max_bytes_in_flight"] or bytes_budget(cpus),
        options["progress"],
    )
    tracker = job.tracker(rows, folds, config.shape, on_fold_done)
    return _drive_batches(rows["path"].tolist(), run, tracker, job)


@dataclass(frozen=True)
class BatchJob:
    """What the batch tasks of a run compute.

    ``remote(items, payload)`` returns (item ids, per-item arrays, failures, node id); items
    are ``(id, path-or-bytes, *extra(id, transport))``; ``payload`` is put in the object store
    once per run. ``make_tracker`` builds the per-fold collector (default ``_FoldTracker``).
    """

    remote: Any
    payload: Any
    extra: Callable[[int, str], tuple] | None = None
    desc: str = "extracting"
    make_tracker: Callable[..., Any] | None = None
    min_batch: int = 8
    max_batch: int = 128

    def batch_size(self, n: int, cpus: int) -> int:
        """About two batches per CPU, within [min_batch, max_batch] (``auto_batch_size``)."""
        return int(np.clip(-(-n // (2 * cpus)), self.min_batch, self.max_batch))

    def tracker(self, rows, folds, shape, on_fold_done):
        return (self.make_tracker or _FoldTracker)(rows, folds, shape, on_fold_done)


def _drive_batches(paths: list[str], run: _Run, tracker: _FoldTracker, job: BatchJob) -> set[str]:
    """Keep about two batches per CPU in flight within the byte budget; isolate crashing clips."""
    import ray

    payload_ref = ray.put(job.payload)
    pending: dict = {}  # object ref -> (row ids, audio bytes shipped)

    def submit(ids: list[int], **task_options) -> None:
        items = [(i, _read_bytes(paths[i]) if run.transport == "bytes" else paths[i],
                  *(job.extra(i, run.transport) if job.extra else ())) for i in ids]
        shipped = sum(_shipped_bytes(item[1:]) for item in items)
        pending[job.remote.options(**task_options).remote(items, payload_ref)] = (ids, shipped)

    queue = [list(range(start, min(start + run.batch_size, len(paths))))
             for start in range(0, len(paths), run.batch_size)][::-1]
    bar = _progress_bar(len(paths), run.progress, job.desc)
    nodes: set[str] = set()
    while queue or pending:
        while queue and may_submit(len(pending), sum(b for _, b in pending.values()), run.cpus, run.max_bytes_in_flight):
            submit(queue.pop())
        done, _ = ray.wait(list(pending), num_returns=1)
        ids, _ = pending.pop(done[0])
        try:
            got_ids, feats, failed, node = ray.get(done[0])
            nodes.add(node)
        except (ray.exceptions.RayError, OSError) as exc:
            if len(ids) > 1:  # isolate the clip that crashed the worker: retry one by one
                for i in ids:
                    submit([i], max_retries=0)
                continue
            got_ids, feats, failed = np.zeros(0, np.int64), None, [(ids[0], _crash_reason(exc))]
        tracker.add(got_ids, feats, failed)
        bar.update(len(ids))
    bar.close()
    return nodes


def _shipped_bytes(value: Any) -> int:
    """Audio bytes inside an item's fields (clip bytes, and partner clips' bytes nested in dicts)."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, dict):
        return sum(_shipped_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_shipped_bytes(v) for v in value)
    return 0


def may_submit(pending: int, pending_bytes: int, cpus: int, max_bytes: int) -> bool:
    """Whether another batch may go out: two per CPU keep every core busy, and shipped audio
    bytes stay under ``max_bytes`` (they sit in the object store until a worker is done:
    a large cluster would otherwise hold gigabytes of WAVs there). One batch always may."""
    return pending == 0 or (pending < 2 * cpus and pending_bytes < max_bytes)


def bytes_budget(cpus: int) -> int:
    """Default cap on shipped, unprocessed audio bytes for a cluster of ``cpus`` CPUs."""
    return max(MIN_BYTES_IN_FLIGHT, MAX_BYTES_IN_FLIGHT_PER_CPU * cpus)


def auto_batch_size(n: int, cpus: int) -> int:
    """About two batches per CPU, 8..128 clips each.

    Between two batches a worker waits for a round trip through the driver (its result in,
    the next task out): ~5 ms on a busy 2-core node, as long as decoding 3 clips. Two batches
    per CPU measured faster than four on the benchmark (1,156 vs 1,074 clips/s, 500 clips on 2
    CPUs); the 128 cap bounds the last batch's tail (~0.2-0.4 s of real clips) on large sets.
    """
    return int(np.clip(-(-n // (2 * cpus)), 8, 128))


def _auto_transport() -> Transport:
    """Paths only when every task must run on this machine: one alive node, ours, with CPUs.

    Otherwise (several nodes, or a CPU-less head whose workers an autoscaler adds later) the
    workers may not see this filesystem, so the bytes travel through the object store.
    """
    import ray

    alive = [n for n in ray.nodes() if n["Alive"]]
    here = ray.get_runtime_context().get_node_id()
    local_only = len(alive) == 1 and alive[0]["NodeID"] == here and alive[0]["Resources"].get("CPU", 0) > 0
    return "path" if local_only else "bytes"


@functools.cache
def _remote_batch_task():
    """One remote function per process: a new one per call would be exported to the cluster again."""
    import ray

    return ray.remote(num_cpus=1)(_extract_batch_task)


def _extract_batch_task(items, config_dict):
    import ray

    return (*extract_batch(items, FeatureConfig.from_dict(config_dict)), ray.get_runtime_context().get_node_id())


def _read_bytes(path: str) -> bytes | str:
    # An unreadable file is a per-clip failure; sending the path lets the worker report why.
    try:
        return Path(path).read_bytes()
    except OSError:
        return path


def _crash_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"worker crashed while decoding this clip ({type(exc).__name__}: {text[0] if text else ''})"


def _progress_bar(total: int, enabled: bool, desc: str = "extracting"):
    from tqdm import tqdm

    return tqdm(total=total, unit="clip", desc=desc, disable=not enabled, file=sys.stderr)


class _FoldTracker:
    """Collects batch results and hands each fold over as soon as all its clips are back."""

    def __init__(self, rows, folds: Sequence[int], shape: tuple[int, int], on_fold_done) -> None:
        self.rows = rows
        self.shape = shape
        self.fold_of = rows["fold"].to_numpy()
        self.remaining = {f: int((self.fold_of == f).sum()) for f in folds}
        self.features: dict[int, np.ndarray] = {}
        self.failed: dict[int, str] = {}
        self.on_fold_done = on_fold_done
        self.started = time.perf_counter()

    def add(self, ids: np.ndarray, feats: np.ndarray | None, failed: list[tuple[int, str]]) -> None:
        for i, f in zip(ids.tolist(), feats if feats is not None else [], strict=True):
            self.features[i] = f
        self.failed.update(dict(failed))
        for i in [*ids.tolist(), *(i for i, _ in failed)]:
            fold = int(self.fold_of[i])
            self.remaining[fold] -= 1
            if self.remaining[fold] == 0:
                self._finish(fold)

    def _finish(self, fold: int) -> None:
        members = np.flatnonzero(self.fold_of == fold)
        ok = [i for i in members if i in self.features]
        rows = self.rows.iloc[ok]
        fs = FeatureSet(
            features=np.stack([self.features.pop(i) for i in ok]) if ok else np.zeros((0, *self.shape), np.float32),
            labels=rows["classID"].to_numpy(np.int64),
            folds=rows["fold"].to_numpy(np.int64),
            fs_ids=rows["fsID"].to_numpy(np.int64),
            file_names=rows["slice_file_name"].to_numpy(str),
        )
        failures = [
            Failure(str(self.rows.at[i, "path"]), fold, int(self.rows.at[i, "row"]), self.failed.pop(i))
            for i in members
            if i in self.failed
        ]
        self.on_fold_done(fold, fs, failures, time.perf_counter() - self.started)


# ---------------------------------------------------------------------------------------------
# Command line.


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m features.extract", description=__doc__.split("\n\n")[1])
    p.add_argument("--data-dir", required=True, type=Path, help="UrbanSound8K root (has metadata/ and audio/)")
    p.add_argument("--folds", default=None, help="fold subset, e.g. 1,2,10 or 1-3 (default: all)")
    p.add_argument("--cache-dir", type=Path, default=None, help=f"feature cache root (default: {default_cache_dir()})")
    p.add_argument("--force", action="store_true", help="re-extract even when the cache has these folds")
    p.add_argument("--skip-missing", action="store_true", help="proceed when audio files are missing (reported)")
    p.add_argument("--recipe", choices=["seed", "corrected"], default="seed", help="seed = the reference demo's")
    p.add_argument("--kind", choices=["logmel", "mfcc"], default="logmel")
    p.add_argument("--batch-size", type=int, default=None, help="clips per Ray task (default: auto)")
    p.add_argument("--transport", choices=["auto", "path", "bytes"], default="auto",
                   help="how clips reach workers: bytes through the object store (default on multi-node "
                        "clusters) or paths (one machine, or a filesystem shared by all nodes)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: ray.init()'s own)")
    return p


def check_cache_folder(index: DatasetIndex, config: FeatureConfig, cache_dir: Path) -> None:
    """Before any compute: the cache folder takes a write, and its disk has room for the folds
    the cache lacks (raises ``FolderError`` saying which folder and why)."""
    folds = {f: (len(sub), sub.fingerprint()) for f in index.folds for sub in [_fold_index(index, f)]}
    check_folder(cache_dir, "feature cache folder", CACHE_FIX, cache_bytes_needed(cache_dir, config, folds))


CACHE_FIX = "choose another with --cache-dir (or $US8K_CACHE_DIR)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = FeatureConfig(recipe=args.recipe, kind=args.kind)
    cache_dir = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    try:
        index = load_dataset(args.data_dir, folds=args.folds, skip_missing=args.skip_missing)
        check_cache_folder(index, config, cache_dir)
    except (DatasetError, FolderError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in index.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.address:
        import ray

        ray.init(address=args.address)
    try:
        result = extract_features(
            index, config, cache_dir, force=args.force, batch_size=args.batch_size, transport=args.transport
        )
    except CacheWriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
