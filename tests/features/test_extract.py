"""Parallel extraction with Ray tasks: equals serial extraction, caches, survives bad clips."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from features.cache import read_failure_report
from features.config import FeatureConfig
from features.dataset import load_dataset
from features.extract import (
    auto_batch_size,
    bytes_budget,
    extract_batch,
    extract_features,
    main,
    may_submit,
)

CONFIG = FeatureConfig()


def _serial(index):
    items = list(enumerate(index.table["path"]))
    ids, feats, failed = extract_batch(items, CONFIG)
    assert not failed and ids.tolist() == list(range(len(items)))
    return feats


def test_parallel_extraction_equals_serial(ray_local, tiny_dataset, tmp_path):
    result = extract_features(tiny_dataset, CONFIG, tmp_path, batch_size=16, progress=False)
    assert result.extracted_clips == len(tiny_dataset) and not result.failures
    assert result.extracted_folds == tuple(range(1, 11)) and result.cached_folds == ()
    assert len(result.nodes) == 1  # the one local node
    fs = result.featureset
    table = tiny_dataset.table.sort_values("fold", kind="stable")
    assert fs.file_names.tolist() == table["slice_file_name"].tolist()
    assert fs.labels.tolist() == table["classID"].tolist()
    assert fs.fs_ids.tolist() == table["fsID"].tolist()
    assert fs.folds.tolist() == table["fold"].tolist()
    serial = _serial(tiny_dataset)
    order = {name: i for i, name in enumerate(tiny_dataset.table["slice_file_name"])}
    # Equal up to float32 rounding: Ray workers run BLAS on one thread, this process on several,
    # which changes the summation order of the mel projection.
    np.testing.assert_allclose(fs.features, serial[[order[n] for n in fs.file_names]], rtol=0, atol=1e-6)


def test_bytes_transport_equals_path_transport(ray_local, tiny_dataset, tmp_path):
    sub = load_dataset(tiny_dataset.root, folds=(3,))
    by_path = extract_features(sub, CONFIG, tmp_path / "p", transport="path", progress=False)
    by_bytes = extract_features(sub, CONFIG, tmp_path / "b", transport="bytes", progress=False)
    np.testing.assert_array_equal(by_path.featureset.features, by_bytes.featureset.features)


def test_second_run_hits_cache_and_force_rebuilds(ray_local, tiny_dataset, tmp_path):
    sub = load_dataset(tiny_dataset.root, folds=(1, 2))
    first = extract_features(sub, CONFIG, tmp_path, progress=False)
    npz = first.entries[0].npz
    stamp = npz.stat().st_mtime_ns
    second = extract_features(sub, CONFIG, tmp_path, progress=False)
    assert second.extracted_clips == 0 and second.cached_folds == (1, 2)
    assert npz.stat().st_mtime_ns == stamp  # nothing rewritten
    np.testing.assert_array_equal(first.featureset.features, second.featureset.features)
    # A fold subset computed earlier is reused by a larger run; only the new fold is extracted.
    larger = extract_features(load_dataset(tiny_dataset.root, folds=(1, 2, 3)), CONFIG, tmp_path, progress=False)
    assert larger.cached_folds == (1, 2) and larger.extracted_folds == (3,)
    forced = extract_features(sub, CONFIG, tmp_path, force=True, progress=False)
    assert forced.extracted_folds == (1, 2) and npz.stat().st_mtime_ns != stamp
    # Another feature config is another cache.
    other = extract_features(sub, FeatureConfig(recipe="corrected"), tmp_path, progress=False)
    assert other.extracted_folds == (1, 2)


def test_changed_file_misses_cache_for_its_fold_only(ray_local, tiny_dataset_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset_root, root)
    index = load_dataset(root, folds=(4, 5))
    extract_features(index, CONFIG, tmp_path / "cache", progress=False)
    victim = index.table[index.table["fold"] == 5]["path"].iloc[0]
    os.utime(victim, ns=(1_000_000_000, 1_000_000_000))
    again = extract_features(load_dataset(root, folds=(4, 5)), CONFIG, tmp_path / "cache", progress=False)
    assert again.cached_folds == (4,) and again.extracted_folds == (5,)


BAD_KINDS = {
    "corrupt_header": lambda good: good[:20] + b"\x63\x00" + good[22:],
    "truncated": lambda good: good[: len(good) // 2],
    "empty": lambda good: b"",
    "not_audio": lambda good: b"this is a text file, not a WAV\n" * 20,
}


def test_bad_clips_are_reported_and_skipped_rest_is_extracted(ray_local, tiny_dataset_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset_root, root)
    index = load_dataset(root, folds=(1, 2))
    fold1 = index.table[index.table["fold"] == 1]
    bad = {}
    for (kind, corrupt), path in zip(BAD_KINDS.items(), fold1["path"], strict=False):
        Path(path).write_bytes(corrupt(Path(path).read_bytes()))
        bad[path] = kind
    nan_path = fold1["path"].iloc[len(bad)]
    y, rate = sf.read(nan_path, dtype="float32")
    y[10] = np.nan
    sf.write(nan_path, y, rate, subtype="FLOAT")
    bad[nan_path] = "nan"

    result = extract_features(load_dataset(root, folds=(1, 2)), CONFIG, tmp_path / "cache", progress=False)
    assert len(result.featureset) == len(index) - len(bad)
    assert {f.file for f in result.failures} == set(bad)
    assert not set(result.featureset.file_names) & {os.path.basename(p) for p in bad}
    reasons = {f.file: f.reason for f in result.failures}
    assert "truncated" in reasons[next(p for p, k in bad.items() if k == "truncated")]
    assert "NaN" in reasons[nan_path]
    # The report next to the cache lists each failure with its CSV row.
    report = read_failure_report(result.entries[0].failures_csv)
    assert {f.file for f in report} == set(bad)
    rows = pd.Series(index.table["row"].values, index=index.table["path"].values)
    assert all(f.row == rows[f.file] for f in report)
    assert not read_failure_report(result.entries[1].failures_csv)


def test_cli_extracts_then_reports_cache_hit(ray_local, tiny_dataset_root, tmp_path, capsys):
    args = ["--data-dir", str(tiny_dataset_root), "--folds", "6,7", "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "extracted 40 clips of folds 6, 7" in out and "clips/s" in out
    assert main(args) == 0
    assert "loaded from cache (no extraction): folds 6, 7" in capsys.readouterr().out


def test_cli_rejects_bad_folds_before_any_work(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), "--folds", "0,3"]) == 2
    assert "fold 0" in capsys.readouterr().err


@pytest.mark.parametrize("folds", ["11", "x"])
def test_cli_bad_fold_values(tmp_path, capsys, folds):
    assert main(["--data-dir", str(tmp_path), "--folds", folds]) == 2
    assert "fold" in capsys.readouterr().err


def test_submission_keeps_cores_busy_within_the_byte_budget():
    assert may_submit(0, 10**12, cpus=4, max_bytes=1)  # one batch always goes out
    assert may_submit(7, 0, cpus=4, max_bytes=100)
    assert not may_submit(8, 0, cpus=4, max_bytes=100)  # two per CPU
    assert not may_submit(1, 100, cpus=4, max_bytes=100)  # over the byte budget


def test_byte_budget_scales_with_the_cluster_so_large_clusters_stay_busy():
    assert bytes_budget(2) == 256 * 2**20  # the floor
    assert bytes_budget(64) == 64 * 32 * 2**20  # ~50 real clips per CPU, not 6 batches in all


def test_auto_batch_size_is_two_per_cpu_within_bounds():
    assert auto_batch_size(500, 2) == 125
    assert auto_batch_size(8_732, 2) == 128  # the cap keeps the last batch's tail short
    assert auto_batch_size(8_732, 64) == 69
    assert auto_batch_size(30, 8) == 8  # never fewer than 8 clips per task
    assert auto_batch_size(1, 1) == 8


def test_a_one_byte_budget_ships_one_batch_at_a_time_and_loses_nothing(ray_local, tiny_dataset, tmp_path):
    sub = load_dataset(tiny_dataset.root, folds=(3,))
    free = extract_features(sub, CONFIG, tmp_path / "a", transport="bytes", progress=False, batch_size=4)
    tight = extract_features(sub, CONFIG, tmp_path / "b", transport="bytes", progress=False, batch_size=4,
                             max_bytes_in_flight=1)
    np.testing.assert_array_equal(free.featureset.features, tight.featureset.features)
    assert list(tight.featureset.file_names) == list(free.featureset.file_names)
    assert len(tight.featureset) + len(tight.failures) == len(sub.table)
