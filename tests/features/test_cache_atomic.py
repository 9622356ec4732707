"""Atomic cache writes, proven on real processes: an extraction driver (`python -m
features.extract`, connected to the session's local Ray cluster, which survives it) is SIGKILLed
while it writes a fold file, or between two folds; the next run never reads a half-written file, reuses every fold already
written, and extracts only the rest. A write that fails (a full disk, a real tmpfs) leaves no
partial file and names the path.

The child pauses at the chosen point (a wrapper around numpy's array writer, or around
``write_fold``, that prints PAUSED and waits on stdin) and is killed there: the kill lands at
that point on any machine, fast or slow.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from features.cache import (
    _HOST,
    CacheWriteError,
    fold_entry,
    read_fold,
    remove_stale_temp_files,
    write_fold,
)
from features.config import FeatureConfig
from features.dataset import load_dataset
from features.extract import extract_features
from features.toy import make_toy_featureset

ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 900  # only against a hang: the child connects to Ray, then extracts 60 clips
CONFIG = FeatureConfig()
FOLDS = (1, 2, 3)

_CHILD = r"""
import os, sys
import numpy.lib.format as fmt
from features import extract

where, argv = sys.argv[1], sys.argv[2:]

def pause(what):
    print("PAUSED " + what, flush=True)
    sys.stdin.readline()  # killed here
    os._exit(3)

if where == "between-folds":
    real_write_fold = extract.write_fold
    def write_fold(entry, *args, **kwargs):
        real_write_fold(entry, *args, **kwargs)
        pause(f"fold {entry.fold} written")
    extract.write_fold = write_fold
else:  # mid-write: the second fold's features array is in its temporary .npz, the rest is not
    real_write_array, calls = fmt.write_array, []
    def write_array(*args, **kwargs):
        real_write_array(*args, **kwargs)
        calls.append(1)
        if len(calls) == 6:  # five arrays per fold file: this is the second file's first
            pause("inside the second fold file")
    fmt.write_array = write_array
sys.exit(extract.main(argv))
"""


def _fold_entries(root: Path, cache: Path) -> dict:
    index = load_dataset(root, folds=FOLDS)
    return {f: fold_entry(cache, CONFIG, f, load_dataset(root, folds=(f,)).fingerprint()) for f in index.folds}


def _run_until_paused(where: str, root: Path, cache: Path, log: Path, address: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    args = ["--data-dir", str(root), "--folds", "1-3", "--cache-dir", str(cache), "--batch-size", "8",
            "--address", address]
    child = subprocess.Popen([sys.executable, "-c", _CHILD, where, *args], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=log.open("w"), text=True, cwd=ROOT, env=env,
                             start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in child.stdout] + [lines.put("")], daemon=True).start()
    while True:
        line = lines.get(timeout=HANG_GUARD_S)
        assert line, f"the child ended before pausing:\n{log.read_text()[-3000:]}"
        if line.startswith("PAUSED"):
            return child


@pytest.mark.parametrize("where", ["mid-write", "between-folds"])
def test_a_killed_extraction_reuses_its_written_folds_and_never_reads_a_partial_file(
    where, ray_local, tiny_dataset_root, tmp_path
):
    root, cache = tiny_dataset_root, tmp_path / "cache"
    address = ray_local.get_runtime_context().gcs_address
    child = _run_until_paused(where, root, cache, tmp_path / "child.log", address)
    os.killpg(child.pid, signal.SIGKILL)  # the driver; the cluster lives on
    child.wait(timeout=120)

    entries = _fold_entries(root, cache)
    written = [f for f, e in entries.items() if e.exists()]
    assert len(written) == 1, f"the driver paused after its first fold, yet folds {written} are complete"
    directory = entries[written[0]].directory
    partial = list(directory.glob("*.tmp"))
    if where == "mid-write":  # the killed writer's temporary file, cut short, is all there is of fold 2
        (tmp,) = partial
        assert tmp.stat().st_size > 0 and not zipfile.is_zipfile(tmp)  # cut short: no zip directory
        assert not any(e.npz.exists() for f, e in entries.items() if f not in written)
    else:
        assert not partial

    again = extract_features(load_dataset(root, folds=FOLDS), CONFIG, cache, progress=False)
    assert again.cached_folds == tuple(written)
    assert sorted(again.extracted_folds) == sorted(set(FOLDS) - set(written))
    index = load_dataset(root, folds=FOLDS)
    assert again.extracted_clips == int((index.table["fold"] != written[0]).sum())  # only the rest
    assert not list(directory.glob("*.tmp")), "the killed writer's temporary file was left behind"
    clean = extract_features(load_dataset(root, folds=FOLDS), CONFIG, tmp_path / "clean", progress=False)
    np.testing.assert_array_equal(again.featureset.features, clean.featureset.features)
    assert list(again.featureset.file_names) == list(clean.featureset.file_names)


def test_stale_temporary_files_of_live_processes_and_other_hosts_stay(tmp_path):
    entry = fold_entry(tmp_path, FeatureConfig(frames=24), 3, "fp")
    fs = make_toy_featureset(frames=24)
    write_fold(entry, FeatureConfig(frames=24), fs.select(fs.folds == 3), [], {})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = dead.stdout.strip()  # a process that has exited
    name = entry.npz.name  # temporary files are <name>.<host>.<pid>.<hex>.tmp
    stale = entry.directory / f"{name}.{_HOST}.{pid}.0badc0de.tmp"
    live = entry.directory / f"{name}.{_HOST}.{os.getpid()}.0badc0de.tmp"
    remote = entry.directory / f"{name}.other-host.{pid}.0badc0de.tmp"
    for path in (stale, live, remote):
        path.write_bytes(b"partial")
    assert remove_stale_temp_files(entry.directory) == [stale]
    assert live.exists() and remote.exists() and not stale.exists()


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def test_a_full_disk_mid_extraction_names_the_file_leaves_nothing_partial_and_loses_no_fold(
    ray_local, tiny_dataset_root, tmp_path
):
    """A real 1 MiB tmpfs holds one fold's features (557 KB) but not two: the second write fails
    with ENOSPC. (Needs root to mount; without it a full disk cannot be made without mocks.)"""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("needs root, to mount a 1 MiB tmpfs")
    try:
        cache = disk / "cache"
        index = load_dataset(tiny_dataset_root, folds=(1, 2))
        with pytest.raises(CacheWriteError) as info:
            extract_features(index, CONFIG, cache, progress=False)
        message = str(info.value)
        assert "No space left on device" in message and str(cache) in message and ".npz" in message
        assert "folds already written are kept" in message
        entries = {f: fold_entry(cache, CONFIG, f, load_dataset(tiny_dataset_root, folds=(f,)).fingerprint()) for f in (1, 2)}
        written = [f for f, e in entries.items() if e.exists()]
        assert len(written) == 1
        leftovers = [p.name for p in entries[1].directory.iterdir()]
        assert not [n for n in leftovers if n.endswith(".tmp")], leftovers  # no partial file
        read_fold(entries[written[0]])  # the fold written before the disk filled is whole
        assert subprocess.run(["mount", "-o", "remount,size=8m", str(disk)]).returncode == 0  # space freed
        again = extract_features(index, CONFIG, cache, progress=False)
        assert again.cached_folds == tuple(written) and len(again.extracted_folds) == 1
        assert again.extracted_clips == int((index.table["fold"] != written[0]).sum())
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
    shutil.rmtree(disk, ignore_errors=True)


def test_a_damaged_fold_file_is_extracted_again_not_read(ray_local, tiny_dataset_root, tmp_path, capsys):
    """A complete-looking fold whose .npz was damaged afterwards (a disk error, another tool):
    reported, and that fold alone extracted again."""
    index = load_dataset(tiny_dataset_root, folds=(4, 5))
    first = extract_features(index, CONFIG, tmp_path, progress=False)
    damaged = first.entries[0]
    damaged.npz.write_bytes(damaged.npz.read_bytes()[:1000])
    again = extract_features(index, CONFIG, tmp_path, progress=False)
    assert again.cached_folds == (5,) and again.extracted_folds == (4,)
    assert f"{damaged.npz}: unreadable" in capsys.readouterr().err
    np.testing.assert_array_equal(again.featureset.features, first.featureset.features)
