"""The machine a benchmark ran on: CPU model, cores, SIMD flags, load; printed beside figures.

Figures differ several-fold between machines (AVX-512 vs AVX2 alone changes TensorFlow's conv
throughput), so every benchmark states where it ran. ``ONEDNN_MAX_CPU_ISA`` (oneDNN's own
setting, e.g. ``AVX2``) caps the instructions TensorFlow's oneDNN kernels use: an AVX-512 machine
then runs them as an AVX2-only one would; the line says so and the peak is computed for the cap.
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
    cap = isa_cap()
    capped = f" (oneDNN capped at {cap} by ONEDNN_MAX_CPU_ISA)" if cap else ""
    return (f"machine: {model}, {cores} usable core(s), SIMD {' '.join(flags) or 'none found'}{capped}; "
            f"load average {load}")


def isa_cap() -> str | None:
    """The instruction-set cap ``ONEDNN_MAX_CPU_ISA`` sets for oneDNN, if any (upper case)."""
    value = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return value if value and value != "DEFAULT" else None


def capped_flags(flags: set[str], cap: str | None) -> set[str]:
    """The CPU flags oneDNN may use under ``cap``: AVX2-class caps drop AVX-512 and AMX, AVX and
    SSE caps also AVX2 and FMA, SSE caps AVX itself."""
    if cap is None or cap.startswith(("AVX512", "AVX10")):
        return flags
    kept = {f for f in flags if not f.startswith(("avx512", "amx"))}
    if not cap.startswith("AVX2"):
        kept -= {"avx2", "fma"}
    if cap.startswith("SSE"):
        kept.discard("avx")
    return kept


# --------------------------------------------------------------------------- peak FLOP/s

# FP32 FLOPs per cycle per core = SIMD lanes x 2 (an FMA is a multiply and an add) x FMA units.
PEAK_TABLE = (
    ("AMD Zen 1/Zen+ (family 23, model < 0x30): AVX2 on 2 x 128-bit FMA units", 16),
    ("AMD Zen 2/3 (family 23 model >= 0x30, family 25 without AVX-512): 2 x 256-bit FMA", 32),
    ("AMD Zen 4 (family 25 with AVX-512): AVX-512 on 256-bit units (double-pumped)", 32),
    ("AMD Zen 5 (family 26) with AVX-512: 2 x 512-bit FMA", 64),
    ("Intel (or other) with AVX-512: 2 x 512-bit FMA (some Xeon Silver/Bronze have 1: half)", 64),
    ("Intel (or other) with AVX2 + FMA: 2 x 256-bit FMA", 32),
    ("AVX without FMA: 8-wide add + 8-wide multiply", 16),
    ("SSE only: 4-wide add + 4-wide multiply", 8),
)


def cpu_fields(cpuinfo: str | None = None) -> dict[str, str]:
    """The first CPU's /proc/cpuinfo fields (vendor_id, cpu family, model, cpu MHz, flags...)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the end of the first processor block
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def flops_per_cycle(fields: dict[str, str]) -> tuple[int, str]:
    """FP32 FLOPs per cycle per core and the ``PEAK_TABLE`` row it comes from (for the
    instructions oneDNN may use: see ``capped_flags``)."""
    flags = capped_flags(set(fields.get("flags", "").split()), isa_cap())
    vendor = fields.get("vendor_id", "")
    family, model = _int(fields.get("cpu family")), _int(fields.get("model"))
    avx512 = "avx512f" in flags
    row = None
    if vendor == "AuthenticAMD" and family == 23 and "avx2" in flags:
        row = 0 if model is not None and model < 0x30 else 1
    elif vendor == "AuthenticAMD" and family == 25 and "avx2" in flags:
        row = 2 if avx512 else 1
    elif vendor == "AuthenticAMD" and family is not None and family >= 26 and avx512:
        row = 3
    elif avx512:
        row = 4
    elif "avx2" in flags and "fma" in flags:
        row = 5
    elif "avx" in flags:
        row = 6
    else:
        row = 7
    name, flops = PEAK_TABLE[row]
    return flops, name


CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")


def clock_ghz(fields: dict[str, str], cpufreq: Path = CPUFREQ) -> tuple[float, str]:
    """The clock to compute the peak with, and where it was read: the highest frequency cpufreq
    reports, else /proc/cpuinfo's ``cpu MHz`` (in a VM usually the nominal clock), else 0."""
    max_freq = cpufreq / "cpuinfo_max_freq"
    if max_freq.exists():
        try:
            return int(max_freq.read_text().strip()) / 1e6, "cpufreq cpuinfo_max_freq"
        except ValueError:
            pass
    try:
        return float(fields["cpu MHz"]) / 1000.0, "/proc/cpuinfo cpu MHz"
    except (KeyError, ValueError):
        return 0.0, "unknown"


def peak_gflops(cores: int | None = None, cpuinfo: str | None = None, cpufreq: Path = CPUFREQ) -> dict[str, object]:
    """Peak FP32 GFLOP/s of the usable cores: cores x clock x FLOPs per cycle, with its parts."""
    fields = cpu_fields(cpuinfo)
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_cycle, row = flops_per_cycle(fields)
    ghz, source = clock_ghz(fields, cpufreq)
    return {"gflops": cores * ghz * per_cycle, "cores": cores, "ghz": ghz, "clock_source": source,
            "flops_per_cycle": per_cycle, "table_row": row}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
