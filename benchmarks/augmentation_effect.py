"""python -m benchmarks.augmentation_effect [--folds 1,2,3] [--epochs 6] [--work-dir DIR] [--smoke-test]

Does offline time-stretch + pitch-shift augmentation help where it must? Runtime with the
defaults (the synthetic set and its features, the augmented rows, two sweeps of 3 folds): about
2.5 minutes on a 2-core Xeon with AVX-512 (measured), several times that on a 2-core AVX2
machine; ``--smoke-test`` about 1-2 minutes (the
``tiny-shifted`` set, fold 1, 1 epoch, one pitch-shift variant).

The synthetic ``shifted`` preset (``features/synthetic/plan.py``) draws every recording's
character from the middle quarter of its class's ranges, then plays every sound event of
fold 1 4 semitones higher and 26% faster, and of fold 2 4 semitones lower and 21% slower. So a
model tested on fold 1 or 2 never trained on a sound shifted that way; fold 3 (unshifted) is
the control.

Two real sweeps (``orchestration.cv_sweep.main``, in this process: Ray tasks for the features and the
augmented rows, Ray Tune trials, MLflow in a sqlite file under the work directory), the same
in everything but the augmentation: the same folds, the same seed (``train.seed`` 0: same
initial weights, same validation split), the demo's features (40 bands x 87 frames) and
training (Adam 1e-3, batch 32), the SB-CNN network (``train.architecture=sb-cnn``: Salamon &
Bello's, whose flatten + dense layers tie what it learned to where in the spectrogram it saw
it; the reference network ends in global average pooling, built to care less about where a
pattern sits: ``--set train.architecture=reference`` runs the comparison with it, README
"Augmentation"). ``with``: every training clip also gets 2 time-stretched (x0.8, x1.25) and
2 pitch-shifted (-4, +4 semitones) copies (``--set augment.time_stretch=[...]
augment.pitch_shift=[...]``; spanning the shifts, as one augments for the variation one
expects). ``without``: no augmentation,
trained (1 + variants) x as many epochs, so both runs take the same number of optimizer steps
(the loop keeps the best validation epoch either way): the difference is the data, not
longer training. Printed: test accuracy per fold with and without, the difference, and the
mean over the folds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.machine import describe
from features.argtypes import positive_int
from features.synthetic.plan import PRESETS
from features.us8k import parse_folds

TIME_STRETCH = [0.8, 1.25]
PITCH_SHIFT = [-4, 4]
NETWORK = ["--set", "train.architecture=sb-cnn"]
LEARNING_RATE = 1e-3
SMOKE = {"preset": "tiny-shifted", "folds": "1", "epochs": 1, "time_stretch": [], "pitch_shift": [4]}


def sweep_args(*, preset: str, folds: str, epochs: int, work: Path, name: str,
               augment: dict[str, list[float]] | None, extra: Sequence[str] = ()) -> list[str]:
    """The cv_sweep command line of one condition (the demo's network and features)."""
    args = [
        "--folds", folds, "--epochs", str(epochs), "--no-refit", "--no-log-models",
        "--search-space", json.dumps({"learning_rate": [LEARNING_RATE]}),
        "--set", f"sweep.synthetic_preset={preset}",
        "--cache-dir", str(work / "cache"), "--storage-path", str(work / "ray"),
        "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", "--experiment", "augmentation-effect",
        "--name", name, *NETWORK, *extra,
    ]
    for key, values in (augment or {}).items():
        args += ["--set", f"augment.{key}={json.dumps(values)}"]
    return args


def run_condition(args: list[str], log: Path) -> dict[int, float]:
    """One sweep, in this process (both conditions share one Ray instance: the first sweep
    starts it), its output in ``log``; its single configuration's test accuracy per fold."""
    from orchestration.cv_sweep import main as cv_sweep

    with log.open("w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        code = cv_sweep(args)
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise RuntimeError(f"sweep {' '.join(args)} failed with exit code {code}; log {log}:\n{tail}")
    storage = Path(args[args.index("--storage-path") + 1]) / args[args.index("--name") + 1]
    (config,) = json.loads((storage / "results.json").read_text())["configurations"]
    return {int(k): float(v) for k, v in config["fold_accuracy"].items()}


def format_report(folds: Sequence[int], preset: str, without: dict[int, float], with_: dict[int, float],
                  seconds: dict[str, float], load_before, load_after) -> str:
    speeds = dict(PRESETS[preset].fold_speed)
    lines = [
        f"preset {preset}; load average before {_load(load_before)}, after {_load(load_after)}; "
        f"wall: without {seconds['without']:.0f} s, with {seconds['with']:.0f} s",
        "",
        f"{'test fold':>9} {'shift':>16} {'without':>8} {'with':>8} {'difference':>10}",
    ]
    diffs = []
    for fold in folds:
        factor = speeds.get(fold)
        shift = f"x{factor:.2f} speed" if factor else "none (control)"
        diff = with_[fold] - without[fold]
        diffs.append(diff)
        lines.append(f"{fold:>9} {shift:>16} {without[fold]:>8.3f} {with_[fold]:>8.3f} {diff:>+10.3f}")
    mean_without = statistics.fmean(without[f] for f in folds)
    mean_with = statistics.fmean(with_[f] for f in folds)
    lines.append(f"{'mean':>9} {'':>16} {mean_without:>8.3f} {mean_with:>8.3f} {mean_with - mean_without:>+10.3f}")
    shifted = [d for f, d in zip(folds, diffs, strict=True) if f in speeds]
    if shifted:
        lines += ["", f"shifted folds: augmentation {'helps' if statistics.fmean(shifted) > 0 else 'does NOT help'} "
                      f"(mean difference {statistics.fmean(shifted):+.3f} over {len(shifted)} fold(s))"]
    return "\n".join(lines)


def _load(values) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def main(argv: Sequence[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="python -m benchmarks.augmentation_effect",
                                     description="Accuracy with and without offline augmentation on the shifted set.")
    parser.add_argument("--folds", default="1,2,3", help="test folds (default 1,2,3: both shifted ones, a control)")
    parser.add_argument("--epochs", type=positive_int, default=6, help="epochs of the augmented run (default 6)")
    parser.add_argument("--preset", default="shifted", choices=[p for p in PRESETS if PRESETS[p].fold_speed])
    parser.add_argument("--time-stretch", type=float, nargs="+", default=TIME_STRETCH, help="rates of the with run")
    parser.add_argument("--pitch-shift", type=float, nargs="+", default=PITCH_SHIFT, help="semitones of the with run")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="passed to both sweeps, e.g. train.filters=[8,8,16,16]")
    parser.add_argument("--work-dir", type=Path, help="cache, sweep state and MLflow store (default: a temporary one)")
    parser.add_argument("--smoke-test", action="store_true", help="tiny-shifted set, fold 1, 1 epoch: runs, not figures")
    args = parser.parse_args(argv)
    preset, folds_text, epochs = args.preset, args.folds, args.epochs
    ts, ps = args.time_stretch, args.pitch_shift
    extra: list[str] = [arg for assignment in args.set for arg in ("--set", assignment)]
    if args.smoke_test:
        preset, folds_text, epochs, ts, ps = (SMOKE[k] for k in ("preset", "folds", "epochs", "time_stretch", "pitch_shift"))
        extra += ["--set", "features.frames=44"]
    folds = parse_folds(folds_text)
    augment = {"time_stretch": ts, "pitch_shift": ps}
    variants = len(ts) + len(ps)
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory(prefix="aug-effect-") as tmp:
        work = (args.work_dir or Path(tmp)).absolute()
        work.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        load_before = os.getloadavg()
        results, seconds = {}, {}
        for condition, aug, n_epochs in (("without", None, epochs * (1 + variants)), ("with", augment, epochs)):
            began = time.perf_counter()
            cmd = sweep_args(preset=preset, folds=folds_text, epochs=n_epochs, work=work, augment=aug,
                             name=f"{condition}-{stamp}", extra=extra)
            print(f"{condition}: python -m orchestration.cv_sweep {' '.join(cmd)}", flush=True)
            results[condition] = run_condition(cmd, work / f"{condition}-{stamp}.log")
            seconds[condition] = time.perf_counter() - began
        print(format_report(folds, preset, results["without"], results["with"], seconds, load_before, os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
