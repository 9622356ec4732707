"""Sweep configuration: the sweep's own frozen dataclass, the search space, and the full spec.

A sweep is described by three layers, each a frozen dataclass with ``to_dict``/``from_dict``
(unknown keys rejected): ``features`` (FeatureConfig), ``train`` (TrainConfig: the base every
configuration starts from) and ``sweep`` (SweepConfig: data, folds, search, resources,
tracking), plus ``augment`` (AugmentConfig: offline waveform variants of the training clips;
empty by default). A config file (JSON or YAML) holds any of these sections; ``--set
section.key=value`` overrides one field (values are parsed as YAML: ``1e-3``, ``[1, 2]``,
``true``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from features.augment import AugmentConfig
from features.config import FeatureConfig
from features.configbase import from_dict_strict
from features.us8k import FOLDS, parse_folds
from model.config import TrainConfig


class _Loader(yaml.SafeLoader):
    """YAML for config values, minus two YAML 1.1 surprises: ``1e-4`` read as a string (it wants
    ``1.0e-4``) and on/off/yes/no read as booleans (``train.mixed_precision=off`` is a string)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)$|^[-+]?(?:\d+\.\d*|\.\d+)$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


Search = Literal["grid", "random", "optuna"]
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")

# The embedded default: two configurations, the reference hyper-parameters and a 10x learning
# rate, over all ten folds. Without --data-dir the demo also shortens training (DEMO_TRAIN).
DEFAULT_SEARCH_SPACE: dict[str, Any] = {"learning_rate": [1e-4, 1e-3]}
DEMO_TRAIN: dict[str, Any] = {"epochs": 10, "batch_size": 32, "bn_momentum": 0.9, "checkpoint_every": 0}
# The demo's runlocal-style shrink on top (unless --full-size): a half-width network on the
# middle 2 s of every clip, so 20 trials fit 10 minutes on 2 slow cores (README, "Demo size").
DEMO_SHRINK: dict[str, dict[str, Any]] = {"features": {"frames": 87}, "train": {"filters": [16, 16, 32, 32]}}


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep, where, and where results go. ``None`` means "decide at run time"."""

    data_dir: str | None = None  # None: the synthetic demo set, generated once into the cache
    synthetic_preset: str = "demo"
    synthetic_seed: int = 0
    skip_missing: bool = False
    cache_dir: str | None = None
    folds: tuple[int, ...] = FOLDS
    search: Search = "grid"
    search_space: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SEARCH_SPACE))
    num_samples: int = 2  # configurations drawn by random/optuna search (grid: all points)
    seed: int = 0
    max_concurrent: int | None = None  # trials at once; None: as many as the cluster fits
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None  # None: 1 if the cluster has GPUs, else 0
    time_budget_s: float | None = None
    train_max_failures: int = 1  # Ray Train restarts of a worker group, from the last checkpoint
    trial_max_failures: int = 1  # Ray Tune retries of a whole trial
    experiment: str = "us8k-cv"
    tracking_uri: str | None = None  # None: MLflow's default (MLFLOW_TRACKING_URI or sqlite:///mlflow.db)
    # At its end, how long the sweep waits for an unreachable tracking server before it leaves
    # the writes it could not make in its spool (python -m orchestration.replay).
    tracking_grace_s: float = 300.0
    storage_path: str | None = None  # None: ~/ray_results
    name: str | None = None  # None: cv-<timestamp>; the same name (or --resume) continues a sweep
    address: str | None = None
    log_models: bool = True
    demo_shrink: bool = True  # without data_dir: apply DEMO_SHRINK (False: the reference sizes)
    refit: bool | None = None  # the best configuration on all folds, registered; None: with data_dir only
    register_as: str = "us8k-cnn"  # MLflow registered model name ("" = do not register)
    # Where a trial's training loop runs (orchestration.trial): "worker-group" (a Ray Train
    # worker group per trial: any number of workers), "in-trial" (the Tune trial process runs
    # the loop itself: no per-trial process start-ups; one worker), "auto" (in-trial for
    # 1-worker CPU trials, worker-group otherwise).
    trial_process: str = "auto"
    # Fold racing (orchestration.racing): drop a configuration once its finished folds show it
    # worse than the leader. off | wilcoxon | ttest.
    racing: str = "off"
    racing_min_folds: int = 4
    racing_alpha: float = 0.05
    # The named recipe (orchestration/recipes/) the spec started from, set by --recipe: a label
    # logged on the sweep run (param sweep.recipe, tag us8k.recipe); None: no recipe.
    recipe: str | None = None

    def __post_init__(self) -> None:
        folds = parse_folds(",".join(map(str, self.folds))) if not isinstance(self.folds, str) else parse_folds(self.folds)
        object.__setattr__(self, "folds", folds)
        object.__setattr__(self, "search_space", dict(self.search_space))
        if self.search not in ("grid", "random", "optuna"):
            raise ValueError(f"sweep.search must be grid, random or optuna, got {self.search!r}")
        _positive_int("num_samples", self.num_samples)
        _positive_int("workers_per_trial", self.workers_per_trial)
        if self.max_concurrent is not None:
            _positive_int("max_concurrent", self.max_concurrent)
        # >= 0.1: each trial's driver takes 0.01 CPU out of its workers' share (orchestration.trial).
        _check("cpus_per_worker", self.cpus_per_worker, self.cpus_per_worker >= 0.1, "must be >= 0.1")
        if self.gpus_per_worker is not None:
            _check("gpus_per_worker", self.gpus_per_worker, self.gpus_per_worker >= 0, "must be >= 0")
        if self.time_budget_s is not None:
            _check("time_budget_s", self.time_budget_s, self.time_budget_s > 0, "must be > 0 seconds")
        _check("tracking_grace_s", self.tracking_grace_s, self.tracking_grace_s >= 0, "must be >= 0 seconds")
        for name in ("train_max_failures", "trial_max_failures"):
            _check(name, getattr(self, name), getattr(self, name) >= 0, "must be >= 0")
        check_search_space(self.search_space, self.search)
        if self.register_as and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.register_as):
            raise ValueError(f"sweep.register_as must be letters, digits, '.', '_' or '-', got {self.register_as!r}")
        if self.trial_process not in ("auto", "worker-group", "in-trial"):
            raise ValueError(f"sweep.trial_process must be auto, worker-group or in-trial, got {self.trial_process!r}")
        if self.trial_process == "in-trial" and self.workers_per_trial != 1:
            raise ValueError("sweep.trial_process in-trial runs one worker per trial; use worker-group for "
                             f"workers_per_trial={self.workers_per_trial}")
        if self.racing not in ("off", "wilcoxon", "ttest"):
            raise ValueError(f"sweep.racing must be off, wilcoxon or ttest, got {self.racing!r}")
        _check("racing_min_folds", self.racing_min_folds,
               isinstance(self.racing_min_folds, int) and self.racing_min_folds >= 2, "must be an integer >= 2")
        _check("racing_alpha", self.racing_alpha, 0 < self.racing_alpha < 1, "must be in (0, 1)")
        _check("recipe", self.recipe, self.recipe is None or (isinstance(self.recipe, str) and bool(self.recipe)),
               "must be a recipe name or null")

    @property
    def refits(self) -> bool:
        return self.refit if self.refit is not None else self.data_dir is not None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["folds"] = list(self.folds)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepConfig:
        return from_dict_strict(cls, dict(data))


SECTIONS = ("features", "augment", "train", "sweep")


@dataclass(frozen=True)
class SweepSpec:
    """The configuration layers of one sweep (``augment`` empty: no augmentation)."""

    features: FeatureConfig
    train: TrainConfig
    sweep: SweepConfig
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features.to_dict(), "augment": self.augment.to_dict(),
                "train": self.train.to_dict(), "sweep": self.sweep.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ValueError(f"config: unknown section(s) {', '.join(unknown)}; sections: {', '.join(SECTIONS)}")
        sweep = SweepConfig.from_dict(data.get("sweep", {}))
        features: dict[str, Any] = {}
        train: dict[str, Any] = dict(DEMO_TRAIN) if sweep.data_dir is None else {}
        if sweep.data_dir is None and sweep.demo_shrink:
            features.update(DEMO_SHRINK["features"])
            train.update(DEMO_SHRINK["train"])
        features.update(data.get("features", {}))
        train.update(data.get("train", {}))
        augment = AugmentConfig.from_dict(data.get("augment") or {})
        return cls(FeatureConfig.from_dict(features), TrainConfig.from_dict(train), sweep, augment)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML config file into nested dicts, with the file named in errors."""
    path = Path(path)
    try:
        data = parse_yaml(path.read_text())  # YAML is a superset of JSON
    except OSError as exc:
        raise ValueError(f"config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {path}: not valid YAML/JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: expected a mapping with {'/'.join(SECTIONS)} sections")
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``section.key=value`` (value parsed as YAML) to nested dict ``data`` in place."""
    key, sep, raw = assignment.partition("=")
    if not sep or "." not in key:
        raise ValueError(f"--set {assignment!r}: expected section.key=value, e.g. train.epochs=5")
    section, name = key.strip().split(".", 1)
    if section not in SECTIONS:
        raise ValueError(f"--set {assignment!r}: section must be one of {', '.join(SECTIONS)}, not {section!r}")
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError:
        value = raw
    target = data.setdefault(section, {})
    *parents, leaf = name.split(".")
    for parent in parents:  # e.g. sweep.search_space.learning_rate=[1e-4, 1e-3]
        target = target.setdefault(parent, {})
    target[leaf] = value


# ---------------------------------------------------------------------------------------------
# Search space: {param: [values]} (a choice; grid enumerates it) or
# {param: {"uniform"|"loguniform"|"randint": [lo, hi]}} or {param: {"choice": [values]}}.


def check_search_space(space: dict[str, Any], search: str) -> None:
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, spec in space.items():
        if name not in train_fields:
            raise ValueError(
                f"sweep.search_space: {name!r} is not a train setting; known: {', '.join(sorted(train_fields))}"
            )
        if isinstance(spec, list):
            if not spec:
                raise ValueError(f"sweep.search_space.{name}: empty list of values; {_one_value_hint(name)}")
            continue
        if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in DISTRIBUTIONS):
            raise ValueError(
                f"sweep.search_space.{name}: expected a list of values or one of "
                f"{{uniform|loguniform|randint: [lo, hi]}} / {{choice: [values]}}, got {spec!r}"
            )
        kind, args = next(iter(spec.items()))
        if kind == "choice":
            if not (isinstance(args, list) and args):
                raise ValueError(f"sweep.search_space.{name}: choice needs a non-empty list of values, got {args!r}; "
                                 f"{_one_value_hint(name)}")
            continue
        if search == "grid":
            raise ValueError(f"sweep.search_space.{name}: a {kind} range cannot be enumerated by grid search; "
                             "use a list of values, or --search random/optuna")
        if not (isinstance(args, list) and len(args) == 2 and args[0] < args[1]):
            raise ValueError(f"sweep.search_space.{name}: {kind} needs [lo, hi] with lo < hi, got {args!r}")
        if kind == "loguniform" and args[0] <= 0:
            raise ValueError(f"sweep.search_space.{name}: loguniform needs lo > 0, got {args!r}")


def _one_value_hint(name: str) -> str:
    default = getattr(TrainConfig(), name)
    return f"give at least one value (e.g. [{json.dumps(default)}], the default), or leave {name} out of the space"


def _choices(spec: Any) -> list[Any]:
    return spec if isinstance(spec, list) else spec["choice"]


def grid_configurations(space: dict[str, Any]) -> list[dict[str, Any]]:
    """Every point of the grid, in a stable order (last parameter varies fastest)."""
    names = list(space)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(_choices(space[n]) for n in names))]


def tune_space(space: dict[str, Any]) -> dict[str, Any]:
    """The space as Ray Tune domains: a list or ``{choice: [...]}`` -> ``tune.choice``, and
    ``tune.uniform`` / ``tune.loguniform`` / ``tune.randint`` (``[lo, hi)``) for the ranges."""
    from ray import tune

    makers = {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}
    out = {}
    for name, spec in space.items():
        kind, args = ("choice", spec) if isinstance(spec, list) else next(iter(spec.items()))
        out[name] = tune.choice(list(args)) if kind == "choice" else makers[kind](*args)
    return out


def random_configurations(space: dict[str, Any], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` configurations drawn from the Tune domains with a seeded generator, so a resumed
    sweep draws the same ones."""
    import numpy as np

    rng = np.random.default_rng(seed)
    domains = tune_space(space)
    return [{name: domain.sample(random_state=rng) for name, domain in domains.items()} for _ in range(n)]


def optuna_space(space: dict[str, Any]) -> dict[str, Any]:
    """The space as Optuna distributions, converted from the Tune domains by Ray's OptunaSearch."""
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch.convert_search_space(tune_space(space))


def config_id(params: dict[str, Any]) -> str:
    """Deterministic short id of a configuration's parameters (stable across resumes)."""
    import hashlib

    blob = json.dumps(_plain(params), sort_keys=True).encode()
    return "c" + hashlib.sha256(blob).hexdigest()[:8]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON-clean Python values (search algorithms hand back numpy scalars)."""
    return _plain(params)


def _positive_int(name: str, value: Any) -> None:
    _check(name, value, isinstance(value, int) and not isinstance(value, bool) and value >= 1, "must be an integer >= 1")


def _check(name: str, value: Any, ok: bool, rule: str) -> None:
    if not ok:
        raise ValueError(f"sweep.{name} {rule}, got {value!r}")
