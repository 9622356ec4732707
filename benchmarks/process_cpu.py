"""python -m benchmarks.process_cpu [--wait-for NAME] [--after S] [--window S] [--top N]

Where a machine's CPU goes while something runs beside it (not a test). Runtime: the wait,
plus ``--after`` + ``--window`` seconds (default 15 + 20). Waits until a process whose name or
command line contains ``--wait-for`` exists (default ``RayTrainWorker``: a Ray Train worker),
lets it warm up for ``--after`` seconds, then reads every process's CPU time (user + system,
``/proc/<pid>/stat``) at the start and end of a ``--window``-second window and prints each
process's share in cores, busiest first, with the total. Linux only.

Used for the README's "where a 1-worker Ray Train group's last 5% go": start it, then in
another shell ``python -m benchmarks.training --workers 1 --no-in-trial --no-micro``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.machine import describe

PROC = Path("/proc")


def parse_stat(stat: str) -> tuple[str, int]:
    """(name, user + system clock ticks) from a ``/proc/<pid>/stat`` line (the name may hold
    spaces and parentheses: it runs from the first '(' to the last ')')."""
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 1 :].split()
    return name, int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat


def snapshot(proc: Path = PROC) -> dict[int, tuple[str, str, int]]:
    """pid -> (name, command line, CPU ticks) for every process readable now."""
    found = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, ticks = parse_stat((entry / "stat").read_text())
            command = (entry / "cmdline").read_text().replace("\0", " ").strip()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        found[int(entry.name)] = (name, command, ticks)
    return found


def shares(before: dict, after: dict, seconds: float, hz: int) -> list[tuple[float, int, str, str]]:
    """(cores, pid, name, command) of every process that used CPU between the snapshots,
    busiest first; a process born in the window counts from 0."""
    rows = []
    for pid, (name, command, ticks) in after.items():
        used = ticks - before.get(pid, (name, command, 0))[2]
        if used > 0:
            rows.append((used / hz / seconds, pid, name, command))
    return sorted(rows, reverse=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.process_cpu", description=__doc__.split("\n\n")[1])
    parser.add_argument("--wait-for", default="RayTrainWorker", help="start once a process with this in its name "
                        "or command line exists (default RayTrainWorker; '' for now)")
    parser.add_argument("--after", type=float, default=15.0, help="seconds to wait after it appears (default 15)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured (default 20)")
    parser.add_argument("--top", type=int, default=15, help="processes printed (default 15)")
    args = parser.parse_args(argv)
    if not PROC.joinpath("self", "stat").exists():
        print("error: needs Linux's /proc", file=sys.stderr)
        return 2
    if args.wait_for:
        print(f"waiting for a process matching {args.wait_for!r} ...", file=sys.stderr, flush=True)
        while not any(args.wait_for in n or args.wait_for in c for n, c, _ in snapshot().values()):
            time.sleep(0.5)
    time.sleep(args.after)
    before, started = snapshot(), time.monotonic()
    time.sleep(args.window)
    after, seconds = snapshot(), time.monotonic() - started
    rows = shares(before, after, seconds, os.sysconf("SC_CLK_TCK"))
    print(describe())
    print(f"window {seconds:.1f} s; all processes together {sum(r[0] for r in rows):.2f} cores")
    for cores, pid, name, command in rows[: args.top]:
        print(f"{cores:6.3f} cores  {pid:>7}  {name:<16}  {command[:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
