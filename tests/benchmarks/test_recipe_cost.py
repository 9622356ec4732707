"""Smoke test of the recipe cost benchmark: it builds and trains every recipe's network a few
steps and prints a row per recipe whose GPU estimate follows from its printed parts (not a
timed test)."""

from __future__ import annotations

import re

import pytest

from benchmarks.recipe_cost import GPU_FLOPS_HIGH, TRAIN_ROWS, gpu_flops_low, main, recipe_spec
from orchestration.recipes import available, recipe_text

ROW = re.compile(
    r"^(?P<name>[a-z-]+)\s+(?P<net>[a-z-]+)\s+(?P<input>\d+x\d+x\d+)\s+(?P<params>[\d,]+)\s+(?P<mflop>\d+)\s+"
    r"(?P<rows>[\d,]+)\s+(?P<batch>\d+)\s+(?P<rate>[\d.]+)\s+(?P<sepoch>\d+)\s+(?P<ratio>[\d.]+)x\s+"
    r"(?P<configs>\d+)x10x(?P<epochs>\d+)\s+(?P<hi>[\d.]+)-(?P<lo>[\d.]+)$"
)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.slow
def test_smoke_prints_one_row_per_recipe_with_consistent_arithmetic(capsys):
    assert main(["--smoke-test"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ") and " SIMD " in out.splitlines()[0]
    rows = {m["name"]: m for m in (ROW.match(line) for line in out.splitlines()) if m}
    assert next(iter(rows)) == "reference" and set(rows) == set(available()), out
    ref_mflop = float(rows["reference"]["mflop"])
    assert _int(rows["reference"]["params"]) == 66_410
    assert _int(rows["sb-cnn"]["params"]) == 241_434  # as published on 128 x 128
    for name, m in rows.items():
        spec = recipe_spec(name)
        assert _int(m["rows"]) == TRAIN_ROWS * (1 + (0 if spec.augment.empty else spec.augment.per_clip))
        assert int(m["epochs"]) == spec.train.epochs and int(m["batch"]) == 4  # the smoke batch
        assert float(m["rate"]) > 0
        flops = int(m["configs"]) * 10 * int(m["epochs"]) * _int(m["rows"]) * 3 * float(m["mflop"]) * 1e6
        # Printed to 0.1 h, MFLOP to the unit: agree within that rounding.
        assert float(m["hi"]) == pytest.approx(flops / GPU_FLOPS_HIGH / 3600, rel=0.01, abs=0.06)
        assert float(m["lo"]) == pytest.approx(flops / gpu_flops_low(ref_mflop * 1e6) / 3600, rel=0.01, abs=0.06)
        # The recipe file's header states the same estimate (kept in step with the recipe).
        assert f"{m['hi']}-{m['lo']} GPU-hours" in recipe_text(name), name
        # The seconds are printed to the unit, the ratio from the unrounded ones: it lies inside
        # the interval the rounding allows (on a fast machine, a few seconds, that is wide).
        s, r = int(m["sepoch"]), int(rows["reference"]["sepoch"])
        low, high = max(s - 0.5, 0) / (r + 0.5), (s + 0.5) / max(r - 0.5, 1e-9)
        assert low - 0.005 <= float(m["ratio"]) <= high + 0.005, (name, m["ratio"], s, r)
    # The vgg-bn recipes cost more per row than the reference (FLOPs, not timing).
    assert float(rows["best"]["mflop"]) > 5 * ref_mflop


def test_low_gpu_throughput_is_the_demo_anchor():
    # 7,000 clips x 3 x forward FLOPs in 2 s: the reference demo's published 1-GPU epoch.
    assert gpu_flops_low(250e6) == pytest.approx(7000 * 3 * 250e6 / 2)
