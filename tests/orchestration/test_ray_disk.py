"""Ray's out-of-disk protection: the disk figures as Ray counts them, the early warning, and a
sweep whose object store is full with spilling refused ending in a clear error (a real Ray
head with a small store and ``local_fs_capacity_threshold`` 0, so that spilling is refused
whatever the disk; the CI run of stop 22 failed this way with a disk 94% full by Ray's count)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.fault_scenarios import RayHead
from features.config import FeatureConfig
from features.dataset import load_dataset
from features.extract import extract_features
from orchestration.ray_disk import DiskUsage, disk_usage, disk_warning, session_disk

ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 1800  # only against hangs: never a speed expectation

# A driver that fills the head's object store until Ray refuses the next object, says so and
# keeps its objects until its stdin closes.
FILLER = """
import sys, numpy as np, ray
ray.init(address=sys.argv[1])
held = []
for size in (10 * 2**20, 2**20, 2**16 * 3):
    try:
        while True:
            held.append(ray.put(np.zeros(size, np.uint8)))
    except ray.exceptions.OutOfDiskError:
        pass
print("full", len(held), flush=True)
sys.stdin.read()
"""


def test_disk_usage_counts_as_ray_does(tmp_path):
    stat = os.statvfs(tmp_path)  # Ray: std::filesystem::space, 1 - available / capacity
    usage = disk_usage(str(tmp_path))
    assert usage.full == pytest.approx(1 - stat.f_bavail / stat.f_blocks, abs=0.01)
    assert usage.available_bytes == pytest.approx(stat.f_bavail * stat.f_frsize, rel=0.01)
    assert str(tmp_path) in usage.describe() and "GiB available" in usage.describe()


def test_warning_only_when_ray_is_close_to_refusing():
    assert disk_warning(DiskUsage("/data", 0.93, 7 * 2**30)).startswith("warning: the disk holding /data (93% full")
    assert disk_warning(DiskUsage("/data", 0.60, 70 * 2**30)) is None
    assert disk_warning(None) is None


def test_session_disk_is_the_disk_of_this_nodes_ray_session(ray_local):
    usage = session_disk()
    assert usage is not None and Path(usage.folder).is_dir() and "session_" in Path(usage.folder).name
    assert usage.full == pytest.approx(disk_usage(usage.folder).full, abs=0.01)


@pytest.mark.slow
def test_a_sweep_refused_by_rays_disk_protection_ends_with_what_to_do(tiny_dataset_root, tmp_path):
    store = ["--object-store-memory", str(80 * 2**20), "--system-config", '{"local_fs_capacity_threshold": 0, "automatic_object_spilling_enabled": false}']
    with RayHead(tmp_path, cpus=1, args=store) as head:
        env = {**{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TF_USE_LEGACY_KERAS")}, **head.env}
        filler = subprocess.Popen([sys.executable, "-c", FILLER, head.address], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        try:
            assert filler.stdout.readline().startswith("full"), "the filler ended before filling the store"
            cache, name = tmp_path / "cache", "diskfull"
            sweep = subprocess.run(
                [sys.executable, "-m", "orchestration.cv_sweep", "--address", head.address,
                 "--data-dir", str(tiny_dataset_root), "--folds", "1,2", "--epochs", "1", "--no-refit",
                 "--cache-dir", str(cache), "--storage-path", str(tmp_path / "ray"), "--name", name,
                 "--tracking-uri", f"sqlite:///{tmp_path}/m.db"],
                capture_output=True, text=True, env=env, cwd=ROOT, timeout=HANG_GUARD_S)
        finally:
            filler.communicate(timeout=60)
    assert sweep.returncode == 2, sweep.stderr[-4000:]
    assert "Traceback" not in sweep.stderr, sweep.stderr[-4000:]
    error = sweep.stderr.strip().splitlines()[-1]
    assert error.startswith("error: Ray refused to store an object: the object store is full and the disk holding ")
    assert f"{head.tmp}/ray/session_" in error and "% full as Ray counts it" in error
    assert f"feature cache ({cache})" in error and f"--resume {name}" in error
    # What was computed before the refusal is kept: every fold's features are in the cache.
    cached = extract_features(load_dataset(tiny_dataset_root), FeatureConfig(), cache, progress=False)
    assert cached.extracted_folds == () and len(cached.cached_folds) == 10, cached.summary()
