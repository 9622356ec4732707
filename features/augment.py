"""Offline waveform augmentation (pure: no Ray, MLflow or TensorFlow): time stretch, pitch
shift, dynamic range compression and background noise, as Salamon & Bello (2017) used them.

``AugmentConfig`` lists the parameter values; every value of every augmentation is one
*variant* (``variants``), applied alone to a clip's waveform (``apply_variant``) before its
features are computed. The default config is empty: no augmentation.

- Time stretch and pitch shift: ``librosa.effects.time_stretch`` / ``pitch_shift`` (STFT phase
  vocoder; pitch shift resamples with soxr HQ, librosa's default), as in Salamon & Bello's
  ``muda``, which calls the same librosa functions.
- Dynamic range compression: ``compand``, a numpy version of ``sox compand`` (what ``muda``
  ran) with the four presets Salamon & Bello used (``music_standard``, ``film_standard``,
  ``speech``, ``radio``) and two lighter ones; see ``compand`` for the few differences.
- Background noise: another clip of the *same fold* from another recording (``clips``), or
  generated white or pink noise, mixed at a seeded signal-to-noise ratio drawn from
  ``noise_snr_db``. Same fold: a variant's audio then comes only from its own fold, so a
  training variant never carries a test-fold clip; whether the noise clip sits in a trial's
  validation split is checked when the trial is split (``model.data``).

Everything random is seeded from ``AugmentConfig.seed`` and the clip's file name, so a clip's
variants are the same on any node, in any batch, in any run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from features.configbase import from_dict_strict

# Bumped when an augmentation's output changes for the same config: part of every cache key.
AUGMENT_VERSION = 1

NoiseSource = Literal["clips", "white", "pink"]
NOISE_SOURCES: tuple[str, ...] = ("clips", "white", "pink")
STORAGE_DTYPES: tuple[str, ...] = ("float16", "float32")


@dataclass(frozen=True)
class CompandPreset:
    """``sox compand attack,decay points gain initial-volume delay`` (times in s, levels in dB)."""

    attack: float
    decay: float
    points: tuple[tuple[float, float], ...]  # (input dB, output dB), increasing input
    gain_db: float = 0.0
    initial_db: float | None = None  # None: the envelope starts at silence
    delay: float = 0.0  # look-ahead of the gain over the audio, seconds


def _points(*values: float) -> tuple[tuple[float, float], ...]:
    return tuple(zip(values[::2], values[1::2], strict=True))


# The Dolby-style presets Salamon & Bello applied with sox (as muda ships them): quiet sounds
# are lifted, loud ones held down (~20:1 above -21 dB). ``radio`` squeezes -60..0 dB into -20..0.
DRC_PRESETS: dict[str, CompandPreset] = {
    "radio": CompandPreset(0.01, 1.0, _points(-90, -90, -70, -70, -60, -20, 0, 0), gain_db=-5.0),
    "film_standard": CompandPreset(0.1, 0.3, _points(-90, -90, -70, -64, -43, -37, -31, -31, -21, -21, 0, -20), 0.0, 0.0, 0.1),
    "film_light": CompandPreset(0.1, 0.3, _points(-90, -90, -70, -64, -53, -47, -41, -41, -21, -21, 0, -20), 0.0, 0.0, 0.1),
    "music_standard": CompandPreset(0.1, 0.3, _points(-90, -90, -70, -58, -55, -43, -31, -31, -21, -21, 0, -20), 0.0, 0.0, 0.1),
    "music_light": CompandPreset(0.1, 0.3, _points(-90, -90, -70, -58, -65, -53, -41, -41, -21, -21, 0, -11), 0.0, 0.0, 0.1),
    "speech": CompandPreset(0.1, 0.3, _points(-90, -90, -70, -55, -50, -35, -31, -31, -21, -21, 0, -20), 0.0, 0.0, 0.1),
}


@dataclass(frozen=True)
class AugmentConfig:
    """Which waveform variants every training clip gets (default: none).

    ``time_stretch``: rates (>1 faster/shorter). ``pitch_shift``: semitones. ``drc``: preset
    names (``DRC_PRESETS``). ``noise_mixes``: background-noise variants per clip, each with its
    own noise and an SNR drawn uniformly from ``noise_snr_db`` = (low, high) dB; ``noise_source``
    ``clips`` (another recording of the same fold), ``white`` or ``pink``. ``variants_per_clip``
    0 = every variant; k > 0 = a seeded random k of them per clip (bounds memory).
    ``storage``: dtype of augmented features in the cache and object store.
    """

    time_stretch: tuple[float, ...] = ()
    pitch_shift: tuple[float, ...] = ()
    drc: tuple[str, ...] = ()
    noise_mixes: int = 0
    noise_source: NoiseSource = "clips"
    noise_snr_db: tuple[float, float] = (0.0, 20.0)
    variants_per_clip: int = 0
    seed: int = 0
    storage: str = "float16"

    def __post_init__(self) -> None:
        rates = _numbers("time_stretch", self.time_stretch)
        if any(not 0.25 <= r <= 4 or r == 1 for r in rates):
            raise ValueError(f"AugmentConfig.time_stretch rates must be in [0.25, 4] and not 1, got {list(rates)}")
        steps = _numbers("pitch_shift", self.pitch_shift)
        if any(not -24 <= s <= 24 or s == 0 for s in steps):
            raise ValueError(f"AugmentConfig.pitch_shift semitones must be in [-24, 24] and not 0, got {list(steps)}")
        drc = tuple(self.drc) if not isinstance(self.drc, str) else (self.drc,)
        unknown = [p for p in drc if p not in DRC_PRESETS]
        if unknown:
            raise ValueError(f"AugmentConfig.drc: unknown preset(s) {unknown}; known: {', '.join(DRC_PRESETS)}")
        snr = _numbers("noise_snr_db", self.noise_snr_db)
        if len(snr) != 2 or snr[0] > snr[1]:
            raise ValueError(f"AugmentConfig.noise_snr_db must be [low, high] dB with low <= high, got {list(snr)}")
        for name in ("noise_mixes", "variants_per_clip", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"AugmentConfig.{name} must be an integer >= 0, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.noise_source not in NOISE_SOURCES:
            raise ValueError(f"AugmentConfig.noise_source must be one of {NOISE_SOURCES}, got {self.noise_source!r}")
        if self.storage not in STORAGE_DTYPES:
            raise ValueError(f"AugmentConfig.storage must be one of {STORAGE_DTYPES}, got {self.storage!r}")
        for name, value in (("time_stretch", rates), ("pitch_shift", steps), ("drc", drc), ("noise_snr_db", snr)):
            if name != "noise_snr_db" and len(set(value)) != len(value):
                raise ValueError(f"AugmentConfig.{name} lists a value twice: {list(value)}")
            object.__setattr__(self, name, value)
        total = len(variants(self))
        if self.variants_per_clip > total:
            raise ValueError(
                f"AugmentConfig.variants_per_clip is {self.variants_per_clip} but the config defines "
                f"only {total} variant(s); lower it or use 0 (= all)"
            )

    @property
    def empty(self) -> bool:
        return not variants(self)

    @property
    def per_clip(self) -> int:
        """Variants each clip gets."""
        return self.variants_per_clip or len(variants(self))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("time_stretch", "pitch_shift", "drc", "noise_snr_db"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        return from_dict_strict(cls, dict(data))

    def digest(self) -> str:
        """Stable short hash of every field and the algorithm version: part of the cache key."""
        blob = json.dumps({"version": AUGMENT_VERSION, **self.to_dict()}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _numbers(name: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise ValueError(f"AugmentConfig.{name} must be a list of numbers, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"AugmentConfig.{name} must be a list of finite numbers, got {values!r}")
        out.append(float(v))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Variants.


@dataclass(frozen=True)
class Variant:
    """One deformation: ``kind`` ts | ps | drc | bg, its parameter and a stable name."""

    kind: str
    value: float | str | int  # rate, semitones, preset name, or noise-mix index
    name: str


def variants(config: AugmentConfig) -> list[Variant]:
    """Every variant of ``config`` in a fixed order: time stretches, pitch shifts, DRC, noise."""
    out = [Variant("ts", r, f"ts{r:g}") for r in config.time_stretch]
    out += [Variant("ps", s, f"ps{s:+g}") for s in config.pitch_shift]
    out += [Variant("drc", p, f"drc:{p}") for p in config.drc]
    out += [Variant("bg", i, f"bg{i}:{config.noise_source}") for i in range(config.noise_mixes)]
    return out


def clip_rng(config: AugmentConfig, clip_key: str, salt: str = "") -> np.random.Generator:
    """A generator seeded by the config's seed, the clip (its file name) and ``salt``."""
    digest = hashlib.sha256(f"{config.seed}\0{clip_key}\0{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def clip_variants(config: AugmentConfig, clip_key: str) -> list[Variant]:
    """The variants clip ``clip_key`` gets: all, or a seeded ``variants_per_clip`` of them."""
    every = variants(config)
    if not config.variants_per_clip or config.variants_per_clip >= len(every):
        return every
    chosen = clip_rng(config, clip_key, "choose").choice(len(every), config.variants_per_clip, replace=False)
    return [every[i] for i in sorted(chosen)]


def noise_partner(config: AugmentConfig, clip_key: str, variant: Variant, candidates: Sequence[str]) -> str:
    """The clip whose audio is the background of ``variant`` (noise_source ``clips``).

    ``candidates``: file names of the same fold from other recordings, in a stable order.
    """
    if not candidates:
        raise ValueError(
            f"{clip_key}: no other recording in its fold to take background noise from; "
            "use noise_source white or pink"
        )
    return candidates[int(clip_rng(config, clip_key, f"partner{variant.value}").integers(len(candidates)))]


# ---------------------------------------------------------------------------------------------
# Applying one variant.


def apply_variant(
    y: np.ndarray,
    sr: int,
    variant: Variant,
    config: AugmentConfig,
    clip_key: str,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """``y`` (mono float32 at ``sr``) deformed by ``variant``; float32.

    ``noise``: the partner clip's audio at ``sr`` for a ``bg`` variant with noise_source
    ``clips`` (ignored otherwise). Random choices (SNR, noise offset, generated noise) come from
    ``clip_rng(config, clip_key, variant.name)``: the same clip gets the same variant everywhere.
    """
    import librosa  # lazily: its import is slow and only augmentation needs it here

    y = np.asarray(y, dtype=np.float32)
    if variant.kind == "ts":
        out = librosa.effects.time_stretch(y, rate=float(variant.value))
    elif variant.kind == "ps":
        out = librosa.effects.pitch_shift(y, sr=sr, n_steps=float(variant.value), res_type="soxr_hq")
    elif variant.kind == "drc":
        out = compand(y, sr, DRC_PRESETS[str(variant.value)])
    elif variant.kind == "bg":
        rng = clip_rng(config, clip_key, variant.name)
        snr = float(rng.uniform(*config.noise_snr_db))
        if config.noise_source == "clips":
            if noise is None:
                raise ValueError(f"{clip_key}: variant {variant.name} needs its partner clip's audio")
            background = fit_length(np.asarray(noise, np.float32), len(y), rng)
        else:
            background = generated_noise(config.noise_source, len(y), rng)
        out = mix_at_snr(y, background, snr)
    else:
        raise ValueError(f"unknown variant kind {variant.kind!r}")
    return np.ascontiguousarray(out, dtype=np.float32)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + g * noise`` with ``g`` such that 10 log10(P_signal / P_noise_scaled) = snr_db
    (P = mean square over the clip). A silent signal or noise is returned unchanged."""
    p_signal = float(np.mean(np.square(signal, dtype=np.float64))) if len(signal) else 0.0
    p_noise = float(np.mean(np.square(noise, dtype=np.float64))) if len(noise) else 0.0
    if p_signal <= 0 or p_noise <= 0:
        return signal.astype(np.float32, copy=True)
    gain = math.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))
    return (signal + gain * noise[: len(signal)]).astype(np.float32)


def fit_length(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``noise``: looped if shorter, from a random offset if longer."""
    if len(noise) == 0:
        return np.zeros(n, np.float32)
    if len(noise) < n:
        noise = np.tile(noise, -(-n // len(noise)))
    start = int(rng.integers(len(noise) - n + 1))
    return noise[start : start + n]


def generated_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """White (flat spectrum) or pink (power ~ 1/f) Gaussian noise, unit variance."""
    white = rng.standard_normal(n)
    if kind == "white" or n < 2:
        return white.astype(np.float32)
    spectrum = np.fft.rfft(white)
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return (pink / max(float(pink.std()), 1e-12)).astype(np.float32)


def compand(y: np.ndarray, sr: int, preset: CompandPreset) -> np.ndarray:
    """Dynamic range compression as ``sox compand`` does it, in numpy.

    An envelope follows |y| (one-pole, ``attack`` seconds while rising, ``decay`` while
    falling: sox's coefficients 1 - exp(-1 / (sr * t))); the transfer function maps the
    envelope's level in dB piecewise linearly through ``points`` (slope 1 below the first
    point, the last point's offset above the last), and each sample is scaled by 10^((out -
    in + gain) / 20). Differences from sox: the gain looks ``delay`` seconds ahead instead of
    delaying the audio (the output stays time-aligned with the input, same length), and the
    knees are hard (sox rounds them by 0.01 dB by default).
    """
    x = np.asarray(y, dtype=np.float64)
    env = _envelope(np.abs(x), sr, preset)
    shift = round(preset.delay * sr)
    if shift:
        env = np.concatenate([env[shift:], np.full(min(shift, len(env)), env[-1] if len(env) else 0.0)])[: len(x)]
    level = 20 * np.log10(np.maximum(env, 1e-9))
    ins = np.array([p[0] for p in preset.points])
    outs = np.array([p[1] for p in preset.points])
    out_db = np.interp(level, ins, outs)
    out_db = np.where(level < ins[0], level + (outs[0] - ins[0]), out_db)
    out_db = np.where(level > ins[-1], level + (outs[-1] - ins[-1]), out_db)
    gain = 10 ** ((out_db - level + preset.gain_db) / 20)
    return (x * gain).astype(np.float32)


def _envelope(magnitude: np.ndarray, sr: int, preset: CompandPreset) -> np.ndarray:
    """sox compand's attack/decay envelope of ``magnitude``: a sample-by-sample recursion."""
    attack = 1 - math.exp(-1 / (sr * preset.attack)) if preset.attack > 0 else 1.0
    decay = 1 - math.exp(-1 / (sr * preset.decay)) if preset.decay > 0 else 1.0
    volume = 10 ** (preset.initial_db / 20) if preset.initial_db is not None else 0.0
    out = np.empty(len(magnitude))
    for i, m in enumerate(magnitude.tolist()):
        volume += (m - volume) * (attack if m > volume else decay)
        out[i] = volume
    return out


def augment_clip(
    source: Any,
    feature_config: Any,
    config: AugmentConfig,
    clip_key: str,
    partners: dict[str, Any] | None = None,
) -> tuple[list[str], np.ndarray]:
    """Decode one clip and compute the features of each of its variants.

    ``source``: path or bytes; ``partners``: variant name -> the background clip's path or
    bytes (noise_source ``clips``). Returns the variant names and a (variants, rows, frames)
    array in ``config.storage`` dtype. Raises ``features.logmel.AudioDecodeError`` (the clip or
    a partner cannot be decoded) or ValueError.
    """
    from features.logmel import AudioDecodeError, features_from_signal, load_audio

    sr = feature_config.sample_rate
    y = load_audio(source, sr)
    names, rows = [], []
    for variant in clip_variants(config, clip_key):
        noise = None
        if variant.kind == "bg" and config.noise_source == "clips":
            partner = (partners or {}).get(variant.name)
            try:
                noise = load_audio(partner, sr) if partner is not None else None
            except AudioDecodeError as exc:
                raise AudioDecodeError(f"background clip for {variant.name}: {exc.reason}") from None
        out = apply_variant(y, sr, variant, config, clip_key, noise)
        rows.append(features_from_signal(out, feature_config))
        names.append(variant.name)
    return names, np.stack(rows).astype(config.storage)
