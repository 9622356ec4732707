"""Real bad inputs for ``benchmarks.bad_inputs``: UrbanSound8K trees, WAV files, folders.

Everything is written for real (the CSV with the ``csv`` module, audio with soundfile or as raw
bytes); folders that cannot be written are made by ``chmod`` when that binds (not as root), else
a read-only tmpfs mount (root), else a file standing where the folder should be.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from features.us8k import CLASS_NAMES, CSV_COLUMNS, METADATA_RELPATH, audio_relpath

RATE = 22_050
# The base tree: two folds of two clips. Row i is on CSV line i + 2; the last one (line 5, fold 2)
# is the clip the audio cases replace.
BASE_ROWS = ((100_001, 0, 1), (100_002, 1, 1), (100_003, 2, 2), (100_004, 3, 2))
BAD_LINE = len(BASE_ROWS) + 1


def row(fs_id: int, class_id: int, fold: int, name: str | None = None, klass: str | None = None) -> dict[str, str]:
    return {
        "slice_file_name": name or f"{fs_id}-{class_id}-0-0.wav", "fsID": str(fs_id), "start": "0.0",
        "end": "0.5", "salience": "1", "fold": str(fold), "classID": str(class_id),
        "class": klass if klass is not None else CLASS_NAMES[class_id],
    }


def base_rows() -> list[dict[str, str]]:
    return [row(*r) for r in BASE_ROWS]


def bad_clip(root: Path) -> Path:
    """The audio file of the base tree's last row (fold 2, CSV line 5)."""
    fs_id, class_id, fold = BASE_ROWS[-1]
    return root / audio_relpath(fold, f"{fs_id}-{class_id}-0-0.wav")


def noise(seconds: float, rate: int = RATE, seed: int = 0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.2 * np.sin(2 * np.pi * (300 + 50 * seed) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono * (1 - 0.3 * c) for c in range(channels)], axis=1)


def write_tree(root: Path, rows: list[dict[str, str]] | None = None, header: tuple[str, ...] = CSV_COLUMNS,
               audio: bool = True) -> Path:
    """An UrbanSound8K-shaped tree: the CSV, and 0.5 s of real audio for every row."""
    rows = base_rows() if rows is None else rows
    csv_path = root / METADATA_RELPATH
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows([r[c] for c in CSV_COLUMNS] for r in rows)
    for i, r in enumerate(rows if audio else ()):
        path = root / audio_relpath(int(r["fold"]), r["slice_file_name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            sf.write(path, noise(0.5, seed=i), RATE, subtype="PCM_16")
    return root


def wav_bytes(samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def nan_wav() -> bytes:
    samples = noise(0.5)
    samples[100], samples[200] = np.nan, np.inf
    return wav_bytes(samples, subtype="FLOAT")


def write_hour(path: Path, minutes: int = 60, rate: int = 8_000) -> Path:
    """A ``minutes``-long 16-bit mono recording, written a minute at a time."""
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as out:
        for minute in range(minutes):
            out.write(noise(60.0, rate, seed=minute % 7))
    return path


# ---------------------------------------------------------------------------------------------
# Folders that cannot take a write.


def can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def mount_tmpfs(stack: contextlib.ExitStack, folder: Path, options: str) -> bool:
    """Mount a tmpfs on ``folder`` (root only) and unmount it when ``stack`` closes."""
    folder.mkdir(parents=True, exist_ok=True)
    if not can_mount():
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        return False
    stack.callback(subprocess.run, ["umount", "-l", str(folder)], capture_output=True)
    return True


def unwritable_folder(base: Path, stack: contextlib.ExitStack) -> tuple[Path, str]:
    """A folder path no file can be written under, and the cause the user should be told."""
    locked = base / "locked"
    locked.mkdir(parents=True)
    locked.chmod(0o555)
    stack.callback(locked.chmod, 0o755)
    if not os.access(locked, os.W_OK):  # chmod binds: not root
        return locked, "Permission denied"
    read_only = base / "read-only"
    if mount_tmpfs(stack, read_only, "ro,size=1m"):
        return read_only, "Read-only file system"
    blocker = base / "not-a-folder"
    blocker.write_text("a file where a folder is expected\n")
    return blocker / "sub", "is a file, not a folder"


def full_disk(base: Path, stack: contextlib.ExitStack, leave_bytes: int = 0) -> Path | None:
    """A folder on a 1 MiB tmpfs filled up to ``leave_bytes`` free; None if it cannot be mounted."""
    folder = base / "small-disk"
    if not mount_tmpfs(stack, folder, "size=1m"):
        return None
    with open(folder / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize > leave_bytes:
            fh.write(b"\0" * 4096)
    return folder
