"""The network's convolutions alone, in pure TensorFlow: the ceiling the Keras loop works under.

Run by ``python -m benchmarks.training`` (its ``limit`` lines) and ``--factors micro``, each in a
fresh process; ~20 s on 2 cores. For every Conv2D of the reference CNN (same input shape,
kernel, channels, padding and stride, from ``model.flops.layer_flops``), one ``tf.function``
step computes the forward convolution and its gradients with respect to the input and the
kernel (``tf.GradientTape``: the two backward convolutions), for a batch of random inputs.
No Keras, no optimizer, no batch norm or activations, no input pipeline. Its FLOPs are
``model.flops.TRAINING_FACTOR`` x the convolutions' forward FLOPs, so its GFLOP/s compares
with the fit's directly: a fit far below it loses time outside the convolutions (the
framework, the loop, the other layers); a micro-benchmark far below the machine's peak means
TensorFlow's kernels run these shapes (few channels, one input channel in the first layer)
far from the hardware's limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

MIN_STEPS = 3
RESULT_PREFIX = "CONV_MICRO_RESULT "
TIMEOUT_S = 1800.0


def run_micro(input_shape: Sequence[int], batch_size: int, cpus: int, steps: int = 10, seed: int = 0) -> dict[str, Any]:
    """Times ``steps`` steps after one untraced warm-up step; returns rates and FLOPs."""
    import tensorflow as tf

    from features.us8k import NUM_CLASSES
    from model import runtime
    from model.cnn import build_cnn
    from model.config import TrainConfig
    from model.flops import TRAINING_FACTOR, layer_flops

    runtime.configure_threads(tf, *runtime.thread_counts(cpus))
    model = build_cnn(tuple(input_shape), NUM_CLASSES, TrainConfig())
    convs = [layer for layer in layer_flops(model) if layer.kind == "conv2d"]
    padding = {layer.name: model.get_layer(layer.name).padding.upper() for layer in convs}
    rng = tf.random.Generator.from_seed(seed)
    inputs = [tf.Variable(rng.normal((batch_size, *layer.input_shape))) for layer in convs]
    kernels = [tf.Variable(rng.normal(layer.kernel) * 0.1) for layer in convs]

    @tf.function
    def step():
        total = tf.constant(0.0)
        for x, k, layer in zip(inputs, kernels, convs, strict=True):
            with tf.GradientTape() as tape:
                y = tf.nn.conv2d(x, k, strides=1, padding=padding[layer.name])
                loss = tf.reduce_sum(y)
            dx, dk = tape.gradient(loss, [x, k])
            total += tf.reduce_sum(dx[:1, :1]) + tf.reduce_sum(dk[:1])  # keeps both gradients live
        return total

    step().numpy()  # trace and warm up
    steps = max(MIN_STEPS, steps)
    start = time.perf_counter()
    for _ in range(steps):
        step().numpy()
    seconds = (time.perf_counter() - start) / steps
    flops = TRAINING_FACTOR * sum(layer.forward for layer in convs)
    return {
        "kind": "micro",
        "batch_size": batch_size,
        "steps": steps,
        "seconds_per_step": seconds,
        "samples_per_second": batch_size / seconds,
        "conv_training_flops_per_sample": flops,
        "gflops": flops * batch_size / seconds / 1e9,
        "layers": [f"{layer.name} {layer.input_shape}->{layer.output_shape} k{layer.kernel}" for layer in convs],
        "runtime": runtime.describe(tf, None),
    }


def run_in_subprocess(input_shape: Sequence[int], batch_size: int, cpus: int, steps: int = 10,
                      env: dict[str, str] | None = None) -> dict[str, Any]:
    """``run_micro`` in a fresh Python process (its own thread pools); {"error": ...} on failure."""
    command = [sys.executable, "-m", "benchmarks.conv_micro", "--shape", *map(str, input_shape),
               "--batch-size", str(batch_size), "--cpus", str(cpus), "--steps", str(steps)]
    full_env = {**os.environ, **(env or {}), "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}
    try:
        done = subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {TIMEOUT_S:.0f} s"}
    found = [line[len(RESULT_PREFIX):] for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exited {done.returncode}: {' | '.join(tail)}"}
    return json.loads(found[-1])


def main(argv: list[str] | None = None) -> int:
    import argparse

    from features.argtypes import positive_int

    parser = argparse.ArgumentParser(prog="python -m benchmarks.conv_micro",
                                     description="The reference CNN's convolutions alone, in pure TensorFlow.")
    parser.add_argument("--shape", type=positive_int, nargs=3, default=[40, 174, 1], help="bands frames channels")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--cpus", type=positive_int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--steps", type=positive_int, default=10)
    args = parser.parse_args(argv)
    result = run_micro(args.shape, args.batch_size, args.cpus, args.steps)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
