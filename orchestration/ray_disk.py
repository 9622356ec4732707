"""Ray's out-of-disk protection, explained: the disk a node's Ray spills objects to.

When a node's object store is full, Ray spills objects to files under its temp folder; when
that disk is over ``local_fs_capacity_threshold`` (0.95 by default) it refuses instead and the
``ray.put`` or task submission raises ``ray.exceptions.OutOfDiskError``. Ray measures fullness
as ``1 - available / capacity`` (``std::filesystem::space``: ``available`` is what an
unprivileged user may still write), which can be well above what ``df`` shows as used on a
disk with reserved blocks: a CI run of this project failed that way at 86% used by ``df``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

RAY_DEFAULT_THRESHOLD = 0.95  # Ray's default local_fs_capacity_threshold
WARN_AT = 0.90


@dataclass(frozen=True)
class DiskUsage:
    folder: str
    full: float  # as Ray counts it: 1 - available / capacity
    available_bytes: int

    def describe(self) -> str:
        return (f"the disk holding {self.folder} ({100 * self.full:.0f}% full as Ray counts it, "
                f"{self.available_bytes / 2**30:.1f} GiB available)")


def disk_usage(folder: str) -> DiskUsage:
    usage = shutil.disk_usage(folder)
    return DiskUsage(folder, 1.0 - usage.free / usage.total if usage.total else 0.0, usage.free)


def session_disk() -> DiskUsage | None:
    """Usage of the disk under this node's Ray session folder; None when this driver has no
    Ray node of its own (Ray Client) or Ray does not say where it is."""
    import ray

    try:
        here = ray.get_runtime_context().get_node_id()
        node = next(n for n in ray.nodes() if n["NodeID"] == here)
        socket = node["ObjectStoreSocketName"]  # <temp dir>/session_<...>/sockets/plasma_store
        folder = socket[: socket.index("/sockets/")] if "/sockets/" in socket else os.path.dirname(socket)
        return disk_usage(folder)
    except (StopIteration, KeyError, OSError, ValueError, TypeError):
        return None


def disk_warning(usage: DiskUsage | None) -> str | None:
    """A warning when Ray is close to refusing to spill on this node."""
    if usage is None or usage.full < WARN_AT:
        return None
    return (f"warning: {usage.describe()}; above {RAY_DEFAULT_THRESHOLD:.0%} Ray refuses to spill objects "
            "to disk and the sweep fails once the object store is full: free space there first")


def out_of_disk_message(exc: BaseException, cache_dir: str, sweep_name: str) -> str | None:
    """What to do when Ray refused to store an object; None for any other error."""
    from ray.exceptions import OutOfDiskError

    if not isinstance(exc, OutOfDiskError):
        return None
    usage = session_disk()
    where = usage.describe() if usage else "the disk of Ray's temp folder on this node"
    return (
        f"Ray refused to store an object: the object store is full and {where} is over Ray's limit "
        f"for spilling objects to disk (its local_fs_capacity_threshold, {RAY_DEFAULT_THRESHOLD:.0%} full "
        "by default). Free space on that disk, or give Ray a larger one (`ray start "
        "--temp-dir DIR`, or RAY_TMPDIR for a local Ray), then run the same command again. Nothing "
        f"finished is lost: the folds extracted so far are in the feature cache ({cache_dir}); a sweep "
        f"stopped during training continues with `--resume {sweep_name}`."
    )
