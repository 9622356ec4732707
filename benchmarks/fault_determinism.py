"""Determinism as a fault check: one tiny sweep interrupted three times, then compared.

Shared by ``tests/benchmarks/test_fault_scenarios.py`` and ``python -m benchmarks.faults``
(kind ``determinism``). The same sweep (one configuration, folds 1-2 one at a time, 12 epochs, a
checkpoint every epoch, TensorFlow op determinism on: ``TrainConfig.deterministic``) runs twice
against one real ``mlflow server``: straight through, and interrupted at three points drawn
from a seeded ``random.Random``:

1. **worker kill**: fold 1's trial process is frozen (SIGSTOP) after a drawn epoch and
   SIGKILLed, as an OOM killer or a preemption would; Tune retries the trial from its last
   checkpoint;
2. **MLflow restart**: once the retried fold has reported a drawn number of further epochs, the
   tracking server is SIGKILLed, and started again (same port and backend) once the sweep has
   found it unreachable and has a write waiting in its spool;
3. **driver kill**: after a drawn epoch of fold 2, that trial is frozen and the driver's whole
   process group (with the Ray it started) SIGKILLed; the same command with ``--resume``
   finishes the sweep.

Survived when nothing is lost or duplicated and every fold ends with *exactly* the accuracy of
the straight run. That holds because a resumed attempt restores weights, optimizer state, the
best-so-far and the epoch counter, and gets exactly the batches the uninterrupted run got from
there (``model/pipeline.py``); the network has no dropout here (``dropout1 = dropout2 = 0``),
because tf_keras's dropout masks after a resume are drawn afresh (``model/train_loop.py``).
Every wait is on a state (Tune's result rows, the spool's journal, a process's exit).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from pathlib import Path

from benchmarks import fault_scenarios as fs
from model.train_loop import FINAL_KEY

EPOCHS = 12  # cheap epochs (a fraction of a second on the tiny set): room to land mid-training


def trial_rows(experiment: Path) -> dict[int, list[dict]]:
    """fold -> the rows of its trial's result.json in a Tune experiment folder, as far as
    written (one configuration)."""
    found = {}
    for path in experiment.glob("*/result.json"):
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # the line Tune is writing now
        if rows:
            found[int(rows[0]["config"]["fold"])] = rows
    return found


def freeze_mid_training(experiment: Path, fold: int, spared: set[int], after_epoch: int = 1) -> tuple[int, int] | None:
    """Freeze (SIGSTOP) the process training ``fold`` once it has reported (and so
    checkpointed) epoch ``after_epoch`` or later and is not done; (pid, last reported epoch),
    or None if not there yet. Processes in ``spared`` (already killed ones) are skipped."""
    rows = trial_rows(experiment).get(fold, [])
    if not rows or rows[-1].get(FINAL_KEY) or int(rows[-1]["pid"]) in spared or rows[-1]["epoch"] < after_epoch:
        return None
    pid = int(rows[-1]["pid"])
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return None
    last = trial_rows(experiment)[fold][-1]
    if last.get(FINAL_KEY) or int(last["pid"]) != pid:  # finished meanwhile: not mid-training
        os.kill(pid, signal.SIGCONT)
        return None
    return pid, int(last["epoch"])


def draw_points(seed: int) -> dict[str, int]:
    """The three interruption points: fold 1's epoch for the worker kill, further epochs of the
    retried fold 1 before the MLflow kill, fold 2's epoch for the driver kill."""
    rng = random.Random(seed)
    # Kills in the first half of a fold: a poll finds the fold still training (each point is a
    # lower bound: the freeze lands at the first epoch seen at or after it).
    worker = rng.randint(1, EPOCHS // 2 - 1)
    return {"worker_kill_after": worker, "mlflow_kill_after": rng.randint(1, EPOCHS - 1 - worker),
            "driver_kill_after": rng.randint(1, EPOCHS // 2)}


class _Interrupter:
    """The three interruptions on a running sweep, as steps of one poll: each step runs once
    its state is reached. Once the tracking server is down, fold 2 is frozen as soon as it
    reaches its drawn epoch (it could otherwise finish while the server restarts), and the
    driver is killed once the restarted server has every queued write."""

    def __init__(self, sweep: fs.Sweep, proc, server: fs.MlflowServer, points: dict[str, int]) -> None:
        self.sweep, self.proc, self.server, self.points = sweep, proc, server, points
        self.experiment = sweep.work / "ray" / sweep.name
        self.hit: dict = {}
        self._killed_pid: int | None = None
        self._fold2: tuple[int, int] | None = None
        self._back = 0.0

    def _retried_epochs(self) -> int:
        return sum(1 for r in trial_rows(self.experiment).get(1, []) if int(r["pid"]) != self._killed_pid)

    def step(self) -> bool:
        """One poll; True once the driver is killed (or the sweep ended early: the caller sees
        what was not hit)."""
        hit, server = self.hit, self.server
        if fs.exited(self.proc):
            return True
        if "worker_killed" not in hit:
            frozen = freeze_mid_training(self.experiment, 1, set(), self.points["worker_kill_after"])
            if frozen:
                os.kill(frozen[0], signal.SIGKILL)
                self._killed_pid = frozen[0]
                hit["worker_killed"] = {"pid": frozen[0], "after_epoch": frozen[1]}
        elif "mlflow_killed_after_retry_epochs" not in hit:
            retried = self._retried_epochs()
            if retried >= self.points["mlflow_kill_after"]:
                server.kill()
                hit["mlflow_killed_after_retry_epochs"] = retried
        else:
            if self._fold2 is None:
                self._fold2 = freeze_mid_training(self.experiment, 2, set(), self.points["driver_kill_after"])
            if "mlflow_restarted" not in hit:
                if "unreachable" in self.sweep.log() and fs.spool_pending(self.sweep.spool) > 0:
                    server.start(wait=False)  # fold 2 goes on training meanwhile
                    self._back = time.monotonic()
                    hit["mlflow_restarted"] = True
            elif "mlflow_recover_s" not in hit and fs.spool_pending(self.sweep.spool) == 0:
                hit["mlflow_recover_s"] = time.monotonic() - self._back
            if self._fold2 is not None and "mlflow_recover_s" in hit:
                fs.kill_group(self.proc)
                with contextlib.suppress(ProcessLookupError):  # outside the driver's group if Ray put it there
                    os.kill(self._fold2[0], signal.SIGKILL)
                hit["driver_killed"] = {"fold_2_after_epoch": self._fold2[1]}
                return True
        return False


def three_interruptions(data_dir: Path, work: Path, seed: int = 0) -> fs.Outcome:
    """The scenario of the module docstring. Recovery: from the MLflow restart to every queued
    write stored, plus the resumed command's wall time."""
    server = fs.MlflowServer(work / "mlflow").start()
    try:
        extra = ["--max-concurrent", "1", "--address", "local", "--epochs", str(EPOCHS),
                 "--set", "train.dropout2=0"]
        space = '{"dropout1": [0.0]}'
        straight = fs.Sweep(data_dir, work, server.uri, "straight", space=space, extra=extra)
        code = straight.start().wait(timeout=fs.HANG_GUARD_S)
        cut = fs.Sweep(data_dir, work, server.uri, "interrupted", space=space, extra=extra)
        points = draw_points(seed)
        proc = cut.start()
        interrupter = _Interrupter(cut, proc, server, points)
        try:
            fs.wait_for("three interruptions", interrupter.step)
            hit = interrupter.hit
        finally:
            if proc.poll() is None:  # a wait that failed: the sweep goes with it
                fs.kill_group(proc)
        started = time.monotonic()
        resumed = cut.start("--resume", cut.name, log="resumed").wait(timeout=fs.HANG_GUARD_S)
        recover_s = hit.get("mlflow_recover_s", 0.0) + time.monotonic() - started
        a = fs.tally(server.uri, straight.experiment, straight.name, straight.pairs)
        b = fs.tally(server.uri, cut.experiment, cut.name, cut.pairs)
        diffs = {pair: abs(b["accuracies"].get(pair, -9) - acc) for pair, acc in a["accuracies"].items()}
        three = {"worker_killed", "mlflow_killed_after_retry_epochs", "driver_killed"} <= set(hit)
        same = len(diffs) == 2 and all(d == 0 for d in diffs.values())
        survived = code == 0 and resumed == 0 and three and same and b["lost"] == 0
        return fs.Outcome("three interruptions (worker, MLflow, driver): accuracies vs straight run", survived,
                          b["lost"], b["duplicated"], recover_s,
                          {"exits": [code, resumed], "points": points, "hit": hit, "straight": a["accuracies"],
                           "resumed": b["accuracies"], "differences": diffs, "runs": b["runs"],
                           "complete": b["complete"], "log": cut.log()[-3000:] + cut.log("resumed")[-3000:]})
    finally:
        server.kill()
