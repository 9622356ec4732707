"""The resolved sweep (``Plan``) and the checks that need no compute, run before any is spent.

``preflight`` turns a ``SweepSpec`` into a ``Plan``: the sweep's name (new, or the one being
resumed, with the spec it was started with), its storage path, the tracking store (reached
and writable), the configurations (every value accepted by ``TrainConfig``). ``with_cluster``
adds what depends on the Ray cluster: GPUs per worker and trials at once.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestration.config import (
    SweepSpec,
    config_id,
    grid_configurations,
    plain_params,
    random_configurations,
)
from orchestration.inputs import InputError, check_inputs
from orchestration.redact import SECRET, redact_mapping
from orchestration.tracking import check_tracking_uri, resolve_tracking_uri


class SweepError(Exception):
    """A problem the user must fix; printed without a traceback, exit code 2."""


@dataclass(frozen=True)
class Plan:
    """The resolved sweep: what runs where, with which names."""

    spec: SweepSpec
    name: str
    storage_path: str
    tracking_uri: str
    gpus_per_worker: float
    max_concurrent: int
    configurations: tuple[tuple[str, dict[str, Any]], ...]  # (config id, params); empty for optuna
    resume: bool
    verbose: bool = False
    spec_changed: bool = False  # resumed with --force-config and new settings: store the new spec


def resolve_storage_path(spec: SweepSpec) -> str:
    path = spec.sweep.storage_path or os.environ.get("US8K_STORAGE_PATH") or "~/ray_results"
    return path if "://" in path else str(Path(path).expanduser().absolute())


def resolve_name(spec: SweepSpec, resume: bool | str, storage_path: str) -> tuple[str, bool]:
    if isinstance(resume, str):
        return resume, True
    if spec.sweep.name:
        return spec.sweep.name, resume or _tune_state_exists(storage_path, spec.sweep.name)
    if resume:
        latest = _latest_sweep(storage_path)
        if latest is None:
            raise SweepError(f"--resume: no sweep found under {storage_path}; pass --resume NAME or --name")
        return latest, True
    return time.strftime("cv-%Y%m%d-%H%M%S"), False


def _tune_state_exists(storage_path: str, name: str) -> bool:
    from ray.tune import Tuner

    return Tuner.can_restore(_join(storage_path, name))


def _latest_sweep(storage_path: str) -> str | None:
    if "://" in storage_path:
        return None
    root = Path(storage_path)
    sweeps = sorted((p for p in root.glob("cv-*") if (p / "tuner.pkl").exists()), key=lambda p: p.stat().st_mtime)
    return sweeps[-1].name if sweeps else None


def _join(storage_path: str, name: str) -> str:
    return f"{storage_path.rstrip('/')}/{name}"


def configurations(spec: SweepSpec) -> tuple[tuple[str, dict[str, Any]], ...]:
    sweep = spec.sweep
    shape = (spec.features.bands, spec.features.frames)  # the model input, channels aside
    spec.train.check_input(shape)  # masks, shifts and networks that the features cannot take
    if sweep.search == "grid":
        points = grid_configurations(sweep.search_space)
    elif sweep.search == "random":
        points = random_configurations(sweep.search_space, sweep.num_samples, sweep.seed)
    else:
        return ()
    out, seen = [], set()
    for params in map(plain_params, points):
        cfg = config_id(params)
        # Fail now, not in a trial, on values TrainConfig rejects.
        spec.train.replace(**params).check_input(shape)
        if cfg not in seen:
            seen.add(cfg)
            out.append((cfg, params))
    return tuple(out)


def check_cluster(spec: SweepSpec, resources: dict[str, float]) -> tuple[float, int]:
    """GPUs per worker (auto: 1 if the cluster has GPUs) and how many trials fit at once."""
    sweep = spec.sweep
    gpus_total = resources.get("GPU", 0.0)
    gpus = sweep.gpus_per_worker if sweep.gpus_per_worker is not None else (1.0 if gpus_total else 0.0)
    if gpus > 0 and gpus_total < gpus * sweep.workers_per_trial:
        raise SweepError(
            f"{sweep.workers_per_trial} worker(s) x {gpus:g} GPU requested per trial, but the Ray cluster "
            f"has {gpus_total:g} GPU(s). Use --gpus-per-worker 0 to train on CPUs, or connect to a GPU "
            "cluster (--address, see README 'Run on a cluster')."
        )
    cpus_total = resources.get("CPU", 0.0)
    per_trial = sweep.cpus_per_worker * sweep.workers_per_trial  # the trial driver's share included
    if cpus_total < per_trial:
        raise SweepError(
            f"{sweep.workers_per_trial} worker(s) x {sweep.cpus_per_worker:g} CPU requested per trial, but the "
            f"Ray cluster has {cpus_total:g} CPU(s); lower --workers-per-trial or --cpus-per-worker."
        )
    fit = int(cpus_total // per_trial)
    if gpus > 0:
        fit = min(fit, int(gpus_total // (gpus * sweep.workers_per_trial)))
    # An explicit --max-concurrent may exceed what fits now: queued trials make an autoscaling
    # cluster add nodes. By default, run what fits (each waiting trial would hold a process).
    return gpus, sweep.max_concurrent or max(1, fit)


SPEC_FILE = "us8k_sweep.json"


def read_stored_spec(storage_path: str, name: str) -> SweepSpec | None:
    """The spec a sweep was started with (saved next to Tune's state), if there is one."""
    import pyarrow.fs

    filesystem, root = pyarrow.fs.FileSystem.from_uri(_join(storage_path, name))
    try:
        with filesystem.open_input_stream(f"{root}/{SPEC_FILE}") as fh:
            return SweepSpec.from_dict(json.loads(fh.read().decode()))
    except FileNotFoundError:
        return None


def write_stored_spec(plan: Plan) -> None:
    import pyarrow.fs

    filesystem, root = pyarrow.fs.FileSystem.from_uri(_join(plan.storage_path, plan.name))
    filesystem.create_dir(root, recursive=True)
    with filesystem.open_output_stream(f"{root}/{SPEC_FILE}") as fh:
        # Redacted: credentials in a URI are not written down; a resume takes them from its own command.
        fh.write(json.dumps(redact_mapping(plan.spec.to_dict()), indent=1).encode())


def _unredacted(stored: Any, current: Any) -> dict[str, Any]:
    """URI fields the stored spec holds only redacted: this command's values instead."""
    fields = ("tracking_uri", "storage_path", "cache_dir", "data_dir")
    return {f: getattr(current, f) for f in fields if SECRET in str(getattr(stored, f) or "")}


# What may differ when a sweep is resumed: where it runs, and how long it waits for MLflow.
RESUME_FREE = {"sweep.address", "sweep.name", "sweep.tracking_grace_s"}


def config_changes(stored: SweepSpec, given: dict[str, Any]) -> tuple[SweepSpec, list[str]]:
    """The stored spec with the settings given on this command line on top, and what those
    change ("section.key: old -> new"). Only settings given count: a bare ``--resume NAME``
    changes nothing. URIs are compared redacted (the stored spec holds them so)."""
    merged = stored.to_dict()
    for section, values in given.items():
        merged.setdefault(section, {}).update(values)
    new = SweepSpec.from_dict(merged)
    old_flat, new_flat = _flat(redact_mapping(stored.to_dict())), _flat(redact_mapping(new.to_dict()))
    changes = [f"{key}: {_show(old_flat.get(key))} -> {_show(new_flat.get(key))}"
               for key in sorted(set(old_flat) | set(new_flat))
               if key not in RESUME_FREE and old_flat.get(key) != new_flat.get(key)]
    return new, changes


def _flat(spec: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, values in spec.items() for key, value in values.items()}


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _resumed_spec(spec: SweepSpec, stored: SweepSpec, given: dict[str, Any] | None, force: bool,
                  where: str) -> SweepSpec:
    """The spec a resumed sweep runs with: the stored one, unless settings given now change it
    (refused, with the changes listed, unless ``force``)."""
    new, changes = config_changes(stored, given or {})
    if changes and not force:
        raise SweepError(
            f"cannot resume {where}: this command changes the configuration the sweep started with\n  "
            + "\n  ".join(changes)
            + "\nDrop these settings to continue the sweep as it was configured (--resume NAME alone is "
            "enough), start a new sweep with another --name, or add --force-config to continue with the "
            "new values (finished pairs keep their results; unfinished ones train with the new values)"
        )
    base = new if changes else stored
    if changes:
        print("--force-config: resuming with a changed configuration\n  " + "\n  ".join(changes), flush=True)
    # Only where it runs may change; URIs stored redacted come from this command.
    return replace(base, sweep=replace(base.sweep, address=spec.sweep.address,
                                       tracking_grace_s=spec.sweep.tracking_grace_s,
                                       **_unredacted(base.sweep, spec.sweep)))


def preflight(spec: SweepSpec, resume: bool | str, given: dict[str, Any] | None = None,
              force_config: bool = False) -> Plan:
    """Checks that need no cluster: names, storage, tracking store, configurations.
    ``given``: the settings this command sets explicitly (sections of keys), compared with the
    stored spec of a resumed sweep."""
    storage_path = resolve_storage_path(spec)
    name, resuming = resolve_name(spec, resume, storage_path)
    stored = read_stored_spec(storage_path, name) if resuming else None
    changed = False
    if stored is not None:
        resumed = _resumed_spec(spec, stored, given, force_config, f"{_join(storage_path, name)}")
        changed = force_config and config_changes(stored, given or {})[1] != []
        spec = resumed
    tracking_uri = resolve_tracking_uri(spec.sweep.tracking_uri)
    check_tracking_uri(tracking_uri)
    if spec.sweep.data_dir is not None and not Path(spec.sweep.data_dir).expanduser().is_dir():
        raise SweepError(f"--data-dir {spec.sweep.data_dir}: not a directory (expected the UrbanSound8K root)")
    configs = configurations(spec)
    try:
        check_inputs(spec, storage_path, tracking_uri)  # dataset, and the folders written to
    except InputError as exc:
        raise SweepError(str(exc)) from None
    return Plan(spec, name, storage_path, tracking_uri, 0.0, 1, configs, resuming, spec_changed=changed)


def with_cluster(plan: Plan, resources: dict[str, float]) -> Plan:
    gpus, concurrent = check_cluster(plan.spec, resources)
    return replace(plan, gpus_per_worker=gpus, max_concurrent=concurrent)
