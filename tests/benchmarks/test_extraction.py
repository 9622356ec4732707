"""The extraction benchmark on a few tiny-set clips: every row present, features equal to the
reference within the parity tolerance. A smoke run, not a timed test."""

from __future__ import annotations

import pytest

from benchmarks.extraction import format_table, run


@pytest.mark.slow
def test_bench_smoke_prints_every_method_with_ratios(ray_local, tiny_dataset_root):
    report = run(tiny_dataset_root, clips=40, seed=0)
    assert report["clips"] == 40 and report["failures"] == 0
    names = [name for name, _, _ in report["rows"]]
    assert names[0].startswith("reference librosa loop") and names[-1].startswith("project parallel")
    assert len(names) == 4
    for _, clips_per_s, ratio in report["rows"]:
        assert clips_per_s > 0 and ratio > 0
    assert report["max_abs_diff_parallel"] < 1e-5 and report["max_abs_diff_serial"] < 1e-5
    table = format_table(report)
    assert table.count("\n| ") == 4 and "x baseline" in table
