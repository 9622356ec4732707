"""The training benchmark's lines about limits: FLOPs, the machine's peak, the conv micro-benchmark,
and what scaling to several workers costs per step (pure arithmetic on measured figures)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.training_result import MethodResult


def gflops(samples_per_second: float, flops_per_sample: int) -> float:
    return samples_per_second * flops_per_sample / 1e9


def peak_line(peak: Mapping[str, Any]) -> str:
    return (f"peak: {peak['cores']} core(s) x {peak['ghz']:.2f} GHz ({peak['clock_source']}) x "
            f"{peak['flops_per_cycle']} FP32 FLOP/cycle ({peak['table_row']}) = {peak['gflops']:.1f} GFLOP/s")


def limit_lines(flops_per_sample: int | None, peak: Mapping[str, Any], micro: Mapping[str, Any] | None,
                rows: Sequence[tuple[str, float]]) -> list[str]:
    """FLOPs per sample, the peak, the micro-benchmark, and each row's GFLOP/s against both."""
    lines = [peak_line(peak)]
    if not flops_per_sample:
        return [*lines, "training FLOPs per sample: not measured"]
    lines.append(f"training FLOPs per sample: {flops_per_sample / 1e6:.1f} M (3 x the forward pass's conv and "
                 "dense multiply-adds, model/flops.py)")
    micro_gflops = None
    if micro and "gflops" in micro:
        micro_gflops = micro["gflops"]
        lines.append(
            f"conv micro-benchmark (pure TensorFlow, the same conv layers forward + backward, batch "
            f"{micro['batch_size']}): {micro_gflops:.1f} GFLOP/s = {_pct(micro_gflops, peak['gflops'])} of peak; "
            f"{micro['samples_per_second']:.1f} samples/s for the convolutions alone")
        if micro_gflops > peak["gflops"] > 0:
            lines.append(over_peak_note(peak))
    elif micro:
        lines.append(f"conv micro-benchmark: failed ({micro.get('error', 'no result')})")
    lines += ["", f"{'method':<44} {'GFLOP/s':>8} {'% peak':>7} {'% micro':>8}"]
    for name, rate in rows:
        achieved = gflops(rate, flops_per_sample)
        lines.append(f"{name:<44} {achieved:>8.1f} {_pct(achieved, peak['gflops']):>7} "
                     f"{_pct(achieved, micro_gflops) if micro_gflops else '-':>8}")
    return lines


def over_peak_note(peak: Mapping[str, Any]) -> str:
    """Measured above the computed peak: the peak is then a lower bound, and why."""
    return (f"note: the micro-benchmark beats the computed peak, so the peak is a lower bound here: the cores "
            f"ran faster than {peak['ghz']:.2f} GHz ({peak['clock_source']}: in a VM often the nominal clock, "
            "not the turbo one), or oneDNN used units the table does not count (AMX); read the % micro column")


def _pct(value: float, of: float | None) -> str:
    return f"{100 * value / of:.0f}%" if of else "-"


def scaling_lines(results: Sequence[MethodResult], lr_scaling: str, learning_rate: float) -> list[str]:
    """Per multi-worker row: global batch, step time against 1 worker with the same CPUs per
    worker and per-worker batch (the difference is the all-reduce and synchronisation per step,
    plus any contention between the workers), and the learning-rate rule applied."""
    workers = [r for r in results if r.workers > 0]
    if not any(r.workers > 1 for r in workers):
        return []
    lines = []
    for r in (r for r in workers if r.workers > 1):
        per_worker = r.global_batch // r.workers
        lr = learning_rate * (r.workers if lr_scaling == "linear" else 1)
        rule = (f"linear scaling: lr {learning_rate:g} x {r.workers} = {lr:g}" if lr_scaling == "linear"
                else f"not scaled (lr_scaling none): lr {lr:g} at every world size")
        line = f"{r.name}: global batch {r.global_batch} ({r.workers} x {per_worker}); learning rate {rule}"
        single = _single_worker_match(workers, r)
        if single is not None and not math.isnan(r.seconds_per_step) and not math.isnan(single.seconds_per_step):
            extra = (r.seconds_per_step - single.seconds_per_step) * 1000
            line += (f"; step {r.seconds_per_step * 1000:.1f} ms vs {single.seconds_per_step * 1000:.1f} ms for "
                     f"1 worker ({single.name}): all-reduce + sync ~{extra:.1f} ms per step")
        else:
            line += "; all-reduce cost: not measured (add a 1-worker row with the same CPUs per worker)"
        lines.append(line)
    return lines


def _single_worker_match(rows: Sequence[MethodResult], multi: MethodResult) -> MethodResult | None:
    cpus = multi.details.get("cpus_per_worker")
    per_worker = multi.global_batch // multi.workers
    for r in rows:
        if r.workers == 1 and r.global_batch == per_worker and r.details.get("cpus_per_worker") == cpus:
            return r
    return None
