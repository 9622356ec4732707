"""The trial-overhead benchmark: its timeline arithmetic on hand-made events, its features, and a
smoke run on tiny settings (one trial per pattern) that must print both rows with positive
numbers. The smoke run is not a timed test: under load the numbers move, the table must not."""

from __future__ import annotations

import re

import pytest

from orchestration.bench_overhead import (
    POINTS,
    BenchSettings,
    PatternSummary,
    main,
    sweep_breakdown,
    trial_timings,
)

ROW = re.compile(
    r"^(?P<name>stock|project)\s+(?P<trials>\d+)\s+(?P<wall>\S+)\s+(?P<in_worker>\S+)\s+"
    r"(?P<overhead>\S+)\s+(?P<sweep>\S+)\s+(?P<ratio>\S+)x$"
)


def _event(ev: str, t: float, trial: str = "a", **extra) -> dict:
    return {"ev": ev, "t": t, "trial": trial, "pid": 1, **extra}


def test_trial_timings_take_first_entry_and_last_exit_across_workers():
    events = [
        _event("trial_entry", 100.5),
        _event("imports_done", 101.0),
        _event("fit_start", 101.5),
        _event("loop_entry", 104.0, rank=0, process_start=103.0),
        _event("loop_entry", 104.5, rank=1, process_start=103.2),
        _event("loop_exit", 107.0, rank=1),
        _event("loop_exit", 107.5, rank=0),
        _event("fit_return", 110.0),
        _event("trial_exit", 110.5),
        # Another trial's records and an unfinished trial must not leak in.
        _event("loop_entry", 50.0, trial="b"),
        _event("loop_exit", 200.0, trial="b"),
        _event("loop_entry", 105.0, trial="c"),
    ]
    timings = trial_timings({"a": 100.0, "c": 99.0}, {"a": 111.0}, events)
    assert [t.trial_id for t in timings] == ["a"]
    (t,) = timings
    assert t.wall == pytest.approx(11.0)
    assert t.in_worker == pytest.approx(3.5)  # 104.0 -> 107.5
    assert t.overhead == pytest.approx(7.5)
    assert t.points["worker_process_start"] == pytest.approx(3.0)
    assert t.points["complete"] == pytest.approx(11.0)
    assert list(t.points) == list(POINTS)


def test_missing_points_carry_forward_and_timeline_never_goes_back():
    events = [
        _event("trial_entry", 10.2),
        # No imports_done, fit_start or trial_exit; the worker process predates the trial.
        _event("loop_entry", 12.0, process_start=1.0),
        _event("loop_exit", 14.0),
        _event("fit_return", 15.0),
    ]
    (t,) = trial_timings({"a": 10.0}, {"a": 16.0}, events)
    values = [t.points[p] for p in POINTS]
    assert values == sorted(values)
    assert t.points["imports_done"] == pytest.approx(0.2)
    assert t.points["worker_process_start"] == pytest.approx(0.2)  # clamped, not -9 s
    assert t.points["trial_exit"] == pytest.approx(5.0)


def test_summary_ratio_phases_and_sweep_breakdown():
    starts = {"a": 10.0, "b": 22.0}
    ends = {"a": 20.0, "b": 32.0}
    events = [
        _event("loop_entry", 12.0, "a"),
        _event("loop_exit", 16.0, "a"),
        _event("loop_entry", 24.0, "b"),
        _event("loop_exit", 26.0, "b"),
    ]
    timings = tuple(trial_timings(starts, ends, events))
    breakdown = sweep_breakdown(timings, fit_start=8.0, fit_end=33.0)
    assert breakdown == pytest.approx(
        {"startup": 2.0, "trials": 20.0, "gaps": 2.0, "shutdown": 1.0}
    )
    summary = PatternSummary("project", 2, 1, sweep_wall=25.0, timings=timings, extra=breakdown)
    assert summary.median("overhead") == pytest.approx(7.0)  # overheads 6 and 8
    assert summary.sweep_ratio == pytest.approx(25.0 / 6.0)
    # Extra time per trial is (25 - 6) / 2 = 9.5 s; a 1.25x ratio needs 4x that in the worker.
    assert summary.in_worker_for_ratio(1.25) == pytest.approx(38.0)
    phases = summary.phase_medians()
    assert sum(phases) == pytest.approx(summary.median("wall"))
    # Two trials at once halve the ideal wall, doubling the ratio for the same sweep wall.
    both = PatternSummary("project", 2, 2, sweep_wall=25.0, timings=timings)
    assert both.sweep_ratio == pytest.approx(2 * summary.sweep_ratio)


def test_settings_round_trip_and_reject_unknown_keys():
    settings = BenchSettings(trials=3, concurrency=2, cpus_per_worker=0.99)
    assert BenchSettings.from_dict(settings.to_dict()) == settings
    assert settings.train_config().batch_size == 32
    with pytest.raises(ValueError, match=r"unknown key.*trails"):
        BenchSettings.from_dict({"trails": 3})


@pytest.mark.slow
def test_smoke_prints_both_rows_with_positive_numbers(ray_local, capsys):
    from orchestration.train_fold import TRAIN_ENV

    code = main(["--trials", "1", "--frames", "24", "--timeout", "240"])
    out = capsys.readouterr().out
    rows = {m["name"]: m for m in (ROW.match(line) for line in out.splitlines()) if m}
    assert set(rows) == {"stock", "project"}, out
    for row in rows.values():
        assert int(row["trials"]) == 1, out
        for key in ("wall", "in_worker", "sweep", "ratio"):
            assert float(row[key]) > 0, (key, row[0])
        assert float(row["wall"]) > float(row["in_worker"]), row[0]
    assert code == 0, out
    assert "target: project overhead <= 5 s per trial: " in out
    assert "target: sweep wall <= 1.25x sum(in-worker)/concurrency: " in out
    assert re.search(r"project overhead / stock overhead: \d+\.\d\d", out), out
    # The project's controller settings reached its workers and not the stock ones.
    interval = TRAIN_ENV["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"]
    assert re.search(r"^stock: .*health-check interval 2\.0 s;", out, re.M), out
    assert re.search(rf"^project: .*health-check interval {re.escape(interval)} s;", out, re.M), out
