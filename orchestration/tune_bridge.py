"""Ray Train reports to Ray Tune, through public APIs only, with no report lost at the end.

A Tune trial here is a function that fits a ``TensorflowTrainer``; Train's controller (an actor
of its own) sees every worker report. Ray 2.60's ``TuneReportCallback`` hands each report to the
trial through a one-slot queue actor that Tune's session polls; if the trial function returns
while the run's *final* report still sits in that queue, the session deadlocks (its "done"
marker fills the result queue that report needs) and the final metrics never reach Tune. The
queue came with ray-project/ray#55556 (Train V2's Tune integration); the race is not filed
upstream as far as we found.

This module does the same job in the open: ``ForwardReports`` (a ``ray.train.UserCallback``)
puts each report into a ``ray.util.queue.Queue``, and ``fit_with_tune_reports`` runs ``fit()`` on
a helper thread while the trial's own thread relays every item to ``ray.tune.report``, in
order, until ``fit()`` has returned and the queue is empty. ``Queue.put`` returns once the item
is in the queue, so after ``fit()`` returns nothing is in flight: the final report is always
relayed, and relayed before the trial function returns. One queue actor serves every trial a
Tune trial process runs (``reuse_actors=True``): a new one per trial would be a process start
(~1 CPU-second) each time.

When Tune stops the trial (the racing scheduler, a time budget), ``ray.tune.report`` raises in
the trial's thread; the trial then puts its run's name into a second queue, and
``ForwardReports`` ends the Train run at its next report by raising ``RunStopped`` (a public
callback raising), so the run's workers do not train on for a trial that is gone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import ray
from ray.train import UserCallback
from ray.util.queue import Empty, Queue

CHECKPOINT_PATH_KEY = "checkpoint_path"  # as TuneReportCallback names it
_POLL_S = 0.5
STOP_WAIT_S = 600.0  # a stopped run ends at its next report: within an epoch


class RunStopped(RuntimeError):
    """Raised in the Train controller to end a run whose Tune trial was stopped."""


class ForwardReports(UserCallback):
    """Runs in the Train controller: rank 0's metrics (plus the checkpoint's path) into the
    queue; ends the run at its next report once the trial asked for it (``stop``)."""

    def __init__(self, queue: Queue, stop: Queue, run_name: str) -> None:
        self.queue = queue
        self.stop = stop
        self.run_name = run_name

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        item = dict(metrics[0])
        if checkpoint is not None:
            item[CHECKPOINT_PATH_KEY] = checkpoint.path
        self.queue.put((self.run_name, item))
        if not self.stop.empty():
            raise RunStopped(f"{self.run_name}: its Tune trial was stopped (raced out or out of time)")


# This process's queues, kept for the next trial Tune runs here.
_queues: dict[str, Queue] = {}


def _fresh_queue(name: str) -> Queue:
    """This process's queue ``name`` (started on first use, or again if it died), emptied."""
    queue = _queues.get(name)
    if queue is not None:
        try:
            while True:
                queue.get_nowait()  # what a failed or stopped earlier run left behind
        except Empty:
            pass
        except ray.exceptions.RayActorError:  # its node was lost
            queue = None
    if queue is None:
        queue = _queues[name] = Queue(actor_options={"num_cpus": 0})
    return queue


def report_queue() -> Queue:
    return _fresh_queue("reports")


def fit_with_tune_reports(
    fit: Callable[[list[UserCallback]], Any],
    run_name: str,
    report: Callable[[Mapping[str, Any]], None] | None = None,
) -> Any:
    """``fit(callbacks)`` with every Train report relayed to Tune; returns what ``fit`` returns.

    ``report`` defaults to ``ray.tune.report`` (call this from a Tune trial function). Items
    tagged with another run's name (left by an earlier run of this process) are dropped. An
    exception from ``fit`` is raised here once every report before it was relayed.
    """
    if report is None:
        from ray import tune

        report = tune.report
    queue, stop = report_queue(), _fresh_queue("stop")
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = fit([ForwardReports(queue, stop, run_name)])
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"fit-{run_name}", daemon=True)
    thread.start()
    try:
        _relay(queue, thread, run_name, report)
    except BaseException:
        # Tune stopped the trial (its report raised): end the Train run too, at its next
        # report, so its workers free their CPUs/GPUs for the next trial.
        stop.put(run_name)
        thread.join(timeout=STOP_WAIT_S)
        raise
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _relay(queue: Queue, thread: threading.Thread, run_name: str, report: Callable[[Mapping[str, Any]], None]) -> None:
    """Every item of this run to ``report``, in order, until the fit thread ended and the queue is empty."""
    while True:
        finished = not thread.is_alive()  # read before the queue: no put can follow it
        try:
            name, item = queue.get_nowait() if finished else queue.get(timeout=_POLL_S)
        except Empty:
            if finished:
                return
            continue
        if name == run_name:
            report(item)
