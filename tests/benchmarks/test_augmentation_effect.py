"""The augmentation-effect benchmark: its two sweeps differ only in the augmentation (and the
epochs that keep their optimizer steps equal), its report's arithmetic, and its smoke mode
end to end on real Ray sweeps (not a timed test, not an accuracy test)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.augmentation_effect import format_report, main, sweep_args
from orchestration.cv_sweep import build_parser, spec_from_args

ROW = re.compile(r"^\s+(?P<fold>\d+|mean)\s+(?P<shift>x[\d.]+ speed|none \(control\))?\s*"
                 r"(?P<without>[\d.]+)\s+(?P<with>[\d.]+)\s+(?P<diff>[+-][\d.]+)$")


def _spec(args):
    return spec_from_args(build_parser().parse_args(args))


def test_the_two_sweeps_differ_only_in_augmentation_and_epochs(tmp_path):
    common = {"preset": "shifted", "folds": "1,2,3", "work": tmp_path, "name": "x"}
    without = _spec(sweep_args(**common, epochs=72, augment=None))
    with_ = _spec(sweep_args(**common, epochs=8, augment={"time_stretch": [0.8, 1.25], "pitch_shift": [-4, 4]}))
    assert without.augment.empty and with_.augment.per_clip == 4
    assert (without.train.epochs, with_.train.epochs) == (72, 8)
    assert without.train.replace(epochs=8) == with_.train  # same network, seed, batch, learning rate
    assert without.features == with_.features and without.sweep == with_.sweep
    assert with_.sweep.synthetic_preset == "shifted" and with_.sweep.folds == (1, 2, 3)
    assert with_.train.architecture == "sb-cnn"
    assert with_.sweep.search_space == {"learning_rate": [1e-3]} and not with_.sweep.refits


def _rows(text: str) -> dict[str, re.Match]:
    return {m["fold"]: m for m in (ROW.match(line) for line in text.splitlines()) if m}


def test_report_gives_per_fold_and_mean_differences_and_says_when_it_does_not_help():
    load = (1.0, 1.0, 1.0)
    text = format_report((1, 2, 3), "shifted", {1: 0.5, 2: 0.4, 3: 0.8}, {1: 0.7, 2: 0.5, 3: 0.75},
                         {"without": 10, "with": 12}, load, load)
    rows = _rows(text)
    assert rows["1"]["shift"] == "x1.26 speed" and rows["2"]["shift"] == "x0.79 speed"
    assert rows["3"]["shift"] == "none (control)"
    assert [float(rows[f]["diff"]) for f in "123"] == pytest.approx([0.2, 0.1, -0.05])
    assert float(rows["mean"]["without"]) == pytest.approx(0.567, abs=1e-3)
    assert float(rows["mean"]["diff"]) == pytest.approx(0.083, abs=1e-3)
    assert "shifted folds: augmentation helps (mean difference +0.150 over 2 fold(s))" in text
    worse = format_report((1, 2), "shifted", {1: 0.5, 2: 0.5}, {1: 0.4, 2: 0.5}, {"without": 1, "with": 1}, load, load)
    assert "augmentation does NOT help (mean difference -0.050" in worse


@pytest.mark.slow
def test_smoke_runs_both_sweeps_and_prints_the_table(ray_local, tmp_path, capsys):
    assert main(["--smoke-test", "--work-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ")
    rows = _rows(out)
    assert set(rows) == {"1", "mean"} and rows["1"]["shift"] == "x1.26 speed"
    one = rows["1"]
    assert 0 <= float(one["without"]) <= 1 and 0 <= float(one["with"]) <= 1
    assert float(one["diff"]) == pytest.approx(float(one["with"]) - float(one["without"]), abs=0.0015)
    assert re.search(r"shifted folds: augmentation (helps|does NOT help)", out)
    # Both sweeps ran for real: their logs, results and the augmented rows' cache are there.
    logs = sorted(p.name.split("-")[0] for p in Path(tmp_path).glob("*.log"))
    assert logs == ["with", "without"]
    assert any((tmp_path / "cache" / "augmented").iterdir())
    with_log = next(tmp_path.glob("with-*.log")).read_text()
    assert "augmented" in with_log
