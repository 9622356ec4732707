"""The machine a benchmark ran on: CPU model, cores, SIMD flags, load; printed beside figures.

Figures differ several-fold between machines (AVX-512 vs AVX2 alone changes TensorFlow's conv
throughput), so every benchmark states where it ran.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

SIMD_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_model_and_flags(cpuinfo: str | None = None) -> tuple[str, tuple[str, ...]]:
    """``model name`` and the SIMD flags of interest from /proc/cpuinfo (first CPU)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    model, flags = platform.processor() or "unknown CPU", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model in ("", "unknown CPU", platform.processor()):
            model = value.strip()
        elif key == "flags":
            flags = set(value.split())
            break
    return model, tuple(f for f in SIMD_FLAGS if f in flags)


def describe() -> str:
    """One line: CPU model, usable cores, SIMD flags, load average."""
    model, flags = cpu_model_and_flags()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"machine: {model}, {cores} usable core(s), SIMD {' '.join(flags) or 'none found'}; load average {load}"
