"""The GPU check on a machine without a GPU: its table from recorded nvidia-smi samples and
benchmark JSON (benchmarks/gpu_table.py), its argument handling, and its failure paths (no
nvidia-smi, a failing driver, a wrong Python, TensorFlow seeing fewer GPUs than nvidia-smi)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu_table import main, parse_samples, read_steps, summarize

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
TOOLS = ("bash", "dirname", "grep", "sed", "tr", "mktemp", "date", "awk", "mkdir", "tail", "cat", "env")

# nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader,nounits
SAMPLES = """2026/12/02 13:00:00.000, 0, 10, 1000
2026/12/02 13:00:00.000, 1, 0, 300
2026/12/02 13:00:00.500, 0, 90, 2500
2026/12/02 13:00:00.500, 1, 0, 300
2026/12/02 13:00:01.000, 0, [N/A], [N/A]
2026/12/02 13:00:01.000, 0, 80
"""


def test_samples_summarise_over_the_busy_gpus_and_skip_unreadable_rows():
    samples = parse_samples(SAMPLES)
    assert len(samples) == 4  # the [N/A] row and the cut last row are skipped
    summary = summarize(samples)
    assert summary["gpus_busy"] == 1  # GPU 1 stayed at 0%: not averaged in
    assert summary["util_mean"] == 50.0 and summary["util_max"] == 90.0
    assert summary["memory_peak_mib"] == 2500.0
    assert summarize([])["util_mean"] is None


def _bench_json(path: Path, plain: float, ray: float) -> Path:
    rows = [{"name": "plain tf_keras fit (1 GPU)", "samples_per_second": plain, "workers": 0},
            {"name": "Ray Train 1 worker x 1 CPU + 1 GPU", "samples_per_second": ray, "workers": 1}]
    path.write_text(json.dumps({"rows": rows}))
    return path


def test_the_table_has_one_row_per_step_from_its_json_and_samples(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    csv.write_text(SAMPLES)
    bench = _bench_json(tmp_path / "b.json", 2000.0, 1900.0)
    steps = tmp_path / "steps.tsv"
    steps.write_text(f"1 GPU worker, batch 128\t0\t41.5\t{bench}\t{csv}\t\nsweep\t0\t70.2\t-\t{tmp_path / 'none.csv'}\t\n")
    assert main([str(steps)]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = [c.strip() for c in lines[2].split("|")[1:-1]]
    assert cells == ["1 GPU worker, batch 128", "2000.0", "1900.0", "0.95x", "50 / 90", "2500", "41.5", "ok"]
    sweep = [c.strip() for c in lines[3].split("|")[1:-1]]
    assert sweep == ["sweep", "-", "-", "-", "-", "-", "70.2", "ok"]


def test_a_failed_step_fails_the_table_with_its_reason(tmp_path, capsys):
    steps = tmp_path / "steps.tsv"
    steps.write_text("sweep\t3\t5.0\t-\t-\texit 3: out of memory\n")
    assert main([str(steps)]) == 1
    captured = capsys.readouterr()
    assert "FAILED (3)" in captured.out and "FAILED: sweep: exit 3: out of memory" in captured.err
    steps.write_text("only\ttwo\n")
    assert main([str(steps)]) == 2 and f"{steps}:1: expected 5-6 tab-separated fields" in capsys.readouterr().err
    assert main([str(tmp_path / "absent.tsv")]) == 2
    assert main([]) == 2
    with pytest.raises(ValueError):
        read_steps(steps)


def _path_without_nvidia_smi(tmp_path: Path, fake_smi: str | None = None) -> str:
    """A PATH of symlinks to the tools the script uses, plus an optional fake nvidia-smi."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        if found:
            (bin_dir / tool).symlink_to(found)
    if fake_smi is not None:
        smi = bin_dir / "nvidia-smi"
        smi.write_text("#!/bin/bash\n" + fake_smi)
        smi.chmod(0o755)
    return str(bin_dir)


def _run(args: list[str], path: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": path, "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def test_arguments_help_and_bad_values(tmp_path):
    path = _path_without_nvidia_smi(tmp_path)
    shown = _run(["--help"], path, tmp_path)
    assert shown.returncode == 0 and "--python P" in shown.stdout and "gpu_check.sh" in shown.stdout
    for args, message in ((["--bogus"], "unknown argument '--bogus'"), (["--samples", "many"], "--samples must be"),
                          (["--python"], "--python needs a value")):
        done = _run(args, path, tmp_path)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)


def test_without_nvidia_smi_it_says_so_and_fails(tmp_path):
    done = _run([], _path_without_nvidia_smi(tmp_path), tmp_path)
    assert done.returncode == 1
    assert "FAILED: nvidia-smi not found in PATH: this check needs a machine with NVIDIA GPUs" in done.stderr


def test_a_failing_driver_and_a_wrong_python_are_named(tmp_path):
    broken = _path_without_nvidia_smi(tmp_path, "echo 'NVIDIA-SMI has failed: driver not loaded' >&2; exit 9\n")
    done = _run([], broken, tmp_path)
    assert done.returncode == 1 and "nvidia-smi failed (driver not loaded?)" in done.stderr
    one_gpu = tmp_path / "one"
    one_gpu.mkdir()
    path = _path_without_nvidia_smi(one_gpu, "echo '0, Fake GPU, 16384 MiB'\n")
    done = _run(["--python", "python2.7-absent"], path, one_gpu)
    assert done.returncode == 1 and "'python2.7-absent' not found" in done.stderr
    assert "1 GPU(s):" in done.stdout


@pytest.mark.slow
def test_tensorflow_seeing_fewer_gpus_than_nvidia_smi_fails_the_check(tmp_path):
    # The project's own venv (TensorFlow installed, no GPU here) stands in for the installed one.
    path = _path_without_nvidia_smi(tmp_path, "echo '0, Fake GPU, 16384 MiB'\n")
    venv = Path(sys.prefix)
    done = _run(["--venv", str(venv), "--workdir", str(tmp_path / "work")], path, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "TensorFlow sees 0 GPU(s), nvidia-smi lists 1" in done.stderr
    assert os.path.exists(tmp_path / "work" / "steps.tsv")
