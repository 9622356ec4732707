"""python -m benchmarks.faults [--smoke-test] [--only KIND ...] [--work DIR]

The fault suite as one table (not a test). Runtime: about 12 minutes on 2 idle cores (six
scenarios of tiny sweeps on real processes: a local Ray cluster, a real ``mlflow server``);
``--smoke-test`` runs the writer-only scenario (about half a minute). Each scenario is a
function of ``benchmarks/fault_scenarios.py`` (``determinism``: ``fault_determinism.py``),
the same ones the fault tests run, and says in its docstring what it does and what "seconds to
recover" measures there. Per fault kind:
tried, survived, MLflow runs lost (must be 0), runs duplicated (must be 0: a second run for a
(configuration, fold), a second model, an epoch logged twice), seconds to recover. Then the bad-input
kinds tried and handled (``python -m benchmarks.bad_inputs``, run as it is; its own table has a
row per kind).
Exit code 1 if any fault was not survived or lost or duplicated a run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import fault_determinism
from benchmarks import fault_scenarios as fs
from benchmarks.machine import describe

KINDS = ("writer", "mlflow-restart", "mlflow-gone", "driver-kill", "two-sweeps", "determinism")
SMOKE = ("writer",)


class Suite:
    """The fault kinds as calls, with what they share (the tiny dataset, one tracking server)
    made on first use in ``work``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._data: Path | None = None
        self._server: fs.MlflowServer | None = None

    def dataset(self) -> Path:
        if self._data is None:
            from features.synthetic import generate

            self._data = generate(self.work / "us8k-tiny", preset="tiny", seed=0)
        return self._data

    def server_uri(self) -> str:
        if self._server is None:
            self._server = fs.MlflowServer(self.work / "mlflow-shared").start()
        return self._server.uri

    def close(self) -> None:
        if self._server is not None:
            self._server.kill()

    def two_sweeps(self, where: Path) -> fs.Outcome:
        with fs.RayHead(where, cpus=2) as head:
            return fs.two_sweeps(self.dataset(), where, self.server_uri(), head)

    def call(self, kind: str, attempt: int = 0) -> fs.Outcome:
        """One try of a fault kind, in its own folder (and sweep names) per try."""
        where = self.work / f"{kind}-{attempt}"
        calls: dict[str, Callable[[], fs.Outcome]] = {
            "writer": lambda: fs.writer_outage(where),
            "mlflow-restart": lambda: fs.mlflow_restart(self.dataset(), where),
            "mlflow-gone": lambda: fs.mlflow_gone(self.dataset(), where),
            "driver-kill": lambda: fs.driver_killed(self.dataset(), where, self.server_uri()),
            "two-sweeps": lambda: self.two_sweeps(where),
            "determinism": lambda: fault_determinism.three_interruptions(self.dataset(), where),
        }
        return calls[kind]()


def run(kinds: Sequence[str], work: Path, repeat: int = 1) -> list[dict]:
    suite = Suite(work)
    rows = []
    try:
        for kind in kinds:
            outcomes = []
            for attempt in range(repeat):
                started = time.monotonic()
                try:
                    outcome = suite.call(kind, attempt)
                except Exception as exc:  # a scenario that breaks is a fault not survived
                    outcome = fs.Outcome(kind, False, -1, -1, None, {"error": repr(exc)})
                outcome.details["seconds"] = time.monotonic() - started
                outcomes.append(outcome)
                if not outcome.survived:
                    print(f"{kind} (try {attempt + 1}) not survived: {_brief(outcome.details)}", file=sys.stderr)
            rows.append(_row(kind, outcomes))
    finally:
        suite.close()
    return rows


def _row(kind: str, outcomes: list[fs.Outcome]) -> dict:
    recover = [o.recover_s for o in outcomes if o.recover_s is not None]
    return {"kind": kind, "fault": outcomes[0].kind, "tried": len(outcomes),
            "survived": sum(o.survived for o in outcomes),
            "lost": sum(max(0, o.runs_lost) for o in outcomes) if all(o.runs_lost >= 0 for o in outcomes) else None,
            "duplicated": sum(max(0, o.runs_duplicated) for o in outcomes) if all(o.runs_duplicated >= 0 for o in outcomes) else None,
            "recover_s": max(recover) if recover else None}


def _brief(details: dict) -> str:
    return "; ".join(f"{k}={str(v)[-600:]}" for k, v in details.items() if k != "accuracies")


def format_table(rows: list[dict]) -> str:
    lines = ["| fault | tried | survived | runs lost | runs duplicated | s to recover |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lost = "?" if r["lost"] is None else str(r["lost"])
        dup = "?" if r["duplicated"] is None else str(r["duplicated"])
        rec = "-" if r["recover_s"] is None else f"{r['recover_s']:.1f}"
        lines.append(f"| {r['fault']} | {r['tried']} | {r['survived']} | {lost} | {dup} | {rec} |")
    return "\n".join(lines)


def bad_inputs_summary(smoke: bool) -> str | None:
    """The bad-input suite (``python -m benchmarks.bad_inputs``, run as it is, its own table
    captured): "bad input: N kinds tried, M handled", or None if that module is not there."""
    try:
        from benchmarks import bad_inputs
    except ModuleNotFoundError:
        return None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = bad_inputs.main(["--smoke-test"] if smoke else [])
    found = re.search(r"(\d+) of (\d+) kinds of bad input handled(.*)", out.getvalue())
    if found is None:
        return f"bad input: python -m benchmarks.bad_inputs exited {code} without its summary line"
    handled, tried, rest = found.groups()
    return (f"bad input ({'--smoke-test: ' if smoke else ''}python -m benchmarks.bad_inputs for the table): "
            f"{tried} kinds tried, {handled} handled{rest}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.split("\n\n")[1])
    parser.add_argument("--smoke-test", action="store_true", help=f"only {', '.join(SMOKE)} (seconds, not minutes)")
    parser.add_argument("--only", nargs="+", choices=KINDS, help="these fault kinds only")
    parser.add_argument("--repeat", type=int, default=1, help="tries per fault kind (default 1)")
    parser.add_argument("--work", help="keep the scenarios' servers, sweeps and logs here (default: a temp folder)")
    args = parser.parse_args(argv)
    kinds = args.only or (SMOKE if args.smoke_test else KINDS)
    print(describe(), flush=True)
    started = time.monotonic()
    if args.work:
        rows = run(kinds, Path(args.work), args.repeat)
    else:
        with tempfile.TemporaryDirectory(prefix="us8k-faults-") as tmp:
            rows = run(kinds, Path(tmp), args.repeat)
    print(format_table(rows))
    bad = bad_inputs_summary(args.smoke_test)
    if bad:
        print(bad)
    print(f"{len(kinds)} fault kind(s) in {time.monotonic() - started:.0f} s")
    ok = all(r["survived"] == r["tried"] and r["lost"] == 0 and r["duplicated"] == 0 for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
