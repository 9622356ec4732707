"""The training benchmark: its arithmetic on hand-made figures, and smoke runs on tiny settings
(they must print every row with positive numbers; not timed tests: under load the figures move,
the table must not)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from benchmarks.factors import RowSpec, factor_table, format_factors, resolve, steady
from benchmarks.limits import limit_lines, scaling_lines
from benchmarks.training import (
    TEST_FOLD,
    build_parser,
    main,
    make_bench_featureset,
    options_from,
    prepare_arrays,
)
from benchmarks.training_result import MethodResult
from model.config import TrainConfig

ROW = re.compile(
    r"^(?P<name>plain tf_keras fit \(.*?\)|in-trial \(.*?\)|Ray Train \d+ workers? x \d+ CPU.*?)\s+"
    r"(?P<rate>\S+)\s+(?P<ratio>\S+)x\s+(?P<cores>\S+)\s+(?P<per_core>\S+)x\s+(?P<wall>\S+)\s+(?P<per_epoch>\S+)$"
)
FACTOR_ROW = re.compile(r"^\| (?P<name>[\w() -]+?)\s+\|\s+(?P<rate>\S+) \|\s+(?P<ratio>\S+) \|")
PEAK = {"gflops": 100.0, "cores": 2, "ghz": 2.5, "clock_source": "test", "flops_per_cycle": 20, "table_row": "test"}


def test_featureset_gives_about_the_requested_training_clips():
    config = TrainConfig()
    arrays = prepare_arrays(make_bench_featureset(300, seed=1), config)
    assert 290 <= len(arrays["y_train"]) <= 310
    assert arrays["x_train"].shape[1:] == (40, 174, 1)
    assert len(arrays["y_val"]) > 0
    assert len(arrays["y_test"]) > 0
    assert make_bench_featureset(300, seed=1).folds.tolist().count(TEST_FOLD) == len(arrays["y_test"])
    # Seeded: the same seed gives the same clips, another seed other clips.
    again = prepare_arrays(make_bench_featureset(300, seed=1), config)
    assert np.array_equal(arrays["x_train"], again["x_train"])
    other = make_bench_featureset(300, seed=2).features
    assert not np.array_equal(make_bench_featureset(300, seed=1).features, other)
    assert make_bench_featureset(100, frames=44).features.shape[1:] == (40, 44)


def test_options_smoke_defaults_explicit_flags_win_and_bad_values_are_refused():
    parser = build_parser()
    smoke = options_from(parser.parse_args(["--smoke-test"]), parser)
    assert (smoke.epochs, smoke.warmup, smoke.samples, smoke.batch_size, smoke.workers) == (1, 1, 64, 8, (1,))
    mixed = options_from(parser.parse_args(["--smoke-test", "--batch-size", "16", "--workers", "1", "2"]), parser)
    assert mixed.batch_size == 16 and mixed.workers == (1, 2) and mixed.epochs == 1
    full = options_from(parser.parse_args(["--lr-scaling", "linear", "--jit-compile"]), parser)
    assert full.workers == (1, 2) and full.train_config().lr_scaling == "linear" and full.train_config().jit_compile
    for bad in (["--warmup", "-1"], ["--gpus-per-worker", "-1"], ["--lr-scaling", "sqrt"],
                ["--factors", "--augmentation"]):
        with pytest.raises(SystemExit):
            options_from(parser.parse_args(bad), parser)
    with pytest.raises(SystemExit):
        main(["--factors", "warp-drive"])


def _row(name: str, rate: float, workers: int, global_batch: int, cpus: int | None = None,
         cores: float = 0.0) -> MethodResult:
    details = {} if cpus is None else {"cpus_per_worker": cpus}
    return MethodResult(name, (rate,), 0, 1.0, 100, details, workers, global_batch,
                        epoch_cores=(cores,) if cores else ())


def test_the_target_applies_to_rows_with_the_plain_fits_cpus_only():
    from benchmarks.training import _target_lines

    rows = [_row("plain tf_keras fit (2 CPU)", 100.0, 0, 128), _row("in-trial (Tune trial, 2 CPU)", 96.0, 0, 128),
            _row("Ray Train 1 worker x 1 CPU", 60.0, 1, 128), _row("Ray Train 1 worker x 2 CPU", 94.0, 1, 128)]
    assert _target_lines([rows], 2) == [
        "target: in-trial (Tune trial, 2 CPU) >= 0.95x plain: met (0.96x)",
        "target: Ray Train 1 worker x 2 CPU >= 0.95x plain: NOT met (0.94x)"]
    (only,) = _target_lines([[rows[0], rows[2]]], 2)  # a scaling run: 1 worker of 1 CPU
    assert only.startswith("target: Ray (1 worker, 2 CPU) >= 0.95x plain: not measured")


def test_repeated_runs_compare_each_row_with_its_own_runs_plain_fit_and_take_the_median():
    from benchmarks.training import _target_lines

    runs = [[_row(f"plain tf_keras fit (2 CPU) #{i}", plain, 0, 128),
             _row(f"Ray Train 1 worker x 2 CPU #{i}", ray, 1, 128)]
            for i, (plain, ray) in enumerate([(100.0, 96.0), (200.0, 180.0), (50.0, 48.0)], start=1)]
    # Per run 0.96, 0.90, 0.96: the median is 0.96, not the 324/350 = 0.93 of pooled rates.
    assert _target_lines(runs, 2) == [
        "target: Ray Train 1 worker x 2 CPU >= 0.95x plain: met (0.96x; median of 3 runs: 0.96 0.90 0.96)"]


def test_cores_and_per_core_throughput_split_a_gap_into_cpu_not_got_and_cpu_used_worse():
    from benchmarks.training import _ratio

    plain = _row("plain", 100.0, 0, 128, cores=2.0)  # 50 samples per CPU-second
    starved = _row("Ray Train 1 worker x 2 CPU", 90.0, 1, 128, cores=1.8)  # 50 per CPU-second too
    wasteful = _row("Ray Train 1 worker x 2 CPU", 90.0, 1, 128, cores=2.0)  # 45 per CPU-second
    assert (_ratio(starved, plain), _ratio(starved, plain, per_core=True)) == ("0.90x", "1.00x")
    assert (_ratio(wasteful, plain), _ratio(wasteful, plain, per_core=True)) == ("0.90x", "0.90x")
    assert _ratio(_row("unmeasured", 90.0, 1, 128), plain, per_core=True) == "-"
    assert starved.with_warmup(0).cpu_cores == pytest.approx(1.8)


def test_all_reduce_cost_is_the_step_time_against_one_worker_with_the_same_cpus_and_batch():
    one = _row("Ray Train 1 worker x 1 CPU", 100.0, 1, 50, cpus=1)  # 0.5 s per step
    two = _row("Ray Train 2 workers x 1 CPU, 2 nodes", 160.0, 2, 100, cpus=1)  # 0.625 s per step
    lines = scaling_lines([_row("plain", 100.0, 0, 50), one, two], "none", 1e-4)
    assert len(lines) == 1
    assert "global batch 100 (2 x 50)" in lines[0] and "not scaled (lr_scaling none): lr 0.0001" in lines[0]
    assert "step 625.0 ms vs 500.0 ms" in lines[0] and "all-reduce + sync ~125.0 ms per step" in lines[0]
    linear = scaling_lines([one, two], "linear", 1e-4)[0]
    assert "linear scaling: lr 0.0001 x 2 = 0.0002" in linear
    other_cpus = scaling_lines([_row("Ray Train 1 worker x 2 CPU", 100.0, 1, 50, cpus=2), two], "none", 1e-4)[0]
    assert "all-reduce cost: not measured" in other_cpus
    assert scaling_lines([one], "none", 1e-4) == []


def test_limit_lines_compare_each_row_with_the_peak_and_the_micro_benchmark():
    micro = {"gflops": 50.0, "batch_size": 8, "samples_per_second": 500.0}
    lines = limit_lines(1_000_000_000, PEAK, micro, [("plain", 20.0)])  # 20 samples/s x 1 GFLOP = 20 GFLOP/s
    assert "training FLOPs per sample: 1000.0 M" in "\n".join(lines)
    assert "50.0 GFLOP/s = 50% of peak" in "\n".join(lines)
    row = next(line for line in lines if line.startswith("plain"))
    assert row.split()[1:] == ["20.0", "20%", "40%"]
    assert "conv micro-benchmark: failed (boom)" in "\n".join(limit_lines(1, PEAK, {"error": "boom"}, []))
    assert not any(line.startswith("note:") for line in lines)
    fast = limit_lines(1_000_000_000, PEAK, {**micro, "gflops": 123.0}, [("plain", 20.0)])
    assert "123% of peak" in "\n".join(fast)
    assert any(line.startswith("note: the micro-benchmark beats the computed peak") for line in fast)


def test_factor_table_changes_one_thing_per_row_and_the_report_divides_by_the_plain_mean():
    table = factor_table(2, 128)
    names = [f.name for f in table]
    assert names[0] == "plain" and "batch-128" not in names and {"batch-32", "batch-64"} <= set(names)
    for factor in table[1:]:
        assert factor.spec or factor.env, factor.name  # every other row changes something
        assert set(factor.spec) <= set(RowSpec.__dataclass_fields__)
    assert [f.name for f in resolve(["micro", "plain"], table)] == ["plain", "micro"]
    with pytest.raises(ValueError, match=r"unknown row\(s\) \['nope'\]"):
        resolve(["nope"], table)
    rows = [
        {"name": "plain", "what": "b", "warmup": 1, "epoch_rates": [1.0, 90.0], "epoch_seconds": [9.0, 2.0],
         "flops_per_sample": 1_000_000_000, "runtime": {"strategy": "default"}},
        {"name": "xla", "what": "x", "warmup": 1, "epoch_rates": [1.0, 200.0], "epoch_seconds": [9.0, 1.0],
         "epoch_cores": [1.0, 1.5], "flops_per_sample": 1_000_000_000},
        {"name": "micro", "what": "m", "warmup": 1, "kind": "micro", "samples_per_second": 300.0, "gflops": 60.0},
        {"name": "broken", "what": "?", "warmup": 1, "error": "row process exited 1: boom"},
        {"name": "plain (again)", "what": "b", "warmup": 1, "epoch_rates": [1.0, 110.0], "epoch_seconds": [9.0, 2.0],
         "flops_per_sample": 1_000_000_000},
    ]
    assert steady(rows[0]) == (90.0, 2.0)
    out = format_factors(rows, PEAK, "header")
    found = {m["name"]: m for m in (FACTOR_ROW.match(line) for line in out.splitlines()) if m}
    assert found["xla"]["ratio"] == "2.00x"  # 200 / mean(90, 110)
    assert found["plain"]["ratio"] == "0.90x" and found["plain (again)"]["ratio"] == "1.10x"
    assert found["broken"]["rate"] == "failed" and "boom" in out
    assert "drifted 22.2%" in out  # |110 - 90| / 90
    cells = [c.strip() for c in next(line for line in out.splitlines() if line.startswith("| xla")).split("|")]
    # cores after the warm-up, epoch s, its ratio, GFLOP/s, % of the 100 peak
    assert cells[4:9] == ["1.50", "1.00", "2.00x", "200.0", "200%"]
    plain = [c.strip() for c in next(line for line in out.splitlines() if line.startswith("| plain ")).split("|")]
    assert plain[4] == "-"  # cores not measured



@pytest.mark.slow
def test_smoke_prints_plain_in_trial_and_ray_train_rows_with_the_limits(ray_local, capsys):
    code = main(["--smoke-test", "--no-micro"])  # the factors smoke runs the micro-benchmark
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [m for m in (ROW.match(line) for line in out.splitlines()) if m]
    names = [m["name"] for m in rows]
    assert len(rows) == 3, out
    assert names[0].startswith("plain tf_keras fit") and names[1] == "in-trial (Tune trial, 2 CPU)"
    assert names[2] == "Ray Train 1 worker x 2 CPU"
    plain = float(rows[0]["rate"])
    for m in rows:
        for key in ("rate", "ratio", "wall", "per_epoch"):
            assert float(m[key]) > 0, (key, m[0])
        assert float(m["ratio"]) == pytest.approx(float(m["rate"]) / plain, abs=0.006 + 0.06 / plain)
        # Each row's training process measured its own CPU time (the loop's train_cpu_cores).
        assert 0.05 < float(m["cores"]) <= 2.2 and float(m["per_core"]) > 0, m[0]
    assert out.startswith("machine: ") and " SIMD " in out.splitlines()[0]
    assert "target: in-trial (Tune trial, 2 CPU) >= 0.95x plain:" in out
    assert "target: Ray Train 1 worker x 2 CPU >= 0.95x plain:" in out
    assert "CPU 60 s/epoch, 1 GPU 2 s/epoch, 2 GPUs 1 s/epoch" in out
    # 40 x 44 inputs: 3 x 54,594,560 forward FLOPs (conv 38x42x32, 36x40x32, 16x18x64, 14x16x64; dense 64x10)
    assert "training FLOPs per sample: 163.8 M" in out
    assert re.search(r"^peak: 2 core\(s\) x \S+ GHz", out, re.M)
    # A 1-worker Ray Train group trains under the default strategy (model/runtime.py).
    detail = next(line for line in out.splitlines() if line.startswith("  Ray Train 1 worker"))
    assert "'strategy': 'default'" in detail and "'intra_op_threads': 2" in detail


@pytest.mark.slow
def test_factors_smoke_runs_each_row_in_its_own_process(capsys):
    code = main(["--factors", "--smoke-test"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {m["name"]: m for m in (FACTOR_ROW.match(line) for line in out.splitlines()) if m}
    assert list(rows) == ["plain", "mwms-pipeline-debug", "ray-actor-idle5", "micro", "plain (again)"], out
    for name, m in rows.items():
        assert float(m["rate"]) > 0 and float(m["ratio"].rstrip("x")) > 0, name
    # The fit rows measured their process's CPU; ray-actor-idle5's ran in a Ray actor (OMP set by Ray).
    cores = {line.split("|")[1].strip(): line.split("|")[4].strip() for line in out.splitlines()
             if line.startswith("| ") and "|" in line[2:]}
    assert all(0.05 < float(cores[name]) <= 2.2 for name in ("plain", "mwms-pipeline-debug", "ray-actor-idle5")), cores
    assert "  ray-actor-idle5: 2/2, default, determinism True, OMP 2," in out
    assert "  plain: 2/2, default," in out and "  mwms-pipeline-debug: 2/2, multi_worker_mirrored," in out
    assert not math.isnan(float(rows["micro"]["rate"]))
    assert "training FLOPs per sample: 163.8 M" in out and re.search(r"^peak: 2 core\(s\)", out, re.M)


AUGMENT_ROW = re.compile(r"^augmentation: (?P<name>\w+)\s+(?P<rate>\S+)\s+(?P<ratio>\S+)x\s+(?P<wall>\S+)$")


@pytest.mark.slow
def test_augmentation_rows_print_a_ratio_against_unaugmented(capsys):
    code = main(["--augmentation", "all", "--epochs", "1", "--warmup", "0", "--samples", "64", "--batch-size", "32"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [m for m in (AUGMENT_ROW.match(line) for line in out.splitlines()) if m]
    assert [m["name"] for m in rows] == ["none", "all"], out  # none always first
    assert float(rows[0]["ratio"]) == 1.0
    # The ratio is of the unrounded rates; the printed rates are rounded to 0.1.
    rate, base = float(rows[1]["rate"]), float(rows[0]["rate"])
    assert (rate - 0.05) / (base + 0.05) - 0.005 <= float(rows[1]["ratio"]) <= (rate + 0.05) / (base - 0.05) + 0.005
    assert "target: all augmentations >= 0.9x none:" in out
    assert "mixup_alpha=0.2" in out and "time_shift=20" in out


def test_augmentation_settings_fit_small_inputs_and_unknown_ones_are_refused():
    from benchmarks.augment_training import SETTINGS, fitted_settings

    fitted = fitted_settings((6, 10, 1))
    assert fitted["all"]["freq_mask_width"] == 6 and fitted["all"]["time_shift"] == 10
    assert fitted["mixup"] == SETTINGS["mixup"]
    with pytest.raises(SystemExit):
        main(["--augmentation", "cutout"])


@pytest.mark.slow
def test_nodes_smoke_spreads_two_workers_over_two_ray_nodes_and_prices_the_all_reduce(tmp_path):
    # A child process: Ray allows one cluster connection per process, and the suite's ray_local
    # fixture may hold this one's.
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out_json = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.training", "--smoke-test", "--no-micro", "--nodes", "2",
         "--workers", "1", "2", "--cpus-per-worker", "1", "--lr-scaling", "linear", "--json", str(out_json)],
        cwd=root, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [m["name"] for m in (ROW.match(line) for line in done.stdout.splitlines()) if m]
    assert rows[1:] == ["Ray Train 1 worker x 1 CPU, 2 nodes", "Ray Train 2 workers x 1 CPU, 2 nodes"], done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("Ray Train 2 workers x 1 CPU, 2 nodes: "))
    assert "global batch 16 (2 x 8)" in line and "linear scaling: lr 0.0001 x 2 = 0.0002" in line
    assert re.search(r"all-reduce \+ sync ~-?\d+\.\d ms per step", line), line
    figures = json.loads(out_json.read_text())
    assert [r["workers"] for r in figures["rows"]] == [0, 1, 2]
    assert all(r["samples_per_second"] > 0 for r in figures["rows"])
