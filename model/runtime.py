"""TensorFlow runtime settings of one training process (no Ray; TensorFlow is passed in as ``tf``).

The train loop (``model/train_loop.py``) and the training benchmark take these from here, so
the benchmark's plain fit and the loop run under the same settings, and each can be changed
one at a time (``python -m benchmarks.training --factors``):

- Thread pools: intra-op = the CPUs the process holds (rounded, >= 1), inter-op = max(2, that).
  TensorFlow's own default is every core of the machine for both, which oversubscribes a node
  shared by several trials. Pools can only be sized before TensorFlow runs its first op; a
  process that already ran one (a reused Tune trial process) keeps the pools it has.
- Strategy: ``MultiWorkerMirroredStrategy`` only when the run has more than one worker. With
  one worker (a 1-worker Ray Train group, whose backend still sets ``TF_CONFIG``, or a trial
  that trains in its own process) the default strategy runs the same computation without the
  per-step collectives, the gRPC server and the distributed-dataset wrapping.
- Op determinism (``TrainConfig.deterministic``): turned on before the model is built.
  TensorFlow has no public way to turn it off again, so a process where an earlier run turned
  it on stays deterministic; ``describe`` reports what is in force.
- oneDNN (``TF_ENABLE_ONEDNN_OPTS``): TensorFlow reads it once, when it loads; ``onednn_env``
  gives the variable for a setting, to be put in a process's environment before it imports
  TensorFlow. On by default in x86 Linux builds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
ONEDNN_SETTINGS = ("default", "on", "off")
DEFAULT_STRATEGY, MULTI_WORKER_STRATEGY = "default", "multi_worker_mirrored"


def thread_counts(cpus: float) -> tuple[int, int]:
    """(intra-op, inter-op) threads for a process holding ``cpus`` CPUs (1.99 still means 2)."""
    if cpus <= 0:
        raise ValueError(f"thread_counts: cpus must be > 0, got {cpus!r}")
    intra = max(1, round(cpus))
    return intra, max(2, intra)


def configure_threads(tf, intra: int | None, inter: int | None) -> tuple[int, int]:
    """Sizes TensorFlow's pools (None leaves one as it is); returns the pools in force (0 =
    TensorFlow's default, every core). Once TensorFlow ran an op, the pools cannot change."""
    try:
        if intra is not None:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra))
        if inter is not None:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter))
    except RuntimeError:
        pass  # TensorFlow already initialised in this process: keep its pools
    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


def strategy_kind(world_size: int) -> str:
    """Which strategy a run of ``world_size`` workers trains under."""
    if world_size < 1:
        raise ValueError(f"strategy_kind: world_size must be >= 1, got {world_size!r}")
    return DEFAULT_STRATEGY if world_size == 1 else MULTI_WORKER_STRATEGY


def make_strategy(tf, world_size: int, environ: Mapping[str, str] | None = None):
    """The default strategy for one worker; ``MultiWorkerMirroredStrategy`` (cluster from the
    ``TF_CONFIG`` Ray Train's backend sets) for more."""
    if strategy_kind(world_size) == DEFAULT_STRATEGY:
        return tf.distribute.get_strategy()
    if "TF_CONFIG" not in (os.environ if environ is None else environ):
        raise RuntimeError(
            f"{world_size} workers but no TF_CONFIG in this process: MultiWorkerMirroredStrategy "
            "needs the cluster Ray Train's TensorFlow backend describes (orchestration/tf_backend.py)"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


_determinism_on = False  # this process turned op determinism on (it stays on)


def set_determinism(tf, deterministic: bool) -> bool:
    """Turns op determinism on when asked; returns whether it is on in this process (off
    cannot be asked of a process where an earlier run turned it on)."""
    global _determinism_on
    if deterministic:
        tf.config.experimental.enable_op_determinism()
        _determinism_on = True
    return _determinism_on


def onednn_env(setting: str) -> dict[str, str]:
    """The environment for a oneDNN setting: {} for TensorFlow's default, else the variable."""
    if setting not in ONEDNN_SETTINGS:
        raise ValueError(f"oneDNN setting must be one of {ONEDNN_SETTINGS}, got {setting!r}")
    return {} if setting == "default" else {ONEDNN_ENV: "1" if setting == "on" else "0"}


def describe(tf, strategy: str | None = None) -> dict[str, Any]:
    """What this process trains under: pools, strategy (a ``strategy_kind``), determinism,
    oneDNN, OMP, affinity."""
    return {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "strategy": strategy,
        "op_determinism": _determinism_on,  # as set through set_determinism
        "onednn_env": os.environ.get(ONEDNN_ENV, "unset"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
