"""python -m benchmarks.extraction [--data-dir DIR] [--clips N] [--repeats 3]

Extraction benchmark (not a test). Runtime: about 30 seconds on 2 cores.

Measures, in one run and on the same clips (default: the synthetic ``bench`` preset, 500 clips
in every WAV format UrbanSound8K uses), each method ``--repeats`` times, reporting the median:

1. the reference demo's serial librosa loop (``librosa.load`` at 22,050 Hz, normalise,
   ``melspectrogram`` with 40 bands, ``amplitude_to_db``, normalise, pad), run twice: as the demo
   runs it (BLAS with its default thread count) and with BLAS pinned to one thread, the faster
   of the two being the baseline;
2. this project's extraction function, serial, in one process;
3. this project's parallel extraction: Ray tasks on every core, steady state (workers started
   and one untimed full extraction run beforehand: a new Ray session's one-off costs and the
   workers' first-batch costs, ~10% on 500 clips, are not in it), the cache bypassed with
   ``force``;

and prints clips/s, the ratio of each to the baseline, and the largest absolute difference
between the project's features and the reference's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.machine import describe
from features.argtypes import positive_int
from features.cache import default_cache_dir
from features.config import FeatureConfig
from features.dataset import load_dataset
from features.extract import extract_features
from features.logmel import extract_clip, reference_features
from orchestration.headless_ray import headless_ray_args


def _median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall seconds of ``repeats`` calls, and the last call's result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _time_serial(fn, paths: list[str], repeats: int) -> tuple[float, list[np.ndarray]]:
    fn(paths[0])  # first-call costs (numba JIT, lazy imports) are not per-clip work
    return _median_seconds(lambda: [fn(p) for p in paths], repeats)


def _warm_ray_workers(index, cpus: int) -> None:
    """Start one worker per CPU and import the extraction stack in each, outside the timing.

    Then one full extraction through the same code path, so the timed runs do not pay the
    first-call costs (remote function export, the task module's imports in the workers, the
    workers' first large batches).
    """
    import ray

    @ray.remote(num_cpus=1)
    def warm(path: str) -> int:
        from features.extract import extract_batch

        extract_batch([(0, path)], FeatureConfig())
        time.sleep(0.5)  # hold the CPU so every warm-up lands on its own worker
        return os.getpid()

    ray.get([warm.remote(index.table["path"].iloc[0]) for _ in range(cpus)])
    _parallel(index)


def _parallel(index):
    with tempfile.TemporaryDirectory() as cache:
        return extract_features(index, FeatureConfig(), Path(cache), force=True, progress=False)


def run(data_dir: Path | None, clips: int, seed: int, repeats: int = 3) -> dict:
    import ray
    from threadpoolctl import threadpool_limits

    if data_dir is None:
        from features.synthetic import ensure_synthetic

        data_dir = ensure_synthetic(default_cache_dir() / "synthetic" / f"bench-seed{seed}", "bench", seed)
    index = load_dataset(data_dir)
    index = type(index)(root=index.root, table=index.table.head(clips))
    paths = index.table["path"].tolist()
    n = len(paths)
    print(f"{n} clips from {data_dir}; every method timed {repeats}x, median reported", file=sys.stderr)

    ref_default_s, ref_feats = _time_serial(reference_features, paths, repeats)
    with threadpool_limits(limits=1):
        ref_1t_s, _ = _time_serial(reference_features, paths, repeats)
    config = FeatureConfig()
    ours_serial_s, ours = _time_serial(lambda p: extract_clip(p, config), paths, repeats)

    if not ray.is_initialized():
        ray.init(**headless_ray_args(), log_to_driver=False)
    cpus = int(ray.cluster_resources()["CPU"])
    _warm_ray_workers(index, cpus)
    # The run's own clock (ExtractionResult.seconds): the whole pipeline, cache writes included.
    runs = [_parallel(index) for _ in range(repeats)]
    parallel_s = statistics.median(r.seconds for r in runs)
    result = runs[-1]
    by_name = dict(zip(result.featureset.file_names, result.featureset.features, strict=True))
    names = index.table["slice_file_name"].tolist()
    max_diff = max(
        float(np.abs(by_name[name] - ref).max()) for name, ref in zip(names, ref_feats, strict=True)
    )
    serial_diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, ref_feats, strict=True))
    baseline = min(ref_default_s, ref_1t_s)
    rows = [
        ("reference librosa loop (default BLAS threads)", ref_default_s),
        ("reference librosa loop (BLAS 1 thread)", ref_1t_s),
        ("project extract_clip, serial", ours_serial_s),
        (f"project parallel extraction, Ray, {cpus} CPUs", parallel_s),
    ]
    return {
        "clips": n,
        "cpus": cpus,
        "repeats": repeats,
        "rows": [(name, n / s, baseline / s) for name, s in rows],
        "max_abs_diff_parallel": max_diff,
        "max_abs_diff_serial": serial_diff,
        "failures": len(result.failures),
    }


def format_table(report: dict) -> str:
    lines = [
        f"| {'method':<48} | {'clips/s':>8} | {'x baseline':>10} |",
        f"|{'-' * 50}|{'-' * 10}:|{'-' * 11}:|",
    ]
    lines += [f"| {name:<48} | {cps:8.1f} | {ratio:9.2f}x |" for name, cps, ratio in report["rows"]]
    lines.append("")
    lines.append(
        f"{report['clips']} clips, {report['cpus']} CPUs, median of {report['repeats']} runs each; "
        "baseline = the faster reference loop; "
        f"max |project - reference| = {report['max_abs_diff_parallel']:.2e} (parallel), "
        f"{report['max_abs_diff_serial']:.2e} (serial); failures: {report['failures']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.extraction", description="Extraction benchmark.")
    parser.add_argument("--data-dir", type=Path, default=None, help="UrbanSound8K tree (default: synthetic bench set)")
    parser.add_argument("--clips", type=int, default=500, help="clips to use (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs per method (default 3)")
    args = parser.parse_args(argv)
    report = run(args.data_dir, args.clips, args.seed, args.repeats)
    print(describe())
    print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
