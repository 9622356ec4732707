"""python -m benchmarks.gpu_table STEPS.tsv   (run by benchmarks/gpu_check.sh; < 1 s, no TensorFlow)

The GPU check's one table, from what ``gpu_check.sh`` recorded per step: a line of
``STEPS.tsv`` (tab-separated: step name, exit code, seconds, benchmark JSON or "-", nvidia-smi
CSV, reason) and the files it names. Per step: samples/s of the plain fit and of the Ray row
(``python -m benchmarks.training --json``), GPU utilisation (mean and max over the samples
``nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used
--format=csv,noheader,nounits -lms 500`` took while the step ran, over the GPUs that were busy)
and the peak GPU memory used (the largest ``memory.used`` of any GPU, MiB: the whole device's,
the driver's and other processes' included). Exit code 1 if any step failed, naming the step
and its reason.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BUSY_PERCENT = 1.0  # a GPU below this for the whole step took no part in it


@dataclass(frozen=True)
class Sample:
    index: int
    utilization: float  # percent
    memory_mib: float


@dataclass(frozen=True)
class Step:
    name: str
    exit_code: int
    seconds: float
    bench_json: Path | None
    samples_csv: Path | None
    reason: str = ""


def parse_samples(text: str) -> list[Sample]:
    """nvidia-smi CSV rows ``timestamp, index, utilization.gpu, memory.used`` (noheader,
    nounits); rows that are not numbers ("[N/A]", a cut last line) are skipped."""
    samples = []
    for row in csv.reader(text.splitlines()):
        cells = [c.strip() for c in row]
        if len(cells) < 4:
            continue
        try:
            samples.append(Sample(int(cells[1]), float(cells[2]), float(cells[3])))
        except ValueError:
            continue
    return samples


def summarize(samples: Sequence[Sample]) -> dict[str, float | int | None]:
    """Mean and max utilisation over the busy GPUs' samples, peak memory over all, GPUs busy."""
    if not samples:
        return {"util_mean": None, "util_max": None, "memory_peak_mib": None, "gpus_busy": 0}
    busy = {s.index for s in samples if s.utilization >= BUSY_PERCENT}
    considered = [s for s in samples if s.index in busy] or list(samples)
    return {
        "util_mean": sum(s.utilization for s in considered) / len(considered),
        "util_max": max(s.utilization for s in considered),
        "memory_peak_mib": max(s.memory_mib for s in samples),
        "gpus_busy": len(busy),
    }


def read_steps(path: Path) -> list[Step]:
    steps = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < 5:
            raise ValueError(f"{path}:{number}: expected 5-6 tab-separated fields, got {len(cells)}: {line!r}")
        name, code, seconds, bench, samples = cells[:5]
        steps.append(Step(name, int(code), float(seconds), None if bench == "-" else Path(bench),
                          None if samples == "-" else Path(samples), cells[5] if len(cells) > 5 else ""))
    return steps


def bench_rates(path: Path | None) -> tuple[float | None, float | None, str]:
    """(plain samples/s, Ray row samples/s, Ray row name) from a ``--json`` file; the Ray row is
    the last one (the widest worker group)."""
    if path is None or not path.exists():
        return None, None, ""
    rows = json.loads(path.read_text())["rows"]
    plain = rows[0]["samples_per_second"] if rows else None
    ray_rows = [r for r in rows[1:] if r["workers"] > 0]
    if not ray_rows:
        return plain, None, ""
    return plain, ray_rows[-1]["samples_per_second"], ray_rows[-1]["name"]


COLUMNS = (("step", 44, "<"), ("plain s/s", 9, ">"), ("Ray s/s", 9, ">"), ("Ray/plain", 9, ">"),
           ("GPU util mean/max %", 19, ">"), ("peak GPU MiB", 12, ">"), ("wall s", 7, ">"), ("status", 6, "<"))


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip(cells, COLUMNS, strict=True)) + " |"


def table(steps: Sequence[Step]) -> str:
    lines = [_line([name for name, _, _ in COLUMNS]), "|" + "|".join("-" * (w + 2) for _, w, _ in COLUMNS) + "|"]
    for step in steps:
        plain, ray, _ = bench_rates(step.bench_json)
        text = step.samples_csv.read_text() if step.samples_csv and step.samples_csv.exists() else ""
        gpu = summarize(parse_samples(text))
        util = "-" if gpu["util_mean"] is None else f"{gpu['util_mean']:.0f} / {gpu['util_max']:.0f}"
        status = "ok" if step.exit_code == 0 else f"FAILED ({step.exit_code})"
        lines.append(_line([step.name, _num(plain), _num(ray), _ratio(ray, plain), util,
                            _num(gpu["memory_peak_mib"], ".0f"), f"{step.seconds:.1f}", status]))
    return "\n".join(lines)


def _num(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m benchmarks.gpu_table STEPS.tsv", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    path = Path(args[0])
    if not path.exists():
        print(f"gpu_table: {path}: no such file (gpu_check.sh writes it)", file=sys.stderr)
        return 2
    try:
        steps = read_steps(path)
    except ValueError as exc:
        print(f"gpu_table: {exc}", file=sys.stderr)
        return 2
    print(table(steps))
    failed = [s for s in steps if s.exit_code != 0]
    for step in failed:
        print(f"FAILED: {step.name}: {step.reason or f'exit code {step.exit_code}'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
