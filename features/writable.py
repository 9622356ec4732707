"""Can a folder take the files a command is about to write? Checked before any compute.

``check_folder`` writes a small probe file (flushed to disk) into the folder, or, if the folder
does not exist yet, into the nearest existing folder above it (where it will be created), removes
it, and compares the free space on that disk with what the caller expects to write. A failure
raises ``FolderError`` naming the folder, the cause (no permission, a read-only file system, a
file where a folder should be, a full disk) and what to do. Nothing is created or left behind.

Pure module: the standard library only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

PROBE_BYTES = 4096


class FolderError(Exception):
    """A folder the command must write to cannot take it; the message says which and why."""


def check_folder(folder: str | Path, what: str, fix: str, need_bytes: int = 0) -> Path:
    """``folder``, absolute, once a probe write and a free-space check have passed.

    ``what`` names the folder for the user ("feature cache folder"), ``fix`` says what to do
    ("choose another with --cache-dir"); ``need_bytes`` is what the caller expects to write.
    """
    folder = Path(folder).expanduser().absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise FolderError(f"{what} {folder}: {existing} is a file, not a folder; {fix}")
    doing = "write there" if existing == folder else f"create it (in {existing})"
    probe = existing / f".us8k-write-probe.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        with open(probe, "xb") as fh:
            fh.write(b"\0" * PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise FolderError(f"{what} {folder}: cannot {doing} ({exc.strerror or exc}); {fix}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    free = shutil.disk_usage(existing).free
    if need_bytes > free:
        raise FolderError(
            f"{what} {folder}: {_mib(free)} free on its disk, about {_mib(need_bytes)} needed; "
            f"free some space, or {fix}"
        )
    return folder


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"
