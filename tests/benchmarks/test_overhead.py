"""The trial-overhead benchmark: its arithmetic on hand-made figures, and a smoke run on tiny
settings (one trial per pattern) that must print both rows with positive numbers. Not a timed
test: under load the numbers move, the table must not."""

from __future__ import annotations

import re

import pytest

from benchmarks.overhead import PatternResult, main

ROW = re.compile(
    r"^\| (?P<name>stock|project|in-trial)\s+\|\s+(?P<wall>\S+) \|\s+(?P<loop>\S+) \|\s+(?P<overhead>\S+) \|\s+(?P<ratio>\S+)x \|$"
)


def test_overhead_and_sweep_ratio_from_walls_and_loops():
    result = PatternResult("project", concurrency=2, tune_seconds=25.0, walls=(10.0, 10.0), loops=(4.0, 2.0), errors=())
    assert result.overheads == pytest.approx([6.0, 8.0])
    # Ideal wall at 2 at once: (4 + 2) / 2 = 3 s; Tuner.fit took 25 s.
    assert result.sweep_ratio == pytest.approx(25.0 / 3.0)
    serial = PatternResult("project", concurrency=1, tune_seconds=25.0, walls=(10.0,), loops=(5.0,), errors=())
    assert serial.sweep_ratio == pytest.approx(5.0)


def test_no_finished_trial_gives_no_ratio():
    empty = PatternResult("stock", 1, 3.0, (), (), ("boom",))
    assert empty.sweep_ratio != empty.sweep_ratio  # NaN


@pytest.mark.slow
def test_smoke_prints_the_in_trial_row_with_positive_numbers(ray_local, capsys):
    # One pattern: the stock one costs ~1 min of overhead per trial on a slow machine, and the
    # same code measures all three.
    code = main(["--trials", "1", "--frames", "24", "--patterns", "in-trial"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {m["name"]: m for m in (ROW.match(line) for line in out.splitlines()) if m}
    assert set(rows) == {"in-trial"}, out
    for row in rows.values():
        wall, loop = float(row["wall"]), float(row["loop"])
        assert wall > loop > 0, row[0]
        assert float(row["overhead"]) == pytest.approx(wall - loop, abs=0.11), row[0]
        assert float(row["ratio"]) > 1.0, row[0]
    assert re.search(r"target: in-trial overhead <= 5 s per trial: (met|NOT met) \(\d+\.\d s\)", out), out
    assert out.startswith("machine: ")
