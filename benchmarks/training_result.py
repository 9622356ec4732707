"""One benchmarked training method's figures (shared by the training benchmark's modules)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MethodResult:
    """One benchmarked method: per-epoch training-phase rates (warm-up epochs first)."""

    name: str
    epoch_rates: tuple[float, ...]
    warmup: int
    wall_seconds: float
    samples_per_epoch: int
    details: dict[str, object] = field(default_factory=dict)
    workers: int = 0  # Ray Train workers (0: not a worker group)
    global_batch: int = 0
    # Per epoch, the training process's CPU seconds per training-phase second (all its
    # threads; rank 0's process for a worker group); empty where not measured.
    epoch_cores: tuple[float, ...] = ()

    @property
    def steady_rates(self) -> tuple[float, ...]:
        # With fewer epochs than warm-up + 1, the warm-up epochs are all there is.
        return self.epoch_rates[self.warmup :] or self.epoch_rates

    @property
    def samples_per_second(self) -> float:
        """Total samples / total seconds over the steady epochs (equal samples per epoch)."""
        rates = [r for r in self.steady_rates if r > 0]
        return len(rates) / sum(1.0 / r for r in rates) if rates else 0.0

    @property
    def cpu_cores(self) -> float:
        """Mean CPU cores the training process used over the steady epochs (0: not measured)."""
        cores = self.epoch_cores[self.warmup :] or self.epoch_cores
        return sum(cores) / len(cores) if cores else 0.0

    @property
    def samples_per_cpu_second(self) -> float:
        """Throughput per CPU-second the process got: how well it used the CPU it had."""
        return self.samples_per_second / self.cpu_cores if self.cpu_cores > 0 else 0.0

    @property
    def seconds_per_step(self) -> float:
        """Seconds per optimizer step (one global batch), steady epochs."""
        rate = self.samples_per_second
        return self.global_batch / rate if rate > 0 and self.global_batch else float("nan")

    def with_warmup(self, warmup: int) -> MethodResult:
        return dataclasses.replace(self, warmup=warmup)

    def renamed(self, name: str) -> MethodResult:
        return dataclasses.replace(self, name=name)
