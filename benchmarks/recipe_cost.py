"""python -m benchmarks.recipe_cost [--recipes NAME ...] [--steps 10] [--smoke-test]

What each named recipe (``orchestration/recipes/``) costs to train. Runtime: about 2-4 minutes
on 2 idle cores for the four recipes (one warm-up and one timed pass of ``--steps`` batches
each; the vgg-bn recipes on 128 x 174 inputs are most of it); ``--smoke-test`` ~30 s.

Per recipe, in one run, the ``reference`` recipe first (the baseline of the ratios):

- its network on its input, as the sweep would build it: parameters, and forward FLOPs per
  clip counted from the built model's conv and dense layers (2 x multiply-adds; batch norm,
  pooling and activations left out: a few % at most);
- training rows per epoch on the real dataset under the 10-fold protocol: 8,732 clips x 9/10
  (nine training folds) x 9/10 (the grouped validation split) = 7,073 original rows, times
  1 + the offline variants per clip (``augment``);
- training samples/s measured here on the CPU: the recipe's batch size, optimizer, schedule
  and on-the-fly augmentation, through the train loop's tf.data pipeline
  (``model.pipeline.make_dataset``), on random inputs of the recipe's shape (the cost of a
  step does not depend on the values); the first pass of ``--steps`` batches is the warm-up
  (graph tracing), the second is timed;
- seconds per epoch here = rows per epoch / samples/s;
- a GPU estimate for the whole recipe (its configurations x 10 folds x its epochs) on one
  T4-class GPU: training FLOPs = 3 x forward FLOPs per row (forward + backward) x rows, over
  an achieved throughput of 2.6 TFLOP/s (what the reference demo's published "2 s per
  7,000-clip epoch on 1 GPU" implies for its 66k-parameter CNN: small layers use a GPU
  poorly) to 10 TFLOP/s (~15% of the T4's 65 TFLOP/s float16 tensor-core peak, reachable
  by the larger vgg-bn layers under mixed precision). An estimate, not a measurement: no GPU
  here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.machine import describe
from features.argtypes import positive_int
from features.us8k import FOLDS, NUM_CLASSES
from model.flops import forward_flops_per_sample

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

US8K_CLIPS = 8732
VAL_FRACTION = 0.1
TRAIN_ROWS = round(US8K_CLIPS * (len(FOLDS) - 1) / len(FOLDS) * (1 - VAL_FRACTION))  # 7,073
# Achieved training throughput of one T4-class GPU (FLOP/s), low and high (module docstring).
DEMO_GPU_SECONDS_PER_EPOCH, DEMO_EPOCH_CLIPS = 2.0, 7000
GPU_FLOPS_HIGH = 10e12
BASELINE = "reference"


@dataclass(frozen=True)
class RecipeCost:
    name: str
    architecture: str
    input_shape: tuple[int, int, int]
    params: int
    forward_flops: float  # per clip
    rows_per_epoch: int
    epochs: int
    configurations: int
    batch_size: int
    samples_per_second: float
    timed_samples: int

    @property
    def cpu_seconds_per_epoch(self) -> float:
        return self.rows_per_epoch / self.samples_per_second

    @property
    def training_flops(self) -> float:
        """The whole recipe: configurations x 10 folds x epochs x rows x 3 x forward."""
        return self.configurations * len(FOLDS) * self.epochs * self.rows_per_epoch * 3 * self.forward_flops

    def gpu_hours(self, flops_per_second: float) -> float:
        return self.training_flops / flops_per_second / 3600


def recipe_spec(name: str):
    """The sweep spec ``--recipe name --data-dir <real dataset>`` gives (no demo shrink)."""
    from orchestration.config import SweepSpec
    from orchestration.recipes import load_recipe, merge_sections

    return SweepSpec.from_dict(merge_sections(load_recipe(name), {"sweep": {"data_dir": "UrbanSound8K"}}))


def measure(name: str, steps: int, batch_size: int | None, seed: int) -> RecipeCost:
    import tensorflow as tf
    import tf_keras as keras

    from benchmarks.training import _set_tf_threads
    from model._tf_compat import no_autotune_threads
    from model.cnn import compile_model
    from model.networks import build_network
    from model.pipeline import make_dataset
    from orchestration.plan import configurations

    spec = recipe_spec(name)
    features = spec.features
    config = spec.train.replace(epochs=2, checkpoint_every=0, warmup_epochs=min(spec.train.warmup_epochs, 0.5),
                                batch_size=batch_size or spec.train.batch_size, seed=seed)
    shape = (features.bands, features.frames, features.channels)
    _set_tf_threads(tf, len(os.sched_getaffinity(0)))
    keras.utils.set_random_seed(seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()  # as the train loop does
    rng = np.random.default_rng(seed)
    n = steps * config.batch_size
    x = rng.standard_normal((n, *shape), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, n).astype(np.int32)
    train = make_dataset(tf, x, y, config.batch_size, seed=seed, train_passes=2, config=config,
                         num_classes=NUM_CLASSES)
    model = compile_model(build_network(shape, NUM_CLASSES, config), config, steps_per_epoch=steps)
    seconds: list[float] = []
    began = [0.0]
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs=None: began.__setitem__(0, time.perf_counter()),
        on_epoch_end=lambda epoch, logs=None: seconds.append(time.perf_counter() - began[0]),
    )
    with no_autotune_threads():
        model.fit(train, epochs=2, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    return RecipeCost(
        name=name,
        architecture=config.architecture,
        input_shape=shape,
        params=int(model.count_params()),
        forward_flops=float(forward_flops_per_sample(model)),
        rows_per_epoch=TRAIN_ROWS * (1 + (0 if spec.augment.empty else spec.augment.per_clip)),
        epochs=spec.train.epochs,
        configurations=max(1, len(configurations(spec))),
        batch_size=config.batch_size,
        samples_per_second=n / seconds[1],
        timed_samples=n,
    )


def gpu_flops_low(reference_forward_flops: float) -> float:
    """What the demo's published 1-GPU epoch time implies for the reference network."""
    return DEMO_EPOCH_CLIPS * 3 * reference_forward_flops / DEMO_GPU_SECONDS_PER_EPOCH


def format_report(costs: list[RecipeCost], steps: int, load_before, load_after) -> str:
    base = next(c for c in costs if c.name == BASELINE)
    low = gpu_flops_low(base.forward_flops)
    lines = [
        f"Recipe training cost: {steps} timed batches per recipe after a warm-up pass of as many, on this CPU; "
        f"load average before {_load(load_before)}, after {_load(load_after)}. Rows per epoch: {TRAIN_ROWS:,} "
        "original training rows per fold (8,732 x 0.9 x 0.9) x (1 + offline variants per clip).",
        f"GPU estimate: configurations x 10 folds x epochs x rows x 3 x forward FLOPs, over {low / 1e12:.1f} "
        f"(the demo's 7,000 clips x 3 x {base.forward_flops / 1e6:.0f} MFLOP in 2 s on 1 GPU) to "
        f"{GPU_FLOPS_HIGH / 1e12:.0f} TFLOP/s on one T4-class GPU.",
        "",
        f"{'recipe':<12} {'network':<9} {'input':>11} {'params':>9} {'fwd MFLOP':>9} {'rows/epoch':>10} "
        f"{'batch':>5} {'samples/s':>9} {'s/epoch':>8} {'vs ref':>7} {'runs':>11} {'T4 GPU-h':>11}",
    ]
    for c in costs:
        runs = f"{c.configurations}x10x{c.epochs}"
        gpu = f"{c.gpu_hours(GPU_FLOPS_HIGH):.1f}-{c.gpu_hours(low):.1f}"
        ratio = c.cpu_seconds_per_epoch / base.cpu_seconds_per_epoch
        lines.append(
            f"{c.name:<12} {c.architecture:<9} {'x'.join(map(str, c.input_shape)):>11} {c.params:>9,} "
            f"{c.forward_flops / 1e6:>9.0f} {c.rows_per_epoch:>10,} {c.batch_size:>5} {c.samples_per_second:>9.1f} "
            f"{c.cpu_seconds_per_epoch:>8.0f} {ratio:>6.2f}x {runs:>11} {gpu:>11}"
        )
    lines += ["", "arithmetic per recipe (GPU-hours at the high and the low throughput):"]
    for c in costs:
        lines.append(
            f"  {c.name}: {c.configurations} x 10 x {c.epochs} x {c.rows_per_epoch:,} x 3 x "
            f"{c.forward_flops / 1e6:.0f} MFLOP = {c.training_flops:.3g} FLOP; / {GPU_FLOPS_HIGH:.3g} = "
            f"{c.gpu_hours(GPU_FLOPS_HIGH):.1f} h; / {low:.3g} = {c.gpu_hours(low):.1f} h; "
            f"CPU here: {c.cpu_seconds_per_epoch:.0f} s/epoch"
        )
    return "\n".join(lines)


def _load(values) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def main(argv: Sequence[str] | None = None) -> int:
    from orchestration.recipes import available

    parser = argparse.ArgumentParser(prog="python -m benchmarks.recipe_cost", description=__doc__.splitlines()[2])
    parser.add_argument("--recipes", nargs="+", choices=available(), default=list(available()),
                        help="recipes to measure (the reference is always measured: the baseline)")
    parser.add_argument("--steps", type=positive_int, default=10, help="timed batches per recipe (default 10)")
    parser.add_argument("--batch-size", type=positive_int, help="override every recipe's batch size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke-test", action="store_true", help="2 batches of 4 per recipe: runs, not figures")
    args = parser.parse_args(argv)
    steps, batch = (2, 4) if args.smoke_test else (args.steps, args.batch_size)
    names = [BASELINE, *[r for r in args.recipes if r != BASELINE]]
    print(describe(), flush=True)
    load_before = os.getloadavg()
    costs = [measure(name, steps, batch, args.seed) for name in names]
    print(format_report(costs, steps, load_before, os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
