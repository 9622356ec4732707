"""The machine line every benchmark prints: CPU model and SIMD flags read from /proc/cpuinfo."""

from __future__ import annotations

from benchmarks.machine import cpu_model_and_flags, describe

AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 avx f16c fma avx2 bmi2 sha_ni
processor\t: 1
model name\t: AMD EPYC
"""
AVX512 = """model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu sse avx fma avx2 avx512f avx512bw avx512_vnni
"""


def test_avx2_machine_has_no_avx512_flags():
    model, flags = cpu_model_and_flags(AVX2_ONLY)
    assert model == "AMD EPYC"
    assert flags == ("avx", "avx2", "fma")


def test_avx512_flags_are_listed_in_a_fixed_order():
    model, flags = cpu_model_and_flags(AVX512)
    assert model.startswith("Intel(R) Xeon(R) Platinum 8375C")
    assert flags == ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni")


def test_describe_names_cores_and_load():
    line = describe()
    assert line.startswith("machine: ") and "usable core(s)" in line and "load average" in line
