"""Augmented variants of every clip as Ray tasks, cached per fold (the Ray side of
``features.augment``).

``augment_features`` runs exactly like base extraction (``features.extract``): the same batch
driver (batches of clips on every CPU of the cluster, about two in flight per CPU, a byte budget
for audio shipped through the object store, a progress bar, a batch whose worker crashes retried
clip by clip), the same per-fold failure report, and a content-keyed cache
(``features.cache.augmented_entry``: augmentation config x feature config x the fold's file
list). A second run with the same key reads the cache and computes nothing
(``AugmentationResult.augmented_clips == 0``).

Only clips whose base features were extracted are augmented; background-noise partners
(noise_source ``clips``) are drawn, seeded, from the other recordings of the clip's own fold
and travel with the clip (path, or bytes on a multi-node cluster). Batches are small (at most
``MAX_BATCH`` clips): a clip with a dozen variants costs about a CPU-second.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.augment import AugmentConfig, clip_variants, noise_partner
from features.cache import (
    Failure,
    FoldEntry,
    augmented_entry,
    concat_augmented,
    default_cache_dir,
    read_augmented_fold,
    remove_stale_temp_files,
    write_augmented_fold,
)
from features.config import FeatureConfig
from features.dataset import DatasetIndex
from features.extract import (
    BatchJob,
    Transport,
    _FoldTracker,
    _read_bytes,
    _run_ray_extraction,
    describe_failures,
    load_cached_folds,
)
from features.featureset import AugmentedRows, FeatureSet
from features.logmel import AudioDecodeError

MAX_BATCH = 16


@dataclass(frozen=True)
class AugmentationResult:
    rows: AugmentedRows
    failures: tuple[Failure, ...]
    augmented_clips: int  # clips augmented in this run (0 on a full cache hit)
    cached_folds: tuple[int, ...]
    augmented_folds: tuple[int, ...]
    seconds: float
    entries: tuple[FoldEntry, ...]
    nodes: tuple[str, ...] = ()

    @property
    def clips_per_second(self) -> float:
        return self.augmented_clips / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        mib = self.rows.features.nbytes / 2**20
        lines = [f"augmented: {len(self.rows)} rows ({self.rows.features.dtype}, {mib:.0f} MiB) "
                 f"from {len(set(self.rows.file_names.tolist()))} clips ({len(self.failures)} failed)"]
        if self.augmented_folds:
            lines.append(f"augmented {self.augmented_clips} clips of folds {', '.join(map(str, self.augmented_folds))} "
                         f"in {self.seconds:.1f} s ({self.clips_per_second:.2f} clips/s) on {len(self.nodes)} node(s)")
        if self.cached_folds:
            lines.append(f"augmented rows loaded from cache: folds {', '.join(map(str, self.cached_folds))}")
        if self.failures:
            lines.extend(describe_failures(self.failures, [e.failures_csv for e in self.entries if any(f.fold == e.fold for f in self.failures)]))
        if self.entries:
            lines.append(f"augmentation cache: {self.entries[0].directory}")
        return "\n".join(lines)


def augment_features(
    index: DatasetIndex,
    config: FeatureConfig,
    augment: AugmentConfig,
    base: FeatureSet,
    cache_dir: Path | None = None,
    *,
    force: bool = False,
    batch_size: int | None = None,
    transport: Transport = "auto",
    progress: bool = True,
    max_bytes_in_flight: int | None = None,
) -> AugmentationResult:
    """Augmented rows of every fold of ``index`` whose clips are in ``base``: from the cache, or
    computed with Ray tasks for the folds it lacks."""
    if augment.empty:
        raise ValueError("augment_features: the augmentation config defines no variant")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    started = time.perf_counter()
    entries = {f: augmented_entry(cache_dir, config, augment, f, _fold_fingerprint(index, f)) for f in index.folds}
    if entries:
        remove_stale_temp_files(next(iter(entries.values())).directory)
    parts = {} if force else load_cached_folds(entries, read_augmented_fold)
    todo = [f for f in index.folds if f not in parts]
    clips, nodes = 0, set()
    if todo:
        table = index.table
        rows = table[table["fold"].isin(todo) & table["slice_file_name"].isin(set(base.file_names.tolist()))]
        rows = rows.sort_values("fold", kind="stable").reset_index(drop=True)
        clips = len(rows)

        def on_fold_done(fold: int, fold_rows: AugmentedRows, failures: list[Failure], seconds: float) -> None:
            info = {"dataset_root": str(index.root), "seconds": seconds, "clips": int((rows["fold"] == fold).sum())}
            write_augmented_fold(entries[fold], config, augment, fold_rows, failures, info)
            parts[fold] = (fold_rows, failures)

        options = {"batch_size": batch_size, "transport": transport, "progress": progress,
                   "max_bytes_in_flight": max_bytes_in_flight}
        if len(rows):
            nodes = _run_ray_extraction(rows, config, todo, on_fold_done, options, _job(rows, config, augment))
        for fold in todo:  # a fold none of whose clips had base features
            parts.setdefault(fold, (_AugTracker.empty(config, augment), []))
    ordered = [parts[f] for f in index.folds]
    return AugmentationResult(
        rows=concat_augmented([p[0] for p in ordered], config, augment.storage),
        failures=tuple(f for p in ordered for f in p[1]),
        augmented_clips=clips,
        cached_folds=tuple(f for f in index.folds if f not in todo),
        augmented_folds=tuple(todo),
        seconds=time.perf_counter() - started,
        entries=tuple(entries[f] for f in index.folds),
        nodes=tuple(sorted(nodes)),
    )


def with_augmented(featureset: FeatureSet, rows: AugmentedRows) -> FeatureSet:
    """``featureset`` carrying ``rows`` as its augmented training candidates."""
    return dataclasses.replace(featureset, augmented=rows)


def _fold_fingerprint(index: DatasetIndex, fold: int) -> str:
    return dataclasses.replace(index, table=index.table[index.table["fold"] == fold]).fingerprint()


# ---------------------------------------------------------------------------------------------
# The plan (driver side): which variants and background partners each clip gets.


@dataclass(frozen=True)
class _Plan:
    names: list[list[str]]  # per row: variant names, in order
    mixed_with: list[list[str]]  # per row: partner file name per variant ("" if none)
    partner_paths: list[dict[str, str]]  # per row: variant name -> partner path


def plan_rows(rows, augment: AugmentConfig) -> _Plan:
    """Variants and partners of every row of ``rows`` (sorted table of the clips to augment)."""
    names, mixed, partners = [], [], []
    pools: dict[int, list[tuple[str, int, str]]] = {}
    for fold, group in rows.groupby("fold"):
        pools[int(fold)] = sorted(zip(group["slice_file_name"], group["fsID"], group["path"], strict=True))
    for name, fold, fs_id in zip(rows["slice_file_name"], rows["fold"], rows["fsID"], strict=True):
        chosen = clip_variants(augment, name)
        by_name = {}
        if augment.noise_source == "clips" and any(v.kind == "bg" for v in chosen):
            candidates = [(n, p) for n, f, p in pools[int(fold)] if f != fs_id]
            lookup = dict(candidates)
            for v in chosen:
                if v.kind == "bg":
                    partner = noise_partner(augment, name, v, [n for n, _ in candidates])
                    by_name[v.name] = (partner, lookup[partner])
        names.append([v.name for v in chosen])
        mixed.append([by_name[v.name][0] if v.name in by_name else "" for v in chosen])
        partners.append({k: p for k, (_, p) in by_name.items()})
    return _Plan(names, mixed, partners)


def _job(rows, config: FeatureConfig, augment: AugmentConfig) -> BatchJob:
    plan = plan_rows(rows, augment)
    keys = rows["slice_file_name"].tolist()

    def extra(i: int, transport: str) -> tuple:
        partners = plan.partner_paths[i]
        if transport == "bytes":
            partners = {k: _read_bytes(p) for k, p in partners.items()}
        return keys[i], partners

    return BatchJob(
        remote=_remote_augment_task(),
        payload={"features": config.to_dict(), "augment": augment.to_dict()},
        extra=extra,
        desc="augmenting",
        make_tracker=functools.partial(_AugTracker, plan=plan, augment=augment),
        min_batch=1,  # a clip is ~a CPU-second of work: even a few clips are spread over every CPU
        max_batch=MAX_BATCH,
    )


# ---------------------------------------------------------------------------------------------
# Inside a Ray task.


def augment_batch(items: Sequence[tuple], config: FeatureConfig, augment: AugmentConfig):
    """(ids, (n, variants, rows, frames) features, failures) of items (id, source, key, partners)."""
    from features.augment import augment_clip

    ids, feats, failed = [], [], []
    for item_id, source, key, partners in items:
        try:
            feats.append(augment_clip(source, config, augment, key, partners)[1])
            ids.append(item_id)
        except AudioDecodeError as exc:
            failed.append((item_id, exc.reason))
        except Exception as exc:
            failed.append((item_id, f"augmentation failed: {type(exc).__name__}: {exc}"))
    shape = (0, augment.per_clip, *config.shape)
    return np.asarray(ids, np.int64), np.stack(feats) if feats else np.zeros(shape, augment.storage), failed


@functools.cache
def _remote_augment_task():
    import ray

    return ray.remote(num_cpus=1)(_augment_batch_task)


def _augment_batch_task(items, payload):
    import ray

    config, augment = FeatureConfig.from_dict(payload["features"]), AugmentConfig.from_dict(payload["augment"])
    return (*augment_batch(items, config, augment), ray.get_runtime_context().get_node_id())


class _AugTracker(_FoldTracker):
    """Collects per-clip variant blocks; a finished fold becomes ``AugmentedRows``."""

    def __init__(self, rows, folds, shape, on_fold_done, *, plan: _Plan, augment: AugmentConfig) -> None:
        super().__init__(rows, folds, shape, on_fold_done)
        self.plan, self.augment = plan, augment

    @staticmethod
    def empty(config: FeatureConfig, augment: AugmentConfig) -> AugmentedRows:
        from features.cache import empty_augmented

        return empty_augmented(config, augment.storage)

    def _finish(self, fold: int) -> None:
        members = np.flatnonzero(self.fold_of == fold)
        ok = [i for i in members if i in self.features]
        blocks = [self.features.pop(i) for i in ok]
        counts = [len(b) for b in blocks]
        src = self.rows.iloc[np.repeat(ok, counts)] if ok else self.rows.iloc[[]]
        fold_rows = AugmentedRows(
            features=np.concatenate(blocks) if blocks else np.zeros((0, *self.shape), self.augment.storage),
            labels=src["classID"].to_numpy(np.int64),
            folds=src["fold"].to_numpy(np.int64),
            fs_ids=src["fsID"].to_numpy(np.int64),
            file_names=src["slice_file_name"].to_numpy(str),
            augmentation=np.asarray([n for i in ok for n in self.plan.names[i]], dtype=str),
            mixed_with=np.asarray([m for i in ok for m in self.plan.mixed_with[i]], dtype=str),
        )
        failures = [
            Failure(str(self.rows.at[i, "path"]), fold, int(self.rows.at[i, "row"]), self.failed.pop(i))
            for i in members
            if i in self.failed
        ]
        self.on_fold_done(fold, fold_rows, failures, time.perf_counter() - self.started)
