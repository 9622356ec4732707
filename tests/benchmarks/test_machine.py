"""The machine line every benchmark prints: CPU model and SIMD flags read from /proc/cpuinfo."""

from __future__ import annotations

import pytest

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


def _cpuinfo(vendor: str, family: int, model: int, flags: str, mhz: str = "2445.406") -> str:
    return (f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
            f"model name\t: test\ncpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n\nprocessor\t: 1\ncpu MHz\t\t: 1.0\n")


def test_flops_per_cycle_table_by_vendor_family_and_flags(monkeypatch):
    from benchmarks.machine import cpu_fields, flops_per_cycle

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    avx2 = "sse avx fma avx2"
    cases = [
        (_cpuinfo("AuthenticAMD", 23, 1, avx2), 16, "Zen 1"),  # Naples
        (_cpuinfo("AuthenticAMD", 23, 49, avx2), 32, "Zen 2"),  # Rome
        (_cpuinfo("AuthenticAMD", 25, 1, avx2), 32, "Zen 2/3"),  # Milan
        (_cpuinfo("AuthenticAMD", 25, 17, avx2 + " avx512f"), 32, "Zen 4"),  # Genoa: double-pumped
        (_cpuinfo("AuthenticAMD", 26, 2, avx2 + " avx512f"), 64, "Zen 5"),
        (_cpuinfo("GenuineIntel", 6, 106, avx2 + " avx512f"), 64, "AVX-512"),
        (_cpuinfo("GenuineIntel", 6, 85, avx2), 32, "AVX2 + FMA"),
        (_cpuinfo("GenuineIntel", 6, 42, "sse avx"), 16, "without FMA"),
        (_cpuinfo("GenuineIntel", 6, 15, "sse sse2"), 8, "SSE only"),
    ]
    for text, flops, row in cases:
        per_cycle, name = flops_per_cycle(cpu_fields(text))
        assert (per_cycle, row in name) == (flops, True), (text, name)


def test_peak_is_cores_times_clock_times_flops_per_cycle(tmp_path, monkeypatch):
    from benchmarks.machine import clock_ghz, cpu_fields, peak_gflops

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    text = _cpuinfo("AuthenticAMD", 25, 1, "avx fma avx2")
    fields = cpu_fields(text)
    assert fields["cpu MHz"] == "2445.406"  # the first processor's, not the second's
    assert clock_ghz(fields, cpufreq=tmp_path) == (pytest.approx(2.445406), "/proc/cpuinfo cpu MHz")
    (tmp_path / "cpuinfo_max_freq").write_text("3500000\n")  # kHz
    assert clock_ghz(fields, cpufreq=tmp_path) == (3.5, "cpufreq cpuinfo_max_freq")
    peak = peak_gflops(cores=2, cpuinfo=text, cpufreq=tmp_path / "absent")
    assert peak["gflops"] == pytest.approx(2 * 2.445406 * 32)  # 156.5 GFLOP/s
    assert peak["flops_per_cycle"] == 32 and peak["cores"] == 2
    assert peak_gflops(cores=4, cpuinfo=text, cpufreq=tmp_path)["gflops"] == pytest.approx(4 * 3.5 * 32)


def test_a_onednn_isa_cap_is_named_on_the_machine_line_and_the_peak_follows_it(monkeypatch):
    from benchmarks.machine import cpu_fields, flops_per_cycle

    xeon = cpu_fields(_cpuinfo("GenuineIntel", 6, 143, "sse avx fma avx2 avx512f avx512bw amx_tile"))
    genoa = cpu_fields(_cpuinfo("AuthenticAMD", 25, 17, "sse avx fma avx2 avx512f"))
    expected = {None: (64, 32), "DEFAULT": (64, 32), "avx512_core_amx": (64, 32), "avx2": (32, 32),
                "AVX2_VNNI": (32, 32), "AVX": (16, 16), "SSE41": (8, 8)}
    for cap, (intel, amd) in expected.items():
        if cap is None:
            monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        else:
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert (flops_per_cycle(xeon)[0], flops_per_cycle(genoa)[0]) == (intel, amd), cap
        named = cap not in (None, "DEFAULT")
        assert ("by ONEDNN_MAX_CPU_ISA" in describe()) == named, cap
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert flops_per_cycle(xeon)[1].startswith("Intel (or other) with AVX2 + FMA")
    assert "(oneDNN capped at AVX2 by ONEDNN_MAX_CPU_ISA); load average" in describe()
