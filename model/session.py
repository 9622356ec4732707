"""Where the training loop runs: in a Ray Train worker, or in a Ray Tune trial process itself.

The loop talks to its runtime through four calls: its rank and world size, ``report``
(metrics, optionally a checkpoint directory), ``get_checkpoint`` (where a restarted attempt
resumes from) and ``broadcast`` (rank 0's numbers to every worker). Two public APIs provide
them:

- ``TrainSession``: Ray Train's ``ray.train.*``, inside a ``TensorflowTrainer`` worker group
  (any number of workers, worker-group restarts from the last checkpoint) or Train's local mode.
- ``TuneSession``: Ray Tune's ``ray.tune.report`` / ``ray.tune.get_checkpoint``, for a trial
  that trains in its own process (one worker, no collectives). Ray 2.60 refuses
  ``ray.train.*`` calls inside a Tune function, even in Train's local mode
  (ray-project/ray#49454), hence a second session rather than ``num_workers=0``. Tune persists
  the checkpoints in the trial's storage and hands the last one back to a retried trial.

Both delete the staging directory once the checkpoint is persisted (Train's local mode,
which persists nothing, keeps the newest).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

SESSIONS = ("train", "tune")
_staged: list[Path] = []  # this process's last staged Train checkpoint (see TrainSession.report)


def forget_staged() -> None:
    """A previous run's final checkpoint in this process belongs to its caller: keep it."""
    _staged.clear()


class TrainSession:
    """Ray Train's worker API (``ray.train``)."""

    name = "train"

    def __init__(self) -> None:
        import ray.train

        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()

    def report(self, metrics: dict[str, Any], directory: Path | None = None) -> None:
        import ray.train

        if directory is None:
            ray.train.report(metrics)
            return
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(directory)),
                         delete_local_checkpoint_after_upload=True)
        # Train's local mode persists nothing: the directory is the checkpoint, so keep the
        # newest and drop the one before (already gone when a worker group persisted it).
        while _staged:
            shutil.rmtree(_staged.pop(), ignore_errors=True)
        _staged.append(directory)

    def get_checkpoint(self) -> Any:
        import ray.train

        return ray.train.get_checkpoint()

    def broadcast(self, value: Any) -> Any:
        if self.world_size == 1:  # nothing to agree on: no round trip through Train's sync actor
            return value
        from ray.train.collective import broadcast_from_rank_zero

        return broadcast_from_rank_zero(value)


class TuneSession:
    """Ray Tune's function-trainable API (``ray.tune``): one worker, in the trial process."""

    name = "tune"
    rank, world_size = 0, 1

    def report(self, metrics: dict[str, Any], directory: Path | None = None) -> None:
        from ray import tune

        if directory is None:
            tune.report(metrics)
            return
        try:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(directory)))  # copied to storage
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def get_checkpoint(self) -> Any:
        from ray import tune

        return tune.get_checkpoint()

    def broadcast(self, value: Any) -> Any:
        return value


def open_session(name: str) -> TrainSession | TuneSession:
    """The session named ``name`` (``"train"`` or ``"tune"``)."""
    if name == "tune":
        return TuneSession()
    if name == "train":
        return TrainSession()
    raise ValueError(f"session must be one of {', '.join(SESSIONS)}, got {name!r}")
