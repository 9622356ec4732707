"""Live progress of a sweep on the console: what finished, what is running, how long is left.

On a terminal, a status line under the event lines is redrawn as trials report: folds done,
every running trial with its epoch k/N and current validation accuracy, elapsed time and an
estimate of the time left. Not on a terminal (``ray job logs``, CI, a file), one line per event:
a trial starting, finishing or failing, and its epochs at most every ``epoch_every_s`` seconds
(plus its last one). Tune's own tables stay off (``verbose=0``) unless ``--verbose``.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from collections import Counter
from typing import Any, TextIO

from ray.tune import Callback

from orchestration.trial import REUSED_KEY


class ProgressCallback(Callback):
    def __init__(self, total_trials: int, epochs: int, folds: int, stream: TextIO | None = None,
                 tty: bool | None = None, epoch_every_s: float = 30.0) -> None:
        self.total, self.epochs, self.folds = total_trials, epochs, folds
        self.stream = stream
        self.tty = tty
        self.epoch_every_s = epoch_every_s
        self.done = 0  # finished, including before a resume
        self.failed = 0
        self.durations: list[float] = []  # trials trained in this session: the pace for the ETA
        self.running: dict[str, dict[str, Any]] = {}
        self.folds_done: Counter[str] = Counter()
        self.started_at: float | None = None
        self.parallel = 1  # most trials seen running at once: the pace between two trial ends

    def __getstate__(self) -> dict[str, Any]:
        # Recounted on restore (on_step_begin); a stream is not picklable.
        return {**self.__dict__, "started_at": None, "stream": None, "running": {}}

    @property
    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def _is_tty(self) -> bool:
        return self.tty if self.tty is not None else self._out.isatty()

    # ------------------------------------------------------------------ Tune hooks

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        # Tune pickles callbacks into its experiment state; a resumed sweep gets this object
        # back, so the trials finished earlier are counted from Tune's trials, once.
        if self.started_at is None:
            self.started_at = time.monotonic()
            self.done = sum(t.status == "TERMINATED" for t in trials)
            self.failed = sum(t.status == "ERROR" for t in trials)
            self.folds_done = Counter(t.config.get("config_id") for t in trials if t.status == "TERMINATED")

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self.running[trial.trial_id] = {"config": trial.config, "epoch": 0, "val": None,
                                        "since": time.monotonic(), "printed": None}
        self.parallel = max(self.parallel, len(self.running))
        if not self._is_tty():
            self._line(trial, f"started ({len(self.running)} running)")
        self._status()

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        entry = self.running.get(trial.trial_id)
        if entry is None or "epoch" not in result or result.get("final"):
            return
        entry["epoch"], entry["val"] = int(result["epoch"]), result.get("val_accuracy")
        now = time.monotonic()
        if self._is_tty():
            self._status()
        elif (entry["printed"] is None or now - entry["printed"] >= self.epoch_every_s
              or entry["epoch"] >= self.epochs):
            entry["printed"] = now
            val = f", val accuracy {entry['val']:.3f}" if entry["val"] is not None else ""
            self._line(trial, f"epoch {entry['epoch']}/{self.epochs}{val}")

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        entry = self.running.pop(trial.trial_id, None)
        result = trial.last_result or {}
        if result.get(REUSED_KEY):
            self._line(trial, "already finished before the resume")
            return
        self.done += 1
        cfg = trial.config.get("config_id")
        if "test_accuracy" in result:
            self.folds_done[cfg] += 1
            if entry is not None:
                self.durations.append(time.monotonic() - entry["since"])
            what = f"test accuracy {result['test_accuracy']:.3f}"
        else:
            what = "stopped before its final report (raced out or out of time)"
        self._line(trial, f"{what}; {cfg}: {self.folds_done[cfg]}/{self.folds} folds")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self.running.pop(trial.trial_id, None)
        self.failed += 1
        self._line(trial, f"FAILED, see {getattr(trial, 'error_file', None) or 'the trial logs'}")

    # ------------------------------------------------------------------ output

    def eta_seconds(self) -> float | None:
        """Mean measured trial time x the trials left (minus the running ones' progress) / the most
        trials seen running at once (not the count right now: between one trial's end and the next
        one's start that count drops, and the estimate used to double for a moment)."""
        if not self.durations:
            return None
        mean = statistics.fmean(self.durations)
        progress = sum(min(1.0, e["epoch"] / max(1, self.epochs)) for e in self.running.values())
        left = max(0.0, self.total - self.done - self.failed - progress)
        return left * mean / self.parallel

    def _timing(self) -> str:
        elapsed = time.monotonic() - (self.started_at or time.monotonic())
        eta = self.eta_seconds()
        return f"{elapsed:.0f} s elapsed, " + (f"~{eta:.0f} s left" if eta is not None else "time left: after the first trial")

    def _line(self, trial, what: str) -> None:
        config = trial.config
        text = (f"[{self.done + self.failed}/{self.total}] {config.get('config_id')} fold {config.get('fold')}: "
                f"{what}  ({self._timing()})")
        if self._is_tty():
            self._out.write("\r\033[K")
        print(text, file=self._out, flush=True)
        self._status()

    def _status(self) -> None:
        if not self._is_tty():
            return
        cells = [f"{e['config'].get('config_id')} f{e['config'].get('fold')} e{e['epoch']}/{self.epochs}"
                 + (f" val {e['val']:.2f}" if e["val"] is not None else "") for e in self.running.values()]
        line = f"[{self.done + self.failed}/{self.total} done] " + (" | ".join(cells) or "waiting") + f" | {self._timing()}"
        width = shutil.get_terminal_size((120, 20)).columns
        self._out.write("\r\033[K" + line[: width - 1])
        self._out.flush()
