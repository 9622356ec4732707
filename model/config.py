"""Model and training configuration: one frozen dataclass, serialisable to and from a dict."""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Literal

from features.configbase import from_dict_strict

Variant = Literal["reference", "wide", "deep"]
MixedPrecision = Literal["auto", "on", "off"]

VARIANTS: tuple[str, ...] = ("reference", "wide", "deep")
MIXED_PRECISION_MODES: tuple[str, ...] = ("auto", "on", "off")

_INT_FIELDS = ("kernel_size", "batch_size", "epochs", "patience", "seed", "checkpoint_every")
_FLOAT_FIELDS = (
    "l2",
    "dropout1",
    "dropout2",
    "leaky_relu_alpha",
    "bn_momentum",
    "learning_rate",
    "beta_1",
    "beta_2",
    "val_fraction",
)


@dataclass(frozen=True)
class TrainConfig:
    """The CNN and how it is trained. Defaults reproduce the reference Keras demo.

    ``variant``: ``"reference"`` is the demo network; ``"wide"`` doubles every filter count;
    ``"deep"`` appends one more conv block (max-pool, conv with twice the last filter count).
    ``batch_size`` is per worker; the global batch is ``batch_size * world_size``.
    ``patience`` is early stopping on val_loss in epochs (0 = off). ``mixed_precision``
    ``"auto"`` turns mixed_float16 on only when the workers use GPUs. ``checkpoint_every``
    (0 = off) adds periodic checkpoints to the ones taken at each new best val_loss.
    ``normalise`` standardises every mel band with training-rows-only mean/std.
    ``bn_momentum`` is BatchNormalization's moving-average momentum (Keras default 0.99,
    as in the demo); short runs need less, or inference-mode statistics lag far behind.
    ``deterministic`` enables TensorFlow op determinism (slower on GPU, ~free on CPU).
    """

    filters: tuple[int, ...] = (32, 32, 64, 64)
    kernel_size: int = 3
    l2: float = 5e-4
    dropout1: float = 0.07
    dropout2: float = 0.14
    leaky_relu_alpha: float = 0.1
    bn_momentum: float = 0.99
    variant: Variant = "reference"
    learning_rate: float = 1e-4
    beta_1: float = 0.99
    beta_2: float = 0.999
    batch_size: int = 128
    epochs: int = 360
    patience: int = 0
    seed: int = 0
    mixed_precision: MixedPrecision = "auto"
    val_fraction: float = 0.1
    checkpoint_every: int = 10
    normalise: bool = True
    deterministic: bool = True

    def __post_init__(self) -> None:
        self._coerce_numbers()
        self._check_ranges()

    def _coerce_numbers(self) -> None:
        # Search spaces (Tune, Optuna) hand back numpy scalars and JSON hands back lists;
        # store plain Python values so to_dict() is JSON-clean and hashing is stable.
        if isinstance(self.filters, str) or not isinstance(self.filters, (tuple, list)):
            raise ValueError(
                f"TrainConfig.filters must be a sequence of 4 positive integers, got {self.filters!r}"
            )
        object.__setattr__(self, "filters", tuple(_as_int("filters", f) for f in self.filters))
        for name in _INT_FIELDS:
            object.__setattr__(self, name, _as_int(name, getattr(self, name)))
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, _as_float(name, getattr(self, name)))
        for name in ("normalise", "deterministic"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"TrainConfig.{name} must be true or false, got {getattr(self, name)!r}"
                )

    def _check_ranges(self) -> None:
        if len(self.filters) != 4 or any(f <= 0 for f in self.filters):
            raise ValueError(
                f"TrainConfig.filters must be 4 positive integers (one per conv layer), got {self.filters!r}"
            )
        _require(self.kernel_size >= 1, "kernel_size", "must be >= 1", self.kernel_size)
        _require(self.l2 >= 0, "l2", "must be >= 0", self.l2)
        for name in ("dropout1", "dropout2"):
            _require(0 <= getattr(self, name) < 1, name, "must be in [0, 1)", getattr(self, name))
        _require(
            self.leaky_relu_alpha >= 0, "leaky_relu_alpha", "must be >= 0", self.leaky_relu_alpha
        )
        _require(0 <= self.bn_momentum < 1, "bn_momentum", "must be in [0, 1)", self.bn_momentum)
        _require(self.variant in VARIANTS, "variant", f"must be one of {VARIANTS}", self.variant)
        _require(self.learning_rate > 0, "learning_rate", "must be > 0", self.learning_rate)
        for name in ("beta_1", "beta_2"):
            _require(0 <= getattr(self, name) < 1, name, "must be in [0, 1)", getattr(self, name))
        _require(self.batch_size >= 1, "batch_size", "must be >= 1", self.batch_size)
        _require(self.epochs >= 1, "epochs", "must be >= 1", self.epochs)
        _require(
            self.patience >= 0, "patience", "must be >= 0 (0 = no early stopping)", self.patience
        )
        _require(self.seed >= 0, "seed", "must be >= 0", self.seed)
        _require(
            self.mixed_precision in MIXED_PRECISION_MODES,
            "mixed_precision",
            f"must be one of {MIXED_PRECISION_MODES}",
            self.mixed_precision,
        )
        _require(0 < self.val_fraction < 1, "val_fraction", "must be in (0, 1)", self.val_fraction)
        _require(
            self.checkpoint_every >= 0,
            "checkpoint_every",
            "must be >= 0 (0 = off)",
            self.checkpoint_every,
        )

    @property
    def conv_filters(self) -> tuple[int, ...]:
        """Filter counts actually built: ``filters`` doubled for the wide variant."""
        factor = 2 if self.variant == "wide" else 1
        return tuple(f * factor for f in self.filters)

    def use_mixed_precision(self, use_gpu: bool) -> bool:
        return self.mixed_precision == "on" or (self.mixed_precision == "auto" and use_gpu)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["filters"] = list(self.filters)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return from_dict_strict(cls, dict(data))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        # 3.0 from a float search space is an integer in all but type.
        if (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and float(value).is_integer()
        ):
            return int(value)
        raise ValueError(f"TrainConfig.{name} must be an integer, got {value!r}")
    return int(value)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"TrainConfig.{name} must be a number, got {value!r}")
    return float(value)


def _require(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"TrainConfig.{name} {rule}, got {value!r}")
