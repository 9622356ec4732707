"""The bad-input command's smoke mode prints the table of the cases that need neither Ray nor
TensorFlow, every one handled."""

from __future__ import annotations

from benchmarks.bad_input_cases import CASES
from benchmarks.bad_inputs import main


def test_smoke_mode_prints_a_row_per_light_case_all_handled(capsys):
    assert main(["--smoke-test"]) == 0
    out = capsys.readouterr().out
    light = [c for c in CASES if not c.needs]
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith(("| kind |", "| --- |"))]
    assert len(rows) == len(light)
    assert all(f"| {c.kind} |" in out for c in light)
    assert all(" | yes | " in row or " | n/a | " in row for row in rows)
    assert "<tmp>" in out and "/tmp/" not in out.split("| kind |")[1]  # temporary paths hidden
    assert "machine:" in out
