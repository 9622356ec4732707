"""benchmarks.process_cpu: /proc parsing and the per-process shares (arithmetic on given
snapshots), and one real window over this machine's processes."""

from __future__ import annotations

import os
import sys

import pytest

from benchmarks.process_cpu import main, parse_stat, shares, snapshot


def test_stat_lines_with_spaces_and_parentheses_in_the_name_parse():
    line = "4242 (ray::Train (x) y) S 1 2 3 4 5 6 7 8 9 10 130 25 0 0 20 0 1 0 100 0 0"
    assert parse_stat(line) == ("ray::Train (x) y", 155)


def test_shares_are_cores_over_the_window_busiest_first_and_new_processes_count_from_zero():
    before = {1: ("worker", "w", 1000), 2: ("gcs", "g", 50), 3: ("idle", "i", 7)}
    after = {1: ("worker", "w", 1000 + 1830), 2: ("gcs", "g", 59), 3: ("idle", "i", 7), 4: ("new", "n", 20)}
    rows = shares(before, after, seconds=10.0, hz=100)
    assert [(pid, round(cores, 3)) for cores, pid, _, _ in rows] == [(1, 1.83), (4, 0.02), (2, 0.009)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_this_process_is_seen_and_a_short_window_prints_a_total(capsys):
    assert os.getpid() in snapshot()
    assert main(["--wait-for", "", "--after", "0", "--window", "0.3", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ") and "all processes together" in out
