"""One benchmarked training method's figures, and the epoch timer every fit row uses (shared by the
training benchmark's modules)."""

from __future__ import annotations

import dataclasses
import time
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


class EpochTimer:
    """Training-phase seconds per epoch (epoch start -> validation start, the loop's rule) and
    whole-epoch seconds (epoch start -> next epoch's start, or ``on_train_end`` for the last),
    and the process's CPU seconds per training-phase second (``cores``)."""

    def __init__(self) -> None:
        self.train_seconds: list[float] = []
        self.epoch_seconds: list[float] = []
        self.cores: list[float] = []
        self._start: float | None = None
        self._cpu = 0.0
        self.ended_at = 0.0
        self._pending = False

    def callback(self, keras):
        return keras.callbacks.LambdaCallback(on_epoch_begin=self._begin, on_test_begin=self._test,
                                              on_epoch_end=lambda epoch, logs=None: self._test(),
                                              on_train_end=lambda logs=None: self.close())

    def _begin(self, epoch, logs=None) -> None:
        now = time.perf_counter()
        if self._start is not None:
            self.epoch_seconds.append(now - self._start)
        self._start, self._cpu, self._pending = now, time.process_time(), True

    def _test(self, logs=None) -> None:
        if self._pending:
            seconds = time.perf_counter() - self._start
            self.train_seconds.append(seconds)
            self.cores.append((time.process_time() - self._cpu) / seconds if seconds > 0 else 0.0)
            self._pending = False

    def close(self) -> None:
        """At the end of training (``on_train_end``): the last epoch's whole seconds. Not when
        fit() returns: a fit on numpy arrays returns seconds later, idle (``fit_teardown_s``)."""
        if self._start is not None:
            self.ended_at = time.perf_counter()
            self.epoch_seconds.append(self.ended_at - self._start)
            self._start = None
