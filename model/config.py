"""Model and training configuration: one frozen dataclass, serialisable to and from a dict."""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Literal

from features.configbase import from_dict_strict

Variant = Literal["reference", "wide", "deep"]
MixedPrecision = Literal["auto", "on", "off"]
Architecture = Literal["reference", "sb-cnn", "vgg-bn"]
OptimizerName = Literal["adam", "adamw", "sgd"]
LrSchedule = Literal["constant", "cosine", "onecycle"]
LrScaling = Literal["none", "linear"]

VARIANTS: tuple[str, ...] = ("reference", "wide", "deep")
MIXED_PRECISION_MODES: tuple[str, ...] = ("auto", "on", "off")
ARCHITECTURES: tuple[str, ...] = ("reference", "sb-cnn", "vgg-bn")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "onecycle")
LR_SCALINGS: tuple[str, ...] = ("none", "linear")

# Smallest (bands, frames) the new networks build for: sb-cnn pools (4, 2) twice with
# 'same' padding on small inputs, vgg-bn pools (2, 2) three times (model/networks.py).
_MIN_INPUT: dict[str, tuple[int, int]] = {"sb-cnn": (16, 4), "vgg-bn": (8, 8)}

_INT_FIELDS = (
    "kernel_size",
    "batch_size",
    "epochs",
    "patience",
    "seed",
    "checkpoint_every",
    "freq_masks",
    "freq_mask_width",
    "time_masks",
    "time_mask_width",
    "time_shift",
)
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
    "weight_decay",
    "momentum",
    "warmup_epochs",
    "label_smoothing",
    "mixup_alpha",
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

    ``architecture`` picks the network (``model/networks.py``): ``reference`` (the demo's,
    shaped by ``filters``, ``kernel_size``, ``l2``, dropouts, ``leaky_relu_alpha``,
    ``bn_momentum`` and ``variant``), ``sb-cnn`` (Salamon & Bello 2017, its published
    constants) or ``vgg-bn`` (VGG-style with batch norm and global pooling; reads ``l2``,
    ``dropout2`` and ``bn_momentum``). ``optimizer``: ``adam``, ``adamw`` (decoupled
    ``weight_decay``) or ``sgd`` (``momentum``, optional ``weight_decay``); ``lr_schedule``:
    ``constant``, ``cosine`` (to 0, after a linear warm-up of ``warmup_epochs``) or
    ``onecycle`` (warm-up of ``warmup_epochs`` from lr/25, then cosine to lr/25e4), peaking at
    ``learning_rate``. Training batches only (``model/augment_tf.py``): ``label_smoothing``,
    ``mixup_alpha`` (0 = off), SpecAugment masks (``freq_masks`` of up to
    ``freq_mask_width`` bands, ``time_masks`` of up to ``time_mask_width`` frames) and
    ``time_shift`` (a circular roll by up to that many frames either way). Every one is off
    by default.

    ``lr_scaling``: ``none`` (the default) trains every world size at ``learning_rate``;
    ``linear`` multiplies it by the number of workers (the global batch grows with them:
    Goyal et al. 2017's linear scaling rule; schedules then peak at the scaled rate).
    ``jit_compile`` compiles the training step with XLA (``model.compile(jit_compile=True)``);
    it needs ``deterministic=False`` (TensorFlow's XLA has no deterministic MaxPool gradient).
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
    architecture: Architecture = "reference"
    optimizer: OptimizerName = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.0
    lr_schedule: LrSchedule = "constant"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    freq_masks: int = 0
    freq_mask_width: int = 0
    time_masks: int = 0
    time_mask_width: int = 0
    time_shift: int = 0
    lr_scaling: LrScaling = "none"
    jit_compile: bool = False

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
        for name in ("normalise", "deterministic", "jit_compile"):
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
        self._check_network_and_optimizer()
        self._check_augmentation()

    def _check_network_and_optimizer(self) -> None:
        _require(
            self.architecture in ARCHITECTURES,
            "architecture",
            f"must be one of {ARCHITECTURES}",
            self.architecture,
        )
        _require(
            self.variant == "reference" or self.architecture == "reference",
            "variant",
            f"applies to architecture 'reference' only (architecture is {self.architecture!r})",
            self.variant,
        )
        _require(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {OPTIMIZERS}", self.optimizer)
        _require(self.weight_decay >= 0, "weight_decay", "must be >= 0", self.weight_decay)
        _require(
            self.weight_decay == 0 or self.optimizer != "adam",
            "weight_decay",
            "needs optimizer 'adamw' (decoupled) or 'sgd'; with 'adam' use l2",
            self.weight_decay,
        )
        _require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)", self.momentum)
        _require(
            self.momentum == 0 or self.optimizer == "sgd",
            "momentum",
            "applies to optimizer 'sgd' only (Adam's is beta_1)",
            self.momentum,
        )
        _require(self.lr_scaling in LR_SCALINGS, "lr_scaling", f"must be one of {LR_SCALINGS}", self.lr_scaling)
        _require(
            not (self.jit_compile and self.deterministic),
            "jit_compile",
            "needs deterministic: false (XLA has no deterministic MaxPool gradient: TensorFlow fails the first "
            "step with 'MaxPool gradient ops do not yet have a deterministic XLA implementation', "
            "tensorflow/tensorflow#69417)",
            self.jit_compile,
        )
        _require(
            self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"must be one of {LR_SCHEDULES}", self.lr_schedule
        )
        _require(
            0 <= self.warmup_epochs < self.epochs,
            "warmup_epochs",
            f"must be in [0, epochs={self.epochs})",
            self.warmup_epochs,
        )
        _require(
            self.warmup_epochs == 0 or self.lr_schedule != "constant",
            "warmup_epochs",
            "applies to lr_schedule 'cosine' or 'onecycle'",
            self.warmup_epochs,
        )
        _require(
            self.warmup_epochs > 0 or self.lr_schedule != "onecycle",
            "warmup_epochs",
            "must be > 0 with lr_schedule 'onecycle' (its rising phase; often 0.3 x epochs)",
            self.warmup_epochs,
        )

    def _check_augmentation(self) -> None:
        _require(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)", self.label_smoothing)
        _require(self.mixup_alpha >= 0, "mixup_alpha", "must be >= 0 (0 = off)", self.mixup_alpha)
        for count, width in (("freq_masks", "freq_mask_width"), ("time_masks", "time_mask_width")):
            _require(getattr(self, count) >= 0, count, "must be >= 0 (0 = off)", getattr(self, count))
            _require(getattr(self, width) >= 0, width, "must be >= 0", getattr(self, width))
            _require(
                getattr(self, count) == 0 or getattr(self, width) >= 1,
                width,
                f"must be >= 1 when {count} is {getattr(self, count)}",
                getattr(self, width),
            )
        _require(self.time_shift >= 0, "time_shift", "must be >= 0 frames (0 = off)", self.time_shift)

    def check_input(self, shape: tuple[int, ...]) -> None:
        """Reject settings the input ``(bands, frames[, channels])`` cannot take, by field."""
        bands, frames = int(shape[0]), int(shape[1])
        _require(
            self.freq_mask_width <= bands,
            "freq_mask_width",
            f"must be <= the input's {bands} mel bands",
            self.freq_mask_width,
        )
        for name in ("time_mask_width", "time_shift"):
            _require(
                getattr(self, name) <= frames,
                name,
                f"must be <= the input's {frames} frames",
                getattr(self, name),
            )
        low_bands, low_frames = self.min_input()
        _require(
            bands >= low_bands and frames >= low_frames,
            "architecture",
            f"needs inputs of at least {low_bands} bands x {low_frames} frames, "
            f"the features are {bands} x {frames}",
            self.architecture,
        )

    def min_input(self) -> tuple[int, int]:
        """Smallest (bands, frames) the network builds for ('valid' convs and pools shrink)."""
        if self.architecture in _MIN_INPUT:
            return _MIN_INPUT[self.architecture]
        # reference: conv conv pool2 conv conv [pool2 conv] along each axis, 'valid' padding.
        ops = ["conv", "conv", "pool", "conv", "conv"] + (["pool", "conv"] if self.variant == "deep" else [])
        size = 1
        while True:
            left = size
            for op in ops:
                left = left - (self.kernel_size - 1) if op == "conv" else left // 2
                if left < 1:
                    break
            if left >= 1:
                return size, size
            size += 1

    @property
    def soft_labels(self) -> bool:
        """Training labels are probability vectors (mixup or label smoothing), not classIDs."""
        return self.mixup_alpha > 0 or self.label_smoothing > 0

    @property
    def augments_batches(self) -> bool:
        """Any on-the-fly change to training batches (inputs or labels)."""
        return self.soft_labels or bool(
            self.freq_masks or self.time_masks or self.time_shift
        )

    @property
    def conv_filters(self) -> tuple[int, ...]:
        """Filter counts actually built: ``filters`` doubled for the wide variant."""
        factor = 2 if self.variant == "wide" else 1
        return tuple(f * factor for f in self.filters)

    def scaled_learning_rate(self, world_size: int) -> float:
        """The peak learning rate of a run of ``world_size`` workers (``lr_scaling``)."""
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size!r}")
        return self.learning_rate * (world_size if self.lr_scaling == "linear" else 1)

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
