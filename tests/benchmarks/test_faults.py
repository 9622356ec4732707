"""python -m benchmarks.faults --smoke-test: the writer-only fault scenario (a real mlflow
server SIGKILLed and started again while writes wait) survived, nothing lost or doubled, in
the table the command prints; and the bad-input kinds its smoke run tried, all handled."""

from __future__ import annotations

import re

import pytest

from benchmarks.faults import format_table, main


@pytest.mark.slow
def test_smoke_mode_prints_a_row_survived_with_nothing_lost(capsys, tmp_path):
    assert main(["--smoke-test", "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ")
    row = re.search(r"\| MLflow server killed \(writer only\) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) \|", out)
    assert row is not None, out
    tried, survived, lost, duplicated, seconds = row.groups()
    assert (tried, survived, lost, duplicated) == ("1", "1", "0", "0") and float(seconds) >= 0
    # The bad-input suite's summary (its --smoke-test rows), from benchmarks.bad_inputs itself.
    assert re.search(r"bad input \(--smoke-test: .*\): (\d+) kinds tried, \1 handled", out), out


def test_the_table_marks_what_a_broken_scenario_could_not_count():
    table = format_table([{"fault": "x", "tried": 1, "survived": 0, "lost": None, "duplicated": None, "recover_s": None}])
    assert table.splitlines()[-1] == "| x | 1 | 0 | ? | ? | - |"
