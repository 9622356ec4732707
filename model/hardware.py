"""The hardware a training run used, as its rank-0 worker sees it (no Ray, no MLflow).

Recorded in every run's final report (``model.train_loop``) and, by the sweep driver, as tags of
the fold run; the sweep report groups runs by ``hardware_label`` for its time-to-solution
table. CPU: the processor's model name and the CPUs the run reserved per worker (TensorFlow's
thread pool size). GPU: the model and number of GPUs visible to the worker (TensorFlow's
device details). A multi-node run is described by its rank-0 worker.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HARDWARE_KEYS = ("cpu_model", "cpus_per_worker", "gpu_model", "gpus_per_worker", "workers")


def cpu_model(cpuinfo: str | None = None) -> str:
    """``model name`` of the first CPU in /proc/cpuinfo (the platform's processor elsewhere)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return " ".join(value.split())
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def gpu_models(tf: Any) -> list[str]:
    """Names of the GPUs TensorFlow sees in this process (Ray sets CUDA_VISIBLE_DEVICES)."""
    names = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except (RuntimeError, ValueError):
            details = {}
        names.append(str(details.get("device_name") or device.name))
    return names


def worker_hardware(tf: Any, workers: int, cpus_per_worker: int | None) -> dict[str, Any]:
    """This worker's hardware, for a run of ``workers`` workers of ``cpus_per_worker`` CPUs."""
    gpus = gpu_models(tf)
    return {
        "cpu_model": cpu_model(),
        "cpus_per_worker": int(cpus_per_worker) if cpus_per_worker else usable_cpus(),
        "gpu_model": ", ".join(sorted(set(gpus))),
        "gpus_per_worker": len(gpus),
        "workers": int(workers),
    }


def hardware_label(hardware: Mapping[str, Any]) -> str:
    """``CPU (AMD EPYC 7B13, 2 cores)`` or ``2xGPU (Tesla T4)``: what a run trained on."""
    workers = int(hardware.get("workers") or 1)
    gpus = int(hardware.get("gpus_per_worker") or 0) * workers
    if gpus:
        return f"{gpus}xGPU ({hardware.get('gpu_model') or 'unknown GPU'})"
    cores = int(hardware.get("cpus_per_worker") or 1) * workers
    return f"CPU ({hardware.get('cpu_model') or 'unknown CPU'}, {cores} core{'s' if cores != 1 else ''})"
