"""python -m benchmarks.augmentation [--data-dir DIR] [--clips 96] [--smoke-test]

Augmentation benchmark (not a test). Runtime: about 6 minutes on 2 idle cores (96 clips x 12
variants, each computed three times: serial, Ray warm-up, Ray timed); ``--smoke-test``: a few
seconds of work on 4 clips x 2 variants (for the test suite; its figures mean nothing).

On the same clips (default: the synthetic ``bench`` preset, every WAV format UrbanSound8K
uses), in one run:

1. the chosen library in a serial loop: ``features.augment.augment_clip`` in this process, one
   clip after another (decode, then every variant with ``librosa.effects`` / the numpy
   compressor / noise mixing, then its features), the first clip untimed (librosa's JIT);
2. the project's Ray job, ``features.augment_extract.augment_features`` with ``force`` (the
   cache bypassed, its writes included), after one untimed run that starts the workers.

and prints augmented clips/s of each, variants/s, the ratio Ray / serial and the target
(>= 0.8 x the CPUs Ray has).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import describe
from features.argtypes import positive_int
from features.augment import AugmentConfig, augment_clip
from features.cache import default_cache_dir
from features.config import FeatureConfig
from features.dataset import load_dataset
from orchestration.headless_ray import headless_ray_args

# About Salamon & Bello's dozen variants per clip: 4 stretches, 4 pitch shifts, 2 DRC presets,
# 2 background mixes (another clip of the fold).
BENCH_AUGMENT = AugmentConfig(
    time_stretch=(0.81, 0.93, 1.07, 1.23), pitch_shift=(-2, -1, 1, 2), drc=("music_standard", "speech"),
    noise_mixes=2,
)
SMOKE_AUGMENT = AugmentConfig(pitch_shift=(2,), drc=("radio",))
TARGET_PER_CPU = 0.8


def _serial(index, config: FeatureConfig, augment: AugmentConfig) -> float:
    """Seconds of the serial loop over every clip of ``index`` (partners as the Ray job picks)."""
    from features.augment_extract import plan_rows

    rows = index.table.sort_values("fold", kind="stable").reset_index(drop=True)
    plan = plan_rows(rows, augment)
    items = [(p, n, plan.partner_paths[i]) for i, (p, n) in enumerate(zip(rows["path"], rows["slice_file_name"], strict=True))]
    augment_clip(items[0][0], config, augment, items[0][1], items[0][2])  # JIT and imports: not per-clip work
    start = time.perf_counter()
    for path, name, partners in items:
        augment_clip(path, config, augment, name, partners)
    return time.perf_counter() - start


def _ray(index, config: FeatureConfig, augment: AugmentConfig) -> tuple[float, int]:
    from features.augment_extract import augment_features
    from features.extract import extract_features

    with tempfile.TemporaryDirectory() as cache:
        base = extract_features(index, config, Path(cache), progress=False).featureset
        augment_features(index, config, augment, base, Path(cache), force=True, progress=False)  # warm-up
        result = augment_features(index, config, augment, base, Path(cache), force=True, progress=False)
    return result.seconds, len(result.failures)


def spread_over_folds(table, clips: int):
    """``clips`` rows taken round-robin over the folds (the first of each fold, then the second,
    ...), so every fold has company for background-noise mixing (a partner is another
    recording of the same fold) however the CSV is ordered."""
    rank = table.groupby("fold", sort=False).cumcount()
    order = table.assign(_rank=rank).sort_values(["_rank", "fold"], kind="stable")
    return order.drop(columns="_rank").head(clips).reset_index(drop=True)


def run(data_dir: Path | None, clips: int, seed: int = 0, smoke: bool = False) -> dict:
    import ray

    if data_dir is None:
        from features.synthetic import ensure_synthetic

        preset = "tiny" if smoke else "bench"
        data_dir = ensure_synthetic(default_cache_dir() / "synthetic" / f"{preset}-seed{seed}", preset, seed)
    index = load_dataset(data_dir)
    index = type(index)(root=index.root, table=spread_over_folds(index.table, clips))
    config, augment = FeatureConfig(), SMOKE_AUGMENT if smoke else BENCH_AUGMENT
    print(f"{len(index)} clips x {augment.per_clip} variants from {data_dir}", file=sys.stderr)
    serial_s = _serial(index, config, augment)
    if not ray.is_initialized():
        ray.init(**headless_ray_args(), log_to_driver=False)
    cpus = int(ray.cluster_resources()["CPU"])
    ray_s, failures = _ray(index, config, augment)
    return report(len(index), augment.per_clip, cpus, serial_s, ray_s, failures)


def report(clips: int, variants: int, cpus: int, serial_s: float, ray_s: float, failures: int) -> dict:
    """The table's figures, all derived from the two measured durations."""
    rows = [("librosa serial loop (augment_clip), 1 process", serial_s),
            (f"project Ray job (augment_features), {cpus} CPUs", ray_s)]
    return {
        "clips": clips, "variants": variants, "cpus": cpus, "failures": failures,
        "rows": [(name, clips / s, clips * variants / s) for name, s in rows],
        "ratio": serial_s / ray_s, "target": TARGET_PER_CPU * cpus,
    }


def format_table(report: dict) -> str:
    lines = [f"| {'method':<48} | {'clips/s':>8} | {'variants/s':>10} |", f"|{'-' * 50}|{'-' * 10}:|{'-' * 12}:|"]
    lines += [f"| {name:<48} | {cps:8.2f} | {vps:10.1f} |" for name, cps, vps in report["rows"]]
    met = "met" if report["ratio"] >= report["target"] else "NOT met"
    lines += ["", f"{report['clips']} clips x {report['variants']} variants, {report['cpus']} CPUs; Ray / serial = "
              f"{report['ratio']:.2f}x (target >= {report['target']:.1f}x: {met}); failures: {report['failures']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.augmentation", description="Augmentation benchmark.")
    parser.add_argument("--data-dir", type=Path, default=None, help="UrbanSound8K tree (default: synthetic bench set)")
    parser.add_argument("--clips", type=positive_int, default=None, help="clips to use (default 96; smoke test 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke-test", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args(argv)
    clips = args.clips or (4 if args.smoke_test else 96)
    result = run(args.data_dir, clips, args.seed, args.smoke_test)
    print(describe())
    print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
