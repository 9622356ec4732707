"""The synthetic dataset's plan: presets, WAV formats, recordings and their slices (no audio).

Every random draw comes from a numpy Generator seeded by (seed, purpose, class, fold,
recording), never from generation order, so the plan is a pure function of (preset, seed).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

from features.configbase import from_dict_strict
from features.us8k import CLASS_NAMES, FOLDS, MAX_CLIP_SECONDS

# Seed-sequence tags keep the random streams for different purposes independent.
TAG_GROUP, TAG_FSID, TAG_PLAN, TAG_AUDIO = 11, 12, 13, 14


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class SyntheticPreset:
    """Size and difficulty of a synthetic dataset."""

    name: str = "demo"
    clips_per_class_fold: int = 3
    min_slices_per_recording: int = 2
    max_slices_per_recording: int = 4
    # Event-to-background ratio (dB) per occurrence, by salience (1 foreground, 2 background).
    snr_db_foreground: tuple[float, float] = (6.0, 22.0)
    snr_db_background: tuple[float, float] = (0.0, 10.0)
    salience_foreground_prob: float = 0.65
    interferer_prob: float = 0.3
    peak_dbfs: tuple[float, float] = (-20.0, -1.0)
    # (fold, factor) pairs: every sound event of that fold plays ``factor`` times faster, as if
    # its source were higher and quicker (a tape-speed change: pitch x factor, i.e.
    # 12 log2(factor) semitones, and tempo x factor); its background does not change.
    fold_speed: tuple[tuple[int, float], ...] = ()
    # How far a recording's character (pitch, rate, timbre: each ``uniform`` draw of its class's
    # parameter drawer) strays from the middle of its range: 1 = the whole range, 0.25 = the
    # middle quarter. Events within a recording still vary as they do.
    draw_spread: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fold_speed", _fold_speed(self.fold_speed))
        if not 0 < self.draw_spread <= 1:
            raise ValueError(f"SyntheticPreset.draw_spread must be in (0, 1], got {self.draw_spread!r}")
        for name in ("snr_db_foreground", "snr_db_background", "peak_dbfs"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2 or value[0] > value[1]:
                raise ValueError(
                    f"SyntheticPreset.{name} must be a (low, high) pair, got {value!r}"
                )
            object.__setattr__(self, name, value)
        for name in (
            "clips_per_class_fold",
            "min_slices_per_recording",
            "max_slices_per_recording",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"SyntheticPreset.{name} must be a positive integer, got {value!r}"
                )
        if self.max_slices_per_recording < self.min_slices_per_recording:
            raise ValueError(
                "SyntheticPreset.max_slices_per_recording must be >= min_slices_per_recording"
            )
        if self.peak_dbfs[1] > -0.1:
            raise ValueError(
                "SyntheticPreset.peak_dbfs must stay below -0.1 dBFS so clips never clip"
            )
        for name in ("salience_foreground_prob", "interferer_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"SyntheticPreset.{name} must be in [0, 1], got {getattr(self, name)!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        data = {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }
        data["fold_speed"] = [list(pair) for pair in self.fold_speed]
        # Presets without them keep their dataset marker (and cache) from before these fields.
        if not self.fold_speed:
            del data["fold_speed"]
        if self.draw_spread == 1.0:
            del data["draw_spread"]
        return data

    def speed(self, fold: int) -> float:
        """The speed factor of ``fold``'s sound events (1.0: as drawn)."""
        return dict(self.fold_speed).get(fold, 1.0)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyntheticPreset:
        return from_dict_strict(cls, data)


def _fold_speed(pairs: Any) -> tuple[tuple[int, float], ...]:
    """(fold, factor) pairs checked: folds 1..10, each once; factors in [0.5, 2], not 1."""
    try:
        out = tuple((int(fold), float(factor)) for fold, factor in pairs)
    except (TypeError, ValueError):
        raise ValueError(f"SyntheticPreset.fold_speed must be (fold, factor) pairs, got {pairs!r}") from None
    folds = [fold for fold, _ in out]
    if any(fold not in FOLDS for fold in folds) or len(set(folds)) != len(folds):
        raise ValueError(f"SyntheticPreset.fold_speed: folds must be distinct, in 1..10, got {folds}")
    if any(not 0.5 <= factor <= 2.0 or factor == 1.0 for _, factor in out):
        raise ValueError(f"SyntheticPreset.fold_speed: factors must be in [0.5, 2] and not 1, got {out}")
    return tuple(sorted(out))


# ``shifted``: the evidence set for offline augmentation (benchmarks/augmentation_effect.py).
# Every recording's character is drawn from the middle quarter of its class's ranges (a car
# horn's pitch within 375-425 Hz instead of 300-500 Hz), so a class sounds alike across the
# folds; then fold 1's events play 4 semitones higher and 26% faster, fold 2's 4 semitones
# lower and 21% slower, outside what the other folds hold. (With the full ranges a 4-semitone
# shift stays inside the spread of the per-recording draws and nothing is out of range: the
# first design, measured, README "Augmentation".) ``tiny-shifted``: the same, 2 clips per
# class and fold, for smoke tests.
SHIFT_SEMITONES = 4.0
_SHIFTS = ((1, 2 ** (SHIFT_SEMITONES / 12)), (2, 2 ** (-SHIFT_SEMITONES / 12)))
PRESETS: dict[str, SyntheticPreset] = {
    "tiny": SyntheticPreset(name="tiny", clips_per_class_fold=2),
    "demo": SyntheticPreset(name="demo", clips_per_class_fold=3),
    "bench": SyntheticPreset(name="bench", clips_per_class_fold=5),
    "shifted": SyntheticPreset(name="shifted", clips_per_class_fold=5, fold_speed=_SHIFTS, draw_spread=0.25),
    "tiny-shifted": SyntheticPreset(name="tiny-shifted", clips_per_class_fold=2, fold_speed=_SHIFTS, draw_spread=0.25),
}


def resolve_preset(
    preset: str | SyntheticPreset, clips_per_class_fold: int | None = None
) -> SyntheticPreset:
    """A preset by name (or as given), with ``clips_per_class_fold`` overridden when set."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(
                f"unknown synthetic preset {preset!r}; choose one of {', '.join(PRESETS)}"
            )
        preset = PRESETS[preset]
    if clips_per_class_fold is not None:
        preset = dataclasses.replace(preset, clips_per_class_fold=clips_per_class_fold)
    return preset


# --------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class WavFormat:
    samplerate: int
    subtype: str
    channels: int


# Per-recording format weights, from the real set's clip counts.
_RATE_WEIGHTS = {
    44_100: 0.615,
    48_000: 0.287,
    96_000: 0.070,
    24_000: 0.009,
    16_000: 0.005,
    22_050: 0.005,
    11_025: 0.0045,
    192_000: 0.002,
    8_000: 0.0014,
    32_000: 0.0006,
}
_SUBTYPE_WEIGHTS = {
    "PCM_16": 0.66,
    "PCM_24": 0.305,
    "PCM_32": 0.01,
    "FLOAT": 0.01,
    "PCM_U8": 0.01,
    "IMA_ADPCM": 0.005,
}
_STEREO_PROB = 0.915
# Given to recordings spread over the dataset first, so even the smallest preset holds every
# subtype, mono and stereo, and many sample rates.
_FORMAT_CYCLE: tuple[WavFormat, ...] = (
    WavFormat(44_100, "PCM_16", 2),
    WavFormat(48_000, "PCM_24", 1),
    WavFormat(96_000, "PCM_32", 2),
    WavFormat(22_050, "PCM_U8", 1),
    WavFormat(192_000, "FLOAT", 2),
    WavFormat(11_025, "IMA_ADPCM", 1),
    WavFormat(8_000, "PCM_16", 1),
    WavFormat(16_000, "IMA_ADPCM", 2),
)


@functools.cache
def _frames_per_block(fmt: WavFormat) -> int:
    """Frame granularity of a format: IMA ADPCM pads the last block, so its clips are whole blocks."""
    if fmt.subtype != "IMA_ADPCM":
        return 1
    buf = io.BytesIO()
    sf.write(buf, np.zeros((1, fmt.channels)), fmt.samplerate, subtype=fmt.subtype, format="WAV")
    buf.seek(0)
    return sf.info(buf).frames


def _frames_for(seconds: float, fmt: WavFormat) -> int:
    """Samples of a clip of ``seconds``, rounded down to whole blocks (never below one block)."""
    block = _frames_per_block(fmt)
    frames = max(1, round(seconds * fmt.samplerate))
    return max(block, frames // block * block)


def _random_format(rng: np.random.Generator) -> WavFormat:
    rates = list(_RATE_WEIGHTS)
    rate_p = np.array(list(_RATE_WEIGHTS.values()))
    subtypes = list(_SUBTYPE_WEIGHTS)
    sub_p = np.array(list(_SUBTYPE_WEIGHTS.values()))
    rate = int(rates[rng.choice(len(rates), p=rate_p / rate_p.sum())])
    subtype = subtypes[rng.choice(len(subtypes), p=sub_p / sub_p.sum())]
    return WavFormat(rate, subtype, 2 if rng.random() < _STEREO_PROB else 1)


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ClassTiming:
    """Share of clips shorter than 4 s and the range of those short durations (s)."""

    short_prob: float
    short_range: tuple[float, float]


# Tuned so that about 84% of clips are 4 s, gun shots have a median near 1.5 s and car horns
# near 3.5 s, as in the real set.
_TIMING: dict[str, ClassTiming] = {
    "air_conditioner": ClassTiming(0.01, (0.5, 4.0)),
    "car_horn": ClassTiming(0.58, (0.5, 4.0)),
    "children_playing": ClassTiming(0.02, (0.5, 4.0)),
    "dog_bark": ClassTiming(0.12, (0.3, 4.0)),
    "drilling": ClassTiming(0.03, (0.5, 4.0)),
    "engine_idling": ClassTiming(0.02, (0.5, 4.0)),
    "gun_shot": ClassTiming(0.80, (0.2, 2.2)),
    "jackhammer": ClassTiming(0.03, (0.5, 4.0)),
    "siren": ClassTiming(0.02, (0.5, 4.0)),
    "street_music": ClassTiming(0.01, (0.5, 4.0)),
}
_VERY_SHORT_PROB = 0.03
_VERY_SHORT_RANGE = (0.05, 0.1)


@dataclass(frozen=True)
class SlicePlan:
    file_name: str
    fs_id: int
    occurrence: int
    slice_id: int
    start: float
    end: float
    frames: int
    salience: int
    fold: int
    class_id: int

    def csv_row(self) -> list[str]:
        return [
            self.file_name,
            str(self.fs_id),
            _fmt_seconds(self.start),
            _fmt_seconds(self.end),
            str(self.salience),
            str(self.fold),
            str(self.class_id),
            CLASS_NAMES[self.class_id],
        ]


@dataclass(frozen=True)
class RecordingPlan:
    fs_id: int
    class_id: int
    fold: int
    index: int  # recording number within its (class, fold) group
    fmt: WavFormat
    occurrences: tuple[tuple[SlicePlan, ...], ...]

    @property
    def slices(self) -> tuple[SlicePlan, ...]:
        return tuple(s for occ in self.occurrences for s in occ)


def _fmt_seconds(x: float) -> str:
    text = f"{x:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _partition(k: int, lo: int, hi: int, rng: np.random.Generator) -> list[int]:
    """Split k slices into recordings of lo..hi slices (one smaller recording if k < lo)."""
    sizes: list[int] = []
    while k > 0:
        if k <= hi and (k < 2 * lo or rng.random() < 0.5):
            sizes.append(k)
            break
        size = int(rng.integers(lo, max(lo, min(hi, k - lo)) + 1))
        sizes.append(size)
        k -= size
    return sizes


def _group_durations(
    class_name: str, k: int, rng: np.random.Generator, force_very_short: bool
) -> list[float]:
    """Durations (s) of one (class, fold) group's k slices; the short count is stratified."""
    timing = _TIMING[class_name]
    n_short = min(k, math.floor(timing.short_prob * k + rng.random()))
    if force_very_short:
        n_short = max(n_short, 1)
    durations = [MAX_CLIP_SECONDS] * k
    short_slots = rng.permutation(k)[:n_short]
    for rank, slot in enumerate(sorted(short_slots)):
        if (force_very_short and rank == 0) or rng.random() < _VERY_SHORT_PROB:
            durations[slot] = float(rng.uniform(*_VERY_SHORT_RANGE))
        else:
            durations[slot] = float(rng.uniform(*timing.short_range))
    return durations


def _occurrences(
    fs_id: int,
    class_id: int,
    fold: int,
    durations: list[float],
    fmt: WavFormat,
    preset: SyntheticPreset,
    rng: np.random.Generator,
) -> tuple[tuple[SlicePlan, ...], ...]:
    """Group a recording's slices into occurrences (a run of 4 s slices ending at a short one)."""
    runs: list[list[float]] = [[]]
    for d in durations:
        runs[-1].append(d)
        if d < MAX_CLIP_SECONDS:
            runs.append([])
    runs = [r for r in runs if r]
    occurrences = []
    t = float(rng.uniform(0.0, 30.0))
    for occ_id, run in enumerate(runs):
        salience = 1 if rng.random() < preset.salience_foreground_prob else 2
        # Real slice IDs need not start at 0: earlier slices of the occurrence were not kept.
        first = int(rng.integers(0, 3)) if len(run) > 1 or run[0] == MAX_CLIP_SECONDS else 0
        slices = []
        start = round(t + MAX_CLIP_SECONDS * first, 6)
        for j, d in enumerate(run):
            frames = _frames_for(d, fmt)
            slice_id = first + j
            slices.append(
                SlicePlan(
                    file_name=f"{fs_id}-{class_id}-{occ_id}-{slice_id}.wav",
                    fs_id=fs_id,
                    occurrence=occ_id,
                    slice_id=slice_id,
                    start=start,
                    end=round(start + frames / fmt.samplerate, 6),
                    frames=frames,
                    salience=salience,
                    fold=fold,
                    class_id=class_id,
                )
            )
            start = slices[-1].end
        occurrences.append(tuple(slices))
        t = slices[-1].end + float(rng.uniform(0.5, 15.0))
    return tuple(occurrences)


def build_plan(preset: SyntheticPreset, seed: int) -> list[RecordingPlan]:
    """Every recording, its format and slices, in canonical (fold, class, index) order."""
    groups: list[tuple[int, int, int, list[float]]] = []
    very_short_fold = FOLDS[seed % len(FOLDS)]
    for fold in FOLDS:
        for class_id, name in enumerate(CLASS_NAMES):
            rng = np.random.default_rng([seed, TAG_GROUP, class_id, fold])
            force = name == "gun_shot" and fold == very_short_fold
            durations = _group_durations(name, preset.clips_per_class_fold, rng, force)
            sizes = _partition(
                len(durations),
                preset.min_slices_per_recording,
                preset.max_slices_per_recording,
                rng,
            )
            pos = 0
            for index, size in enumerate(sizes):
                groups.append((fold, class_id, index, durations[pos : pos + size]))
                pos += size
    n = len(groups)
    fs_ids = np.random.default_rng([seed, TAG_FSID]).choice(
        np.arange(100, 210_000), n, replace=False
    )
    cycle_at = {(i * n) // len(_FORMAT_CYCLE): f for i, f in enumerate(_FORMAT_CYCLE)}
    plan = []
    for r, (fold, class_id, index, durations) in enumerate(groups):
        rng = np.random.default_rng([seed, TAG_PLAN, class_id, fold, index])
        fmt = cycle_at.get(r) or _random_format(rng)
        fs_id = int(fs_ids[r])
        occs = _occurrences(fs_id, class_id, fold, durations, fmt, preset, rng)
        plan.append(RecordingPlan(fs_id, class_id, fold, index, fmt, occs))
    return plan
