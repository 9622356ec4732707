"""python -m orchestration.replay SPOOL [--tracking-uri URI]

Writes to MLflow what a sweep could not (its tracking server was away when the sweep ended, or
the driver died with writes queued): the units left in the spool folder, in order. Seconds,
plus a few per fold model. Idempotent: units already stored are skipped, and a unit stored
before the failure that made it wait is stored once. The tracking URI defaults to the one the
sweep used (written in the spool, with any credentials redacted: pass it again then).
Exit code 0 when everything is stored, 1 if some units failed (listed), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Fold models are tf_keras models: set before anything imports TensorFlow (sweep_runner does the same).
os.environ["TF_USE_LEGACY_KERAS"] = "1"

from orchestration.redact import SECRET, redact
from orchestration.spool import Spool, TrackingWriter, fail_fast_http
from orchestration.tracking import SweepTracker, TrackingError, check_tracking_uri
from orchestration.tracking_ops import apply_unit


def replay(folder: str, tracking_uri: str | None = None) -> tuple[int, int]:
    """(units written, units still left) after replaying the spool in ``folder``."""
    spool = Spool(folder)
    meta = spool.meta
    uri = tracking_uri or meta["tracking_uri"]
    if SECRET in uri:
        raise TrackingError(f"the spool holds the tracking URI redacted ({uri}); pass --tracking-uri")
    check_tracking_uri(uri)
    pending = spool.pending()
    if not pending:
        return 0, 0
    tracker = SweepTracker(uri, meta["experiment"], meta["sweep_id"])
    writer = TrackingWriter(spool, uri, lambda unit: apply_unit(tracker, unit), tries=2, first_backoff_s=0.5)
    report = writer.close(grace_s=0)
    return report.written, report.pending


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.replay", description=__doc__.split("\n\n")[1])
    parser.add_argument("spool", help="the sweep's spool folder (<storage>/<sweep>/mlflow-spool)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: the sweep's)")
    args = parser.parse_args(argv)
    fail_fast_http()
    try:
        written, left = replay(args.spool, args.tracking_uri)
    except (FileNotFoundError, TrackingError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    if left:
        spool = Spool(args.spool)
        for seq, error in spool.failed.items():
            print(f"unit #{seq} failed: {redact(error)}", file=sys.stderr)
        print(f"{written} write(s) stored, {left} left in {args.spool}", file=sys.stderr)
        return 1
    print(f"{written} write(s) stored; nothing left in {args.spool}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
