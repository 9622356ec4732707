"""The on-the-fly augmentation rows of ``python -m benchmarks.training --augmentation``.

Runtime: about 1-2 minutes per setting on 2 idle cores with the benchmark's defaults (4
epochs of ~1,500 clips of the reference CNN each), so ~8 minutes for all six.

Every setting trains the same network from the same seed on the same clips, in this process,
through the train loop's own pipeline (``model.pipeline.make_dataset``: tf.data, global
batches, augmentation mapped over training batches) and with its fit() under
``no_autotune_threads`` as the loop runs it; only the TrainConfig's augmentation fields
differ. samples/s is the training phase of the epochs after the warm-up (the loop's rule);
the ratio is against the un-augmented ``none`` row of the same run, and the target is
``all`` >= 0.9x ``none``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.training import FRAMES, MethodResult, _load, _set_tf_threads
from benchmarks.training_result import EpochTimer
from features.us8k import NUM_CLASSES
from model.config import TrainConfig

TARGET_RATIO = 0.9
MASKS = {"freq_masks": 2, "freq_mask_width": 8, "time_masks": 2, "time_mask_width": 20}
SETTINGS: dict[str, dict[str, Any]] = {
    "none": {},
    "time_shift": {"time_shift": 20},
    "masks": MASKS,
    "mixup": {"mixup_alpha": 0.2},
    "label_smoothing": {"label_smoothing": 0.1},
    "all": {"time_shift": 20, **MASKS, "mixup_alpha": 0.2, "label_smoothing": 0.1},
}


def fitted_settings(shape: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """SETTINGS with widths and shifts capped to a small (smoke-test) input."""
    bands, frames = shape[0], shape[1]
    caps = {"freq_mask_width": bands, "time_mask_width": frames, "time_shift": frames}
    return {
        name: {k: min(v, caps[k]) if k in caps else v for k, v in fields.items()}
        for name, fields in SETTINGS.items()
    }


def run_setting(name: str, arrays: dict[str, np.ndarray], config: TrainConfig, cpus: int) -> MethodResult:
    import tensorflow as tf
    import tf_keras as keras

    from model._tf_compat import no_autotune_threads
    from model.cnn import compile_model
    from model.networks import build_network
    from model.pipeline import make_dataset

    start = time.perf_counter()
    threads = _set_tf_threads(tf, cpus)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    steps = len(arrays["y_train"]) // config.batch_size
    if steps == 0:
        raise ValueError(f"{len(arrays['y_train'])} training clips, fewer than one batch of {config.batch_size}")
    shared = {"seed": config.seed, "config": config, "num_classes": NUM_CLASSES}
    train = make_dataset(tf, arrays["x_train"], arrays["y_train"], config.batch_size,
                         train_passes=config.epochs, **shared)
    val = make_dataset(tf, arrays["x_val"], arrays["y_val"], config.batch_size, **shared)
    model = compile_model(build_network(arrays["x_train"].shape[1:], NUM_CLASSES, config), config,
                          steps_per_epoch=steps)
    timer = EpochTimer()
    with no_autotune_threads():
        model.fit(train, validation_data=val, epochs=config.epochs, steps_per_epoch=steps,
                  callbacks=[timer.callback(keras)], verbose=0)
    usable = steps * config.batch_size
    return MethodResult(
        name=f"augmentation: {name}",
        epoch_rates=tuple(usable / s for s in timer.train_seconds),
        warmup=0,
        wall_seconds=time.perf_counter() - start,
        samples_per_epoch=usable,
        details={"tf_threads": threads, **{k: getattr(config, k) for k in SETTINGS[name]}},
    )


def run_augmentation(arrays: dict[str, np.ndarray], config: TrainConfig, cpus: int,
                     settings: Sequence[str]) -> list[MethodResult]:
    """One row per setting, ``none`` first (the ratio's denominator)."""
    chosen = fitted_settings(arrays["x_train"].shape[1:])
    order = ["none", *[s for s in settings if s != "none"]]
    return [run_setting(name, arrays, config.replace(**chosen[name]), cpus) for name in order]


def target_lines(results: list[MethodResult]) -> list[str]:
    base = next(r for r in results if r.name == "augmentation: none").samples_per_second
    full = next((r for r in results if r.name == "augmentation: all"), None)
    if full is None or base <= 0:
        return [f"target: all augmentations >= {TARGET_RATIO}x none: not measured"]
    ratio = full.samples_per_second / base
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    return [f"target: all augmentations >= {TARGET_RATIO}x none: {verdict} ({ratio:.2f}x)"]


def run(*, epochs: int, warmup: int, samples: int, batch_size: int, seed: int,
        settings: Sequence[str]) -> dict[str, object]:
    from benchmarks.training import _with_warmup, make_bench_featureset, prepare_arrays

    cpus = len(os.sched_getaffinity(0))
    config = TrainConfig(batch_size=batch_size, epochs=warmup + epochs, checkpoint_every=0, seed=seed)
    arrays = prepare_arrays(make_bench_featureset(samples, seed), config)
    load_before = os.getloadavg()
    results = [_with_warmup(r, warmup) for r in run_augmentation(arrays, config, cpus, settings)]
    return {"results": results, "cpus": cpus, "epochs": epochs, "warmup": warmup, "batch_size": batch_size,
            "train_clips": len(arrays["y_train"]), "load_before": load_before, "load_after": os.getloadavg()}


def format_report(report: dict[str, object]) -> str:
    results: list[MethodResult] = report["results"]
    base = results[0].samples_per_second
    lines = [
        f"On-the-fly augmentation, reference CNN, 40x{FRAMES}x1 inputs, batch {report['batch_size']}, "
        f"{report['train_clips']} training clips, in this process (tf.data pipeline of the train loop); "
        f"{report['epochs']} timed epoch(s) after {report['warmup']} warm-up epoch(s); {report['cpus']} CPUs; "
        f"load average before {_load(report['load_before'])}, after {_load(report['load_after'])}.",
        "",
        f"{'setting':<32} {'samples/s':>10} {'vs none':>8} {'wall s':>8}",
    ]
    for r in results:
        ratio = r.samples_per_second / base if base > 0 else 0.0
        lines.append(f"{r.name:<32} {r.samples_per_second:>10.1f} {ratio:>7.2f}x {r.wall_seconds:>8.1f}")
    lines += ["", *target_lines(results), "", "per-epoch training samples/s (warm-up epochs in brackets):"]
    for r in results:
        rates = [f"[{x:.1f}]" if i < r.warmup else f"{x:.1f}" for i, x in enumerate(r.epoch_rates)]
        extras = ", ".join(f"{k}={v}" for k, v in r.details.items())
        lines.append(f"  {r.name}: {' '.join(rates)}; {extras}")
    return "\n".join(lines)
