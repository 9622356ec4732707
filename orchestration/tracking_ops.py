"""What each spooled unit writes to MLflow (``orchestration.spool``), shared by the sweep's
writer thread and ``python -m orchestration.replay``.

A unit's arguments are plain JSON: the fold it belongs to (configuration id and fold number;
with its full parameters on the units that may have to create the run), the Tune result, the
final checkpoint's location. Every operation is idempotent (see ``SweepTracker``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from model.checkpoints import MODEL_FILE, REPORT_FILE
from model.train_loop import FINAL_KEY
from orchestration.spool import Unit
from orchestration.tracking import SweepTracker

STOPPED = "stopped before its final report (raced out, or the time budget ran out)"


def fold_args(config: Mapping[str, Any], params: Mapping[str, Any] | None = None, label: str = "",
              searched: tuple[str, ...] = ()) -> dict[str, Any]:
    """A unit's fold: ids always; parameters when the unit may have to create its run."""
    args: dict[str, Any] = {"config_id": config["config_id"], "fold": int(config["fold"])}
    if params is not None:
        args.update(params=dict(params), label=label, searched=list(searched))
    return args


def _fold_run(tracker: SweepTracker, a: Mapping[str, Any]) -> str:
    if "params" not in a:
        return tracker.fold_run_id(a["config_id"], a["fold"])
    tracker.config_run(a["config_id"], a["label"], a["params"], a["searched"])
    return tracker.fold_run(a["config_id"], a["fold"], a["params"])


def _fold_start(tracker: SweepTracker, a: Mapping[str, Any], time_ms: int) -> None:
    _fold_run(tracker, a)


def _epoch(tracker: SweepTracker, a: Mapping[str, Any], time_ms: int) -> None:
    tracker.log_epoch(_fold_run(tracker, a), a["result"], time_ms)


def _finish(tracker: SweepTracker, a: Mapping[str, Any], time_ms: int) -> None:
    """A completed trial: its test metrics, report, figures and model, then FINISHED; a trial
    stopped before its final report (raced out, time budget) ends KILLED."""
    run_id = _fold_run(tracker, a)
    result = a["result"]
    if not result.get(FINAL_KEY):
        tracker.stop_fold(run_id, STOPPED)
    elif tracker.is_finished(run_id):
        pass  # stored already: never written again
    elif not a.get("checkpoint"):
        tracker.finish_fold(run_id, result, None, None, _title(a), time_ms)
    else:
        from model.checkpoints import load_report

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(download_checkpoint(a["checkpoint"], a.get("storage_path", ""), Path(tmp)))
            model_dir = local if a.get("log_models", True) else None
            tracker.finish_fold(run_id, result, load_report(local), model_dir, _title(a), time_ms)
    tracker.update_config(a["config_id"], a["folds_total"], time_ms)


def _fail(tracker: SweepTracker, a: Mapping[str, Any], time_ms: int) -> None:
    tracker.fail_fold(_fold_run(tracker, a), a["message"])
    tracker.update_config(a["config_id"], a["folds_total"], time_ms)


def _comparison(tracker: SweepTracker, a: Mapping[str, Any], time_ms: int) -> None:
    tracker.log_comparison(a["config_id"], a.get("values"), a["words"], time_ms)


def _raced_out(tracker: SweepTracker, a: Mapping[str, Any], time_ms: int) -> None:
    tracker.mark_raced_out(a["config_id"], a["dropped"])


def _finish_sweep(tracker: SweepTracker, a: Mapping[str, Any], time_ms: int) -> None:
    tracker.finish_sweep(a["status"], a["metrics"], [Path(f) for f in a.get("files", [])], time_ms)


OPS: dict[str, Callable[[SweepTracker, Mapping[str, Any], int], None]] = {
    "fold_start": _fold_start,
    "epoch": _epoch,
    "finish": _finish,
    "fail": _fail,
    "comparison": _comparison,
    "raced_out": _raced_out,
    "finish_sweep": _finish_sweep,
}


def apply_unit(tracker: SweepTracker, unit: Unit) -> None:
    if unit.op not in OPS:
        raise ValueError(f"spool unit #{unit.seq}: unknown operation {unit.op!r}")
    OPS[unit.op](tracker, unit.args, unit.time_ms)


def spool_files(unit: Unit, into: Path) -> Unit | None:
    """Copy what a waiting unit uploads into the spool (a fold's final model and report, the
    sweep's results folder), so the journal replays it even after the sweep's storage moved on.
    None if the unit uploads no files."""
    args = dict(unit.args)
    if unit.op == "finish" and args.get("checkpoint"):
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(download_checkpoint(args["checkpoint"], args.get("storage_path", ""), Path(tmp)))
            target = into / "checkpoint"
            target.mkdir(parents=True, exist_ok=True)
            for name in (MODEL_FILE, REPORT_FILE):
                if (local / name).exists():
                    shutil.copy2(local / name, target / name)
        args.update(checkpoint=str(target), storage_path=str(target))
    elif unit.op == "finish_sweep" and args.get("files"):
        into.mkdir(parents=True, exist_ok=True)
        copies = []
        for name in args["files"]:
            copies.append(str(into / Path(name).name))
            shutil.copy2(name, copies[-1])
        args["files"] = copies
    else:
        return None
    args["spooled"] = True
    return Unit(unit.seq, unit.op, args, unit.time_ms)


def download_checkpoint(path: str, storage_path: str, into: Path) -> str:
    """Copy a checkpoint from the run's storage (local disk, S3, GCS...) to a local folder."""
    import pyarrow.fs
    from ray.train import Checkpoint

    local = Path(path)
    if local.is_dir():
        return str(local)
    filesystem, _ = pyarrow.fs.FileSystem.from_uri(storage_path)
    return Checkpoint(path, filesystem=filesystem).to_directory(str(into / "checkpoint"))


def _title(a: Mapping[str, Any]) -> str:
    return f"{a['config_id']} fold {a['fold']}"
