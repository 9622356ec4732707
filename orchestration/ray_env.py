"""Start Tune trials and Train actors without runtime envs, and keep one Train controller process.

Tune gives every trial actor a runtime env (``PL_DISABLE_FORK`` plus the driver's Ray Train
variables), Train gives its controller and workers one (the ``RAY_TRAIN_*`` variables set in the
process that builds the Trainer, plus a warning switch), and every actor inherits its parent's.
A process with a runtime env starts through ``setup_worker.py``: one more Python start-up, and
it can never be one of the raylet's idle pre-started workers. And every ``fit()`` starts a new
controller actor (a process that imports Ray Train: ~1.2 CPU-seconds), then a synchronisation
actor and the workers.

When this process starts the local Ray instance itself, ``init_ray`` first puts the same
variables (``RAYLET_ENV``, plus a marker recording every variable Tune or Train would forward)
into the environment the raylet, and so every Ray process, inherits. A runtime env then adds
nothing, and ``raylet_env_suffices()`` says so. Then ``tune_trials_without_runtime_env``
(around ``Tuner.fit``) starts trial actors without one, and ``train_fold`` runs Train's own
``TrainController`` in one ``ControllerHost`` actor per trial process (no runtime env, started
once) and gives workers only the run's own runtime env. Anywhere else (a cluster started by
``ray start``, a variable changed since) the marker is absent or differs and Ray's usual
runtime envs and controller actors are used.

Measured (README "Benchmarks"): overhead per trivial trial 2.4 s -> 2.0 s (no runtime envs) ->
1.4 s (controller host) on 2 idle cores (``python -m orchestration.bench_overhead``); the demo
sweep's ratio 1.27x -> 1.22x -> 1.17x.

The hooks replace private Ray 2.60 methods (Tune's actor-class cache, the Trainer's controller
launch, the worker group's runtime env); tests/orchestration/test_ray_env.py fails if they change.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray
from ray.train.v2._internal.execution.callback import ControllerCallback

# Ray Train controller settings for short runs: poll workers every 0.2 s instead of 2 s (every
# report and the end of a run wait for a poll) and start no preemption watcher (spot preemption
# is handled by FailureConfig restarts anyway).
TRAIN_ENV = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}
# What Tune and Train put into runtime envs by default, besides the forwarded variables.
_RUNTIME_ENV_DEFAULTS = {"PL_DISABLE_FORK": "1", "RAY_WARN_BLOCKING_GET_INSIDE_ASYNC": "0"}
RAYLET_ENV = {**TRAIN_ENV, **_RUNTIME_ENV_DEFAULTS}
# JSON {variable: value or null} of every forwarded variable, as the raylet inherited them.
MARKER = "US8K_RAYLET_ENV"


def forwarded_variables() -> frozenset[str]:
    """Every variable Tune (to trials) or Train (to its controller and workers) forwards."""
    from ray.train.v2._internal.constants import ENV_VARS_TO_PROPAGATE as train_vars
    from ray.tune.execution.class_cache import DEFAULT_ENV_VARS, ENV_VARS_TO_PROPAGATE

    tune_vars = set(ENV_VARS_TO_PROPAGATE) | set(DEFAULT_ENV_VARS)
    return frozenset(train_vars) | tune_vars | set(_RUNTIME_ENV_DEFAULTS)


def _snapshot() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in sorted(forwarded_variables())}


def raylet_env_suffices() -> bool:
    """True if the raylet's environment already holds what Tune and Train would forward from here."""
    recorded = os.environ.get(MARKER)
    if recorded is None:
        return False
    try:
        return json.loads(recorded) == _snapshot()
    except ValueError:
        return False


def init_ray(**init_kwargs: Any) -> bool:
    """``ray.init(**init_kwargs)``; a local instance it starts inherits RAYLET_ENV and the marker.

    Returns whether this call started Ray. Connecting to a running cluster changes nothing
    (its raylets' environment is not ours): the variables set here are removed again.
    """
    added = {name: value for name, value in RAYLET_ENV.items() if name not in os.environ}
    os.environ.update(added)
    os.environ[MARKER] = json.dumps(_snapshot())
    started = False
    try:
        ray.init(**init_kwargs)
        started = bool(getattr(ray._private.worker._global_node, "head", False))
    finally:
        if not started:
            for name in (*added, MARKER):
                os.environ.pop(name, None)
    return started


@contextmanager
def tune_trials_without_runtime_env() -> Iterator[bool]:
    """Within the block, Tune creates trial actors without a runtime env if the raylet's suffices.

    Yields whether it does. Tune's own runtime env would be inherited by everything a trial
    starts (Train's controller, workers, report queue) and force each through setup_worker.py.
    """
    from ray.tune.execution.class_cache import _ActorClassCache

    if not raylet_env_suffices():
        yield False
        return
    original = _ActorClassCache.get

    def get(self, trainable_cls):
        if trainable_cls not in self._cache:
            self._cache[trainable_cls] = ray.remote(trainable_cls)
        return self._cache[trainable_cls]

    _ActorClassCache.get = get
    try:
        yield True
    finally:
        _ActorClassCache.get = original


def run_controller_in_host(trainer: Any) -> None:
    """Make ``trainer.fit()`` run Train's controller in this process's ``ControllerHost`` actor.

    Replaces ``DataParallelTrainer._initialize_and_run_controller`` of Ray 2.60, which starts a
    new controller actor (a process, ~1.2 CPU-seconds) with a runtime env for every ``fit()``:
    the same ``TrainController`` runs, with the same arguments, in one long-lived actor without
    a runtime env. The controller gets ``NoWorkerRuntimeEnv`` for its workers through the
    trainer's callbacks (see ``train_fold``). Only call it when ``raylet_env_suffices()``.
    """

    def run(**controller_init_kwargs: Any):
        host = controller_host()
        if threading.current_thread() is threading.main_thread():
            trainer._register_sigint_handler(host)
        return ray.get(host.run.remote(controller_init_kwargs))

    trainer._initialize_and_run_controller = run


class ControllerHost:
    """An actor that runs one Ray Train ``TrainController`` after another, as Train's own
    controller actor runs one: ``run`` awaits it in the actor's event loop; the methods the
    workers (``get_all_reported_checkpoints``) and Ctrl-C (``abort``) call on their
    "controller" go to the current one."""

    def __init__(self) -> None:
        self._controller: Any = None

    async def run(self, controller_init_kwargs: dict[str, Any]) -> Any:
        from ray.train.v2._internal.execution.controller import TrainController

        self._controller = TrainController(**controller_init_kwargs)
        try:
            await self._controller.run()
            return self._controller.get_result()
        finally:
            self._controller = None

    async def get_all_reported_checkpoints(self, *args: Any, **kwargs: Any) -> Any:
        return await self._controller.get_all_reported_checkpoints(*args, **kwargs)

    def ready(self) -> bool:
        return True

    async def abort(self) -> None:
        if self._controller is not None:
            await self._controller.abort()


# This process's ControllerHost actor (owned here: it ends with this process).
_host: Any = None


def controller_host() -> Any:
    """This process's ControllerHost, started on this node on first use or if it died (its node
    was lost, or an aborted controller exited it)."""
    global _host
    if _host is not None:
        try:
            ray.get(_host.ready.remote())
        except ray.exceptions.RayActorError:
            _host = None
    if _host is None:
        here = ray.get_runtime_context().get_node_id()
        _host = ray.remote(num_cpus=0)(ControllerHost).options(
            label_selector={ray._raylet.RAY_NODE_ID_KEY: here}
        ).remote()
    return _host


class NoWorkerRuntimeEnv(ControllerCallback):
    """A Train controller callback: in the controller, workers get only the run's own runtime env.

    Train adds the ``RAY_TRAIN_*`` variables it sees to every worker's runtime env; a
    controller in a ``ControllerHost`` sees the raylet's, which every worker inherits anyway.
    """

    def after_controller_start(self, train_run_context: Any) -> None:
        from ray.train.v2._internal.execution.worker_group.worker_group import WorkerGroup

        WorkerGroup._get_worker_runtime_env = staticmethod(_own_runtime_env)


def _own_runtime_env(custom_runtime_env: Any) -> dict[str, Any]:
    return dict(custom_runtime_env or {})
