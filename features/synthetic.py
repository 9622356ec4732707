"""python -m features.synthetic --out DIR --preset tiny|demo|bench [--seed N] [--clips-per-class-fold N]

Expected runtime (one core, serial): tiny (200 clips, ~160 MB) about 4 s, demo (300 clips,
~240 MB) about 7 s, bench (500 clips, ~370 MB) about 10 s.

Writes an offline, UrbanSound8K-shaped dataset: ``<out>/metadata/UrbanSound8K.csv`` with the
real schema and ``<out>/audio/fold<N>/<fsID>-<classID>-<occurrenceID>-<sliceID>.wav``.
10 folds x 10 classes; every recording (fsID) lives in one fold and one class and gives
several consecutive slices; durations, saliences and the WAV format mix (sample rates,
subtypes, channels, IMA ADPCM) follow the real set. Each class is a procedural sound with
its own character, randomised per recording and mixed with urban background noise.

Output is a pure function of (preset, seed): every random draw comes from a numpy
Generator seeded by (seed, purpose, class, fold, recording), never from generation order.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import io
import json
import math
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy import fft as sfft
from scipy import signal

from features.argtypes import non_negative_int, positive_int
from features.config import from_dict_strict
from features.us8k import (
    CLASS_NAMES,
    CSV_COLUMNS,
    FOLDS,
    MAX_CLIP_SECONDS,
    METADATA_RELPATH,
    NUM_CLASSES,
    audio_relpath,
)

GENERATOR_VERSION = 1
MARKER_NAME = "synthetic.json"
IN_PROGRESS_NAME = ".synthetic-in-progress"

# Seed-sequence tags keep the random streams for different purposes independent.
_TAG_GROUP, _TAG_FSID, _TAG_PLAN, _TAG_AUDIO = 11, 12, 13, 14


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

    def __post_init__(self) -> None:
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
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyntheticPreset:
        return from_dict_strict(cls, data)


PRESETS: dict[str, SyntheticPreset] = {
    "tiny": SyntheticPreset(name="tiny", clips_per_class_fold=2),
    "demo": SyntheticPreset(name="demo", clips_per_class_fold=3),
    "bench": SyntheticPreset(name="bench", clips_per_class_fold=5),
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
REQUIRED_SUBTYPES = frozenset(f.subtype for f in _FORMAT_CYCLE)


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
            rng = np.random.default_rng([seed, _TAG_GROUP, class_id, fold])
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
    fs_ids = np.random.default_rng([seed, _TAG_FSID]).choice(
        np.arange(100, 210_000), n, replace=False
    )
    cycle_at = {(i * n) // len(_FORMAT_CYCLE): f for i, f in enumerate(_FORMAT_CYCLE)}
    plan = []
    for r, (fold, class_id, index, durations) in enumerate(groups):
        rng = np.random.default_rng([seed, _TAG_PLAN, class_id, fold, index])
        fmt = cycle_at.get(r) or _random_format(rng)
        fs_id = int(fs_ids[r])
        occs = _occurrences(fs_id, class_id, fold, durations, fmt, preset, rng)
        plan.append(RecordingPlan(fs_id, class_id, fold, index, fmt, occs))
    return plan


# --------------------------------------------------------------------------- dsp helpers

_TABLE = 4096


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def _harmonic_table(amps: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """One period of sum_k amps[k] sin(2 pi (k+1) x + phi_k), peak-normalised."""
    k = np.arange(1, len(amps) + 1)[:, None]
    phases = rng.uniform(0, 2 * np.pi, (len(amps), 1)) if rng is not None else 0.0
    x = np.arange(_TABLE)[None, :] / _TABLE
    table = (np.asarray(amps)[:, None] * np.sin(2 * np.pi * k * x + phases)).sum(axis=0)
    return table / max(np.abs(table).max(), 1e-12)


def _max_harmonics(f_max: float, sr: int, limit: float = 8000.0) -> int:
    """Harmonics that stay below Nyquist (with margin) and below ``limit`` Hz."""
    return max(1, int(min(0.45 * sr, limit) // max(f_max, 1.0)))


def _osc(
    freq: np.ndarray | float, n: int, sr: int, table: np.ndarray, phase0: float = 0.0
) -> np.ndarray:
    """Wavetable oscillator following an instantaneous frequency (Hz) track."""
    if np.isscalar(freq):
        cycles = np.arange(n) * (float(freq) / sr) + phase0
    else:
        cycles = np.cumsum(freq) / sr + phase0
    idx = ((cycles - np.floor(cycles)) * _TABLE).astype(np.intp) & (_TABLE - 1)
    return table[idx]


def _shaped_noise(
    rng: np.random.Generator,
    n: int,
    sr: int,
    gain: Callable[[np.ndarray], np.ndarray],
    channels: int = 1,
) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``gain(f)``, unit RMS; shape (n,) or (n, channels)."""
    m = sfft.next_fast_len(max(n, 16), real=True)
    bins = m // 2 + 1
    # White noise drawn directly as its spectrum (saves a forward FFT). Uniform coefficients
    # are 4x cheaper than Gaussian ones and the inverse FFT makes the output Gaussian anyway.
    spec = rng.random((bins, channels, 2), dtype=np.float32).view(np.complex64)[..., 0]
    spec -= 0.5 + 0.5j
    spec *= gain(np.fft.rfftfreq(m, 1.0 / sr)).astype(np.float32)[:, None]
    out = sfft.irfft(spec, m, axis=0)[:n].astype(np.float64)
    out /= max(float(np.sqrt(np.mean(out**2))), 1e-12)
    return out[:, 0] if channels == 1 else out


def _colored_gain(
    exponent: float, lo: float = 20.0, hi: float | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """1/f^(exponent/2) amplitude (exponent 1 pink, 2 brown), band-limited to lo..hi Hz."""

    def gain(f: np.ndarray) -> np.ndarray:
        g = np.maximum(f, lo) ** (-exponent / 2.0)
        g[f < lo] *= (f[f < lo] / lo) ** 2
        if hi is not None:
            g /= 1.0 + (f / hi) ** 4
        return g

    return gain


def _band_gain(center: float, octaves: float) -> Callable[[np.ndarray], np.ndarray]:
    def gain(f: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / center) / (octaves / 2.0)) ** 2)

    return gain


def _smooth_walk(rng: np.random.Generator, n: int, sr: int, knots_per_s: float) -> np.ndarray:
    """A slow random curve in [-1, 1] (random knots, linearly interpolated)."""
    k = max(2, int(n / sr * knots_per_s) + 2)
    knots = rng.uniform(-1.0, 1.0, k)
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), knots)


def _decay(n: int, sr: int, tau: float, attack: float = 0.001) -> np.ndarray:
    t = _t(n, sr)
    return (1.0 - np.exp(-t / max(attack, 1e-5))) * np.exp(-t / tau)


def _fade(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    a, r = min(n, int(attack * sr)), min(n, int(release * sr))
    if a > 0:
        env[:a] *= np.linspace(0.0, 1.0, a)
    if r > 0:
        env[n - r :] *= np.linspace(1.0, 0.0, r)
    return env


def _add(out: np.ndarray, start: int, sig: np.ndarray) -> None:
    """Add ``sig`` into ``out`` at ``start``, cropped to ``out``."""
    if start >= len(out) or start + len(sig) <= 0:
        return
    lo = max(0, -start)
    hi = min(len(sig), len(out) - start)
    out[start + lo : start + hi] += sig[lo:hi]


def _damped_sines(
    n: int, sr: int, freqs: Iterable[float], taus: Iterable[float], amps: Iterable[float]
) -> np.ndarray:
    t = _t(n, sr)
    out = np.zeros(n)
    for f, tau, a in zip(freqs, taus, amps, strict=True):
        if f < 0.45 * sr:
            out += a * np.sin(2 * np.pi * f * t) * np.exp(-t / tau)
    return out


def _lowpass(x: np.ndarray, sr: int, cutoff: float, order: int = 2) -> np.ndarray:
    cutoff = min(cutoff, 0.45 * sr)
    return signal.sosfilt(signal.butter(order, cutoff, "low", fs=sr, output="sos"), x)


def _formant_amps(
    f0: float, k: int, formants: Iterable[tuple[float, float]], tilt: float
) -> np.ndarray:
    """Harmonic amplitudes of a voiced sound: spectral tilt times formant resonances."""
    h = f0 * np.arange(1, k + 1)
    amps = h ** (-tilt) * 0.05
    for center, bw in formants:
        amps = amps + h ** (-tilt) / (1.0 + ((h - center) / bw) ** 2)
    return amps


def _pulse_train(
    freq: np.ndarray, sr: int, amps: np.ndarray | None = None, phase0: float = 0.0
) -> np.ndarray:
    """Unit impulses where the running phase of ``freq`` crosses an integer."""
    cycles = np.cumsum(freq) / sr + phase0
    idx = np.flatnonzero(np.diff(np.floor(cycles)) > 0) + 1
    out = np.zeros(len(freq))
    if amps is None:
        out[idx] = 1.0
    else:
        out[idx] = amps[np.arange(len(idx)) % len(amps)]
    return out


# --------------------------------------------------------------------------- class sounds
# Each class has a parameter drawer (the recording's character: pitch, rate, timbre) and a
# renderer producing a mono float signal of n samples for one occurrence.

Params = dict[str, Any]


def _p_air_conditioner(rng: np.random.Generator) -> Params:
    return {
        "tilt": rng.uniform(0.0, 0.5),
        "bumps": [
            (rng.uniform(150, 1500), rng.uniform(0.5, 1.2), rng.uniform(1.5, 4.0))
            for _ in range(int(rng.integers(1, 4)))
        ],
        "cutoff": rng.uniform(4000, 9000),
        "mains": 50.0 if rng.random() < 0.5 else 60.0,
        "hum": rng.uniform(0.03, 0.12),
        "blade": rng.uniform(80, 300),
        "blade_level": rng.uniform(0.0, 0.08),
    }


def _r_air_conditioner(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    def gain(f: np.ndarray) -> np.ndarray:
        g = _colored_gain(p["tilt"], 40.0, p["cutoff"])(f)
        for center, octaves, boost in p["bumps"]:
            g = g * (1.0 + boost * _band_gain(center, octaves)(f))
        return g

    noise = _shaped_noise(rng, n, sr, gain)
    hum = _osc(
        p["mains"], n, sr, _harmonic_table(np.array([1.0, 0.5, 0.3, 0.2]), rng), rng.random()
    )
    blade = _osc(p["blade"], n, sr, _harmonic_table(np.array([1.0, 0.3])), rng.random())
    return noise + p["hum"] * hum * 1.4 + p["blade_level"] * blade * 1.4


def _p_car_horn(rng: np.random.Generator) -> Params:
    f0 = rng.uniform(300, 500)
    return {
        "f0": f0,
        "ratio": rng.uniform(1.18, 1.30) if rng.random() < 0.6 else None,
        "tilt": rng.uniform(0.3, 1.0),
        "formant": (rng.uniform(1500, 3200), rng.uniform(300, 900)),
        "long_prob": rng.uniform(0.2, 0.6),
        "honk": (rng.uniform(0.15, 0.5), rng.uniform(0.5, 1.5)),
        "gap": (rng.uniform(0.06, 0.2), rng.uniform(0.25, 0.7)),
    }


def _r_car_horn(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    f0s = [p["f0"]] if p["ratio"] is None else [p["f0"], p["f0"] * p["ratio"]]
    tables = []
    for f in f0s:
        k = _max_harmonics(f, sr, 6000.0)
        tables.append((f, _harmonic_table(_formant_amps(f, k, [p["formant"]], p["tilt"]), rng)))
    out = np.zeros(n)
    if rng.random() < p["long_prob"]:
        segments = [(int(rng.uniform(0, 0.15) * sr), n)]
    else:
        segments, t = [], int(rng.uniform(0, 0.2) * sr)
        while t < n:
            length = int(rng.uniform(*p["honk"]) * sr)
            segments.append((t, min(n, t + length)))
            t += length + int(rng.uniform(*p["gap"]) * sr)
    for a, b in segments:
        m = b - a
        if m <= 0:
            continue
        tone = sum(
            _osc(f * (1 + 0.002 * rng.standard_normal()), m, sr, tab, rng.random())
            for f, tab in tables
        )
        out[a:b] += tone * _fade(m, sr, 0.012, 0.03) * rng.uniform(0.8, 1.0)
    return out


def _p_children_playing(rng: np.random.Generator) -> Params:
    return {
        "voices": int(rng.integers(3, 8)),
        "f0": (rng.uniform(230, 320), rng.uniform(350, 520)),
        "syllable": (rng.uniform(0.08, 0.15), rng.uniform(0.25, 0.5)),
        "gap": (rng.uniform(0.02, 0.08), rng.uniform(0.15, 0.6)),
        "shout_prob": rng.uniform(0.05, 0.3),
        "crowd": rng.uniform(0.05, 0.25),
    }


def _r_children_playing(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    for _ in range(p["voices"]):
        base = rng.uniform(*p["f0"])
        vowels = []
        for _ in range(3):
            formants = [
                (rng.uniform(500, 1100), 150.0),
                (rng.uniform(1300, 3000), 250.0),
                (rng.uniform(3000, 4200), 400.0),
            ]
            k = _max_harmonics(base * 1.6, sr, 6000.0)
            vowels.append(
                _harmonic_table(_formant_amps(base, k, formants, rng.uniform(0.4, 1.0)), rng)
            )
        level = rng.uniform(0.3, 1.0)
        t = int(rng.uniform(0, 0.5) * sr)
        while t < n:
            m = int(rng.uniform(*p["syllable"]) * sr)
            shout = rng.random() < p["shout_prob"]
            f_a = base * rng.uniform(0.85, 1.2) * (1.3 if shout else 1.0)
            f_b = f_a * rng.uniform(0.7, 1.45)
            track = np.geomspace(f_a, f_b, max(m, 2))
            track *= 1.0 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 7) * _t(len(track), sr))
            syl = _osc(track, len(track), sr, vowels[int(rng.integers(0, 3))], rng.random())
            syl *= _fade(len(syl), sr, 0.02, 0.05) * level * (1.8 if shout else 1.0)
            _add(out, t, syl)
            t += m + int(rng.uniform(*p["gap"]) * sr)
    crowd = _shaped_noise(rng, n, sr, _band_gain(1200.0, 3.0))
    return out + p["crowd"] * crowd * max(float(np.sqrt(np.mean(out**2))), 1e-3)


def _p_dog_bark(rng: np.random.Generator) -> Params:
    f0 = rng.uniform(300, 1000)
    return {
        "f0": f0,
        "bark": (rng.uniform(0.1, 0.15), rng.uniform(0.18, 0.3)),
        "gap": (rng.uniform(0.12, 0.3), rng.uniform(0.4, 1.2)),
        "formant": (rng.uniform(700, 2200), rng.uniform(200, 600)),
        "tilt": rng.uniform(0.4, 1.2),
        "rough": rng.uniform(0.1, 0.45),
        "noise_band": rng.uniform(800, 3000),
    }


def _r_dog_bark(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    k = _max_harmonics(p["f0"] * 1.3, sr, 7000.0)
    table = _harmonic_table(_formant_amps(p["f0"], k, [p["formant"]], p["tilt"]), rng)
    t = int(rng.uniform(0.0, 0.12) * sr)
    while t < n:
        m = max(2, int(rng.uniform(*p["bark"]) * sr))
        f = p["f0"] * rng.uniform(0.9, 1.1)
        # Pitch jumps up quickly then falls: the bark's typical contour.
        x = np.linspace(0.0, 1.0, m)
        track = f * np.where(x < 0.2, 1.0 + 0.25 * x / 0.2, 1.25 - 0.55 * (x - 0.2) / 0.8)
        voiced = _osc(track, m, sr, table, rng.random())
        noise = _shaped_noise(rng, m, sr, _band_gain(p["noise_band"], 2.0))
        bark = ((1 - p["rough"]) * voiced + p["rough"] * 0.5 * noise) * _decay(
            m, sr, m / sr / 2.5, 0.008
        )
        _add(out, t, bark * rng.uniform(0.6, 1.0))
        t += m + int(rng.uniform(*p["gap"]) * sr)
    return out


def _p_drilling(rng: np.random.Generator) -> Params:
    return {
        "whine": rng.uniform(600, 3500),
        "harmonics": rng.uniform(0.2, 0.7),
        "band": (rng.uniform(1500, 6500), rng.uniform(0.6, 1.6)),
        "mix": rng.uniform(0.3, 0.8),
        "am_rate": rng.uniform(15, 60),
        "am_depth": rng.uniform(0.2, 0.7),
        "on_off": rng.random() < 0.5,
    }


def _r_drilling(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    speed = 1.0 + 0.06 * _smooth_walk(rng, n, sr, 1.5)
    f = p["whine"] * speed
    k = _max_harmonics(p["whine"] * 1.1, sr, 12000.0)
    amps = p["harmonics"] ** np.arange(k)
    whine = _osc(f, n, sr, _harmonic_table(amps, rng), rng.random())
    noise = _shaped_noise(rng, n, sr, _band_gain(*p["band"]))
    am = 1.0 - p["am_depth"] * (
        0.5 + 0.5 * np.sin(2 * np.pi * np.cumsum(p["am_rate"] * speed) / sr)
    )
    out = (p["mix"] * whine + (1 - p["mix"]) * noise) * am
    if p["on_off"]:
        gate, t, on = np.zeros(n), 0, rng.random() < 0.8
        while t < n:
            m = int((rng.uniform(0.6, 3.0) if on else rng.uniform(0.1, 0.6)) * sr)
            if on:
                gate[t : t + m] = _fade(len(gate[t : t + m]), sr, 0.08, 0.1)
            t, on = t + m, not on
        out *= gate
    return out


def _p_engine_idling(rng: np.random.Generator) -> Params:
    cylinders = int(rng.choice([4, 6, 8]))
    return {
        "f0": rng.uniform(20, 60),
        "pattern": rng.uniform(0.5, 1.0, cylinders),
        "resonances": [
            (rng.uniform(50, 450), rng.uniform(0.005, 0.03)) for _ in range(int(rng.integers(2, 5)))
        ],
        "cutoff": rng.uniform(400, 1500),
        "rumble": rng.uniform(0.05, 0.3),
        "wander": rng.uniform(0.005, 0.03),
    }


def _r_engine_idling(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    freq = p["f0"] * (1.0 + p["wander"] * _smooth_walk(rng, n, sr, 1.0))
    pulses = _pulse_train(
        freq, sr, p["pattern"] * rng.uniform(0.9, 1.1, len(p["pattern"])), rng.random()
    )
    klen = int(0.15 * sr)
    freqs, taus = zip(*p["resonances"], strict=True)
    kernel = _damped_sines(klen, sr, freqs, taus, [1.0] * len(freqs))
    hum = signal.oaconvolve(pulses, kernel)[:n]
    hum = _lowpass(hum, sr, p["cutoff"])
    hum /= max(float(np.sqrt(np.mean(hum**2))), 1e-12)
    rumble = _shaped_noise(rng, n, sr, _colored_gain(1.5, 20.0, p["cutoff"]))
    return hum + p["rumble"] * rumble


def _p_gun_shot(rng: np.random.Generator) -> Params:
    return {
        "tau": rng.uniform(0.03, 0.25),
        "cutoff": rng.uniform(1200, 7000),
        "thump": (rng.uniform(45, 120), rng.uniform(0.3, 1.0)),
        "echo_prob": rng.uniform(0.3, 0.9),
        "burst_prob": rng.uniform(0.1, 0.6),
        "interval": (rng.uniform(0.08, 0.2), rng.uniform(0.3, 1.2)),
    }


def _gunshot(p: Params, sr: int, rng: np.random.Generator) -> np.ndarray:
    tau = p["tau"] * rng.uniform(0.8, 1.25)
    m = int(min(7 * tau + 0.05, 1.8) * sr)
    noise = _lowpass(rng.standard_normal(m), sr, p["cutoff"] * rng.uniform(0.8, 1.2))
    shot = noise * _decay(m, sr, tau, 0.0005)
    shot /= max(np.abs(shot).max(), 1e-12)
    thump_f, thump_a = p["thump"]
    shot += thump_a * _damped_sines(m, sr, [thump_f], [tau * 0.6], [1.0])
    if rng.random() < p["echo_prob"]:
        echoed = np.zeros(m + int(1.0 * sr))
        echoed[:m] = shot
        for _ in range(int(rng.integers(1, 3))):
            _add(
                echoed,
                int(rng.uniform(0.08, 0.5) * sr),
                rng.uniform(0.15, 0.5) * _lowpass(shot, sr, 1500.0),
            )
        shot = echoed
    # The echo buffer ends abruptly; fade its tail so no edge shows up in a spectrogram.
    return shot * _fade(len(shot), sr, 0.0, 0.3 * len(shot) / sr)


def _r_gun_shot(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    t = int(rng.uniform(0.005, min(0.12, 0.3 * n / sr + 0.005)) * sr)
    _add(out, t, _gunshot(p, sr, rng))
    while rng.random() < p["burst_prob"]:
        t += int(rng.uniform(*p["interval"]) * sr)
        if t >= n:
            break
        _add(out, t, _gunshot(p, sr, rng) * rng.uniform(0.6, 1.0))
    return out


def _p_jackhammer(rng: np.random.Generator) -> Params:
    return {
        "rate": rng.uniform(10, 25),
        "hit_tau": rng.uniform(0.003, 0.012),
        "ring": [
            (rng.uniform(700, 4500), rng.uniform(0.008, 0.04))
            for _ in range(int(rng.integers(1, 4)))
        ],
        "ring_level": rng.uniform(0.2, 0.8),
        "thud": rng.uniform(70, 200),
        "pauses": rng.random() < 0.4,
    }


def _r_jackhammer(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    rate = p["rate"] * (1.0 + 0.04 * _smooth_walk(rng, n, sr, 2.0))
    times = np.flatnonzero(np.diff(np.floor(np.cumsum(rate) / sr + rng.random())) > 0)
    times = times + (rng.normal(0, 0.003, len(times)) * sr).astype(int)
    times = times[(times >= 0) & (times < n)]
    pulses = np.zeros(n)
    np.add.at(pulses, times, rng.uniform(0.7, 1.0, len(times)))
    if p["pauses"]:
        t, on = 0, True
        while t < n:
            m = int((rng.uniform(0.5, 2.5) if on else rng.uniform(0.15, 0.8)) * sr)
            if not on:
                pulses[t : t + m] = 0.0
            t, on = t + m, not on
    klen = int(0.08 * sr)
    freqs, taus = zip(*p["ring"], strict=True)
    kernel = rng.standard_normal(klen) * _decay(klen, sr, p["hit_tau"], 0.0003)
    kernel /= max(np.abs(kernel).max(), 1e-12)
    kernel += p["ring_level"] * _damped_sines(klen, sr, freqs, taus, [1.0] * len(freqs))
    kernel += 0.5 * _damped_sines(klen, sr, [p["thud"]], [0.015], [1.0])
    return signal.oaconvolve(pulses, kernel)[:n]


def _p_siren(rng: np.random.Generator) -> Params:
    mode = str(rng.choice(["wail", "yelp", "yelp_down"], p=[0.5, 0.35, 0.15]))
    odd_only = rng.random() < 0.4
    k = 6
    amps = np.arange(1, k + 1, dtype=float) ** (-rng.uniform(1.0, 2.5))
    if odd_only:
        amps[1::2] = 0.0
    return {
        "center": rng.uniform(550, 1400),
        "depth": rng.uniform(0.15, 0.45),
        "rate": rng.uniform(0.1, 0.5) if mode == "wail" else rng.uniform(1.5, 5.0),
        "mode": mode,
        "amps": amps,
        "doppler": rng.uniform(0.0, 0.04),
    }


def _r_siren(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    x = p["rate"] * _t(n, sr) * rng.uniform(0.9, 1.1) + rng.random()
    frac = x - np.floor(x)
    if p["mode"] == "wail":
        shape = -np.cos(2 * np.pi * x)
    elif p["mode"] == "yelp":
        shape = 2 * frac - 1
    else:
        shape = 1 - 2 * frac
    drift = 1.0 + p["doppler"] * _smooth_walk(rng, n, sr, 0.5)
    freq = p["center"] * (1.0 + p["depth"] * shape) * drift
    k = min(len(p["amps"]), _max_harmonics(p["center"] * (1 + p["depth"]) * 1.05, sr, 12000.0))
    tone = _osc(freq, n, sr, _harmonic_table(p["amps"][:k], rng), rng.random())
    swell = 1.0 + 0.3 * _smooth_walk(rng, n, sr, 0.5)
    return tone * swell


_SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 7, 9))


def _p_street_music(rng: np.random.Generator) -> Params:
    return {
        "scale": _SCALES[int(rng.integers(0, len(_SCALES)))],
        "root": rng.uniform(180, 440),
        "beat": 60.0 / rng.uniform(80, 150),
        "tilt": rng.uniform(0.8, 2.0),
        "pluck": rng.random() < 0.5,
        "decay": rng.uniform(0.1, 0.5),
        "bass": rng.random() < 0.7,
        "drums": rng.random() < 0.5,
        "drum_level": rng.uniform(0.2, 0.6),
    }


def _note_hz(p: Params, degree: int) -> float:
    scale = p["scale"]
    octave, step = divmod(degree, len(scale))
    return p["root"] * 2.0 ** (octave + scale[step] / 12.0)


def _r_street_music(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    k = _max_harmonics(p["root"] * 4, sr, 8000.0)
    table = _harmonic_table(np.arange(1, k + 1, dtype=float) ** (-p["tilt"]), rng)
    beat = p["beat"]
    t, degree = -rng.uniform(0, beat), int(rng.integers(0, len(p["scale"])))
    while t < n / sr:
        dur = beat * float(rng.choice([0.5, 0.5, 1.0, 1.0, 2.0]))
        degree = int(np.clip(degree + rng.integers(-2, 3), -2, 2 * len(p["scale"])))
        m = int(dur * sr)
        env = _decay(m, sr, p["decay"], 0.005) if p["pluck"] else _fade(m, sr, 0.02, 0.06)
        _add(out, int(t * sr), _osc(_note_hz(p, degree), m, sr, table, rng.random()) * env)
        t += dur
    if p["bass"]:
        bass_table = _harmonic_table(np.array([1.0, 0.4, 0.15]))
        t = 0.0
        while t < n / sr:
            m = int(beat * sr)
            f = _note_hz(p, int(rng.choice([0, 0, 4]))) / 4
            _add(
                out, int(t * sr), 0.6 * _osc(f, m, sr, bass_table) * _decay(m, sr, beat / 2, 0.005)
            )
            t += beat
    if p["drums"]:
        level = p["drum_level"] * max(float(np.abs(out).max()), 0.1)
        m = int(0.25 * sr)
        kick = np.sin(2 * np.pi * np.cumsum(np.geomspace(120, 45, m)) / sr) * _decay(
            m, sr, 0.06, 0.002
        )
        hat_m = int(0.05 * sr)
        t = 0.0
        while t < n / sr:
            _add(out, int(t * sr), level * kick)
            hat = _lowpass(rng.standard_normal(hat_m), sr, 12000.0) * _decay(
                hat_m, sr, 0.01, 0.0005
            )
            _add(out, int((t + beat / 2) * sr), 0.3 * level * hat)
            t += beat
    return out


_SOUNDS: dict[str, tuple[Callable[[np.random.Generator], Params], Callable[..., np.ndarray]]] = {
    "air_conditioner": (_p_air_conditioner, _r_air_conditioner),
    "car_horn": (_p_car_horn, _r_car_horn),
    "children_playing": (_p_children_playing, _r_children_playing),
    "dog_bark": (_p_dog_bark, _r_dog_bark),
    "drilling": (_p_drilling, _r_drilling),
    "engine_idling": (_p_engine_idling, _r_engine_idling),
    "gun_shot": (_p_gun_shot, _r_gun_shot),
    "jackhammer": (_p_jackhammer, _r_jackhammer),
    "siren": (_p_siren, _r_siren),
    "street_music": (_p_street_music, _r_street_music),
}
assert set(_SOUNDS) == set(CLASS_NAMES)


def render_class(class_name: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A fresh sound of ``class_name``, mono, n samples at sr (no background)."""
    draw, render = _SOUNDS[class_name]
    return render(draw(rng), n, sr, rng)


# --------------------------------------------------------------------------- mixing


def _rms(x: np.ndarray) -> float:
    return max(float(np.sqrt(np.mean(np.square(x)))), 1e-12)


def _background(
    class_id: int, n: int, sr: int, channels: int, preset: SyntheticPreset, rng: np.random.Generator
) -> np.ndarray:
    """Urban background: pink-to-brown noise, sometimes with a faint event of another class."""
    bg = _shaped_noise(
        rng, n, sr, _colored_gain(rng.uniform(0.8, 1.6), 20.0, rng.uniform(4000, 12000)), channels
    )
    if channels == 2:
        rho = rng.uniform(0.3, 0.9)
        bg[:, 1] = rho * bg[:, 0] + math.sqrt(1 - rho * rho) * bg[:, 1]
    if rng.random() < preset.interferer_prob:
        other = CLASS_NAMES[(class_id + int(rng.integers(1, NUM_CLASSES))) % NUM_CLASSES]
        m = min(n, int(rng.uniform(0.5, 2.0) * sr))
        event = render_class(other, m, sr, rng)
        event *= rng.uniform(0.3, 1.0) / _rms(event)
        start = int(rng.integers(0, n - m + 1))
        for c in range(channels):
            _add(bg[:, c] if channels == 2 else bg, start, event)
    return bg


def _to_channels(event: np.ndarray, channels: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    if channels == 1:
        return event
    # A small inter-channel delay and level difference, as from a source off-centre.
    delay = int(rng.uniform(0, 0.0006) * sr)
    right = np.concatenate([np.zeros(delay), event[: len(event) - delay]]) * rng.uniform(0.7, 1.0)
    pair = np.stack([event, right], axis=1)
    return pair[:, ::-1] if rng.random() < 0.5 else pair


def render_recording(
    rec: RecordingPlan, preset: SyntheticPreset, seed: int
) -> list[tuple[SlicePlan, np.ndarray]]:
    """Audio of every slice of one recording, each (frames,) or (frames, 2) float64 in (-1, 1)."""
    rng = np.random.default_rng([seed, _TAG_AUDIO, rec.class_id, rec.fold, rec.index])
    name = CLASS_NAMES[rec.class_id]
    draw, render = _SOUNDS[name]
    params = draw(rng)
    sr, ch = rec.fmt.samplerate, rec.fmt.channels
    level_db = rng.uniform(*preset.peak_dbfs)
    out = []
    for occ in rec.occurrences:
        n = sum(s.frames for s in occ)
        event = render(params, n, sr, rng)
        event = _to_channels(event / _rms(event), ch, sr, rng)
        lo, hi = preset.snr_db_foreground if occ[0].salience == 1 else preset.snr_db_background
        snr_db = rng.uniform(lo, hi)
        bg = _background(rec.class_id, n, sr, ch, preset, rng)
        mix = event + bg * (10.0 ** (-snr_db / 20.0) / _rms(bg))
        pos = 0
        for s in occ:
            clip = mix[pos : pos + s.frames]
            pos += s.frames
            peak_db = min(level_db + rng.uniform(-1.5, 1.5), preset.peak_dbfs[1])
            clip = clip * (10.0 ** (peak_db / 20.0) / max(float(np.abs(clip).max()), 1e-12))
            out.append((s, clip))
    return out


# --------------------------------------------------------------------------- writing


def wav_bytes(data: np.ndarray, fmt: WavFormat) -> bytes:
    """Encode a WAV file in memory, byte-deterministic (libsndfile stamps FLOAT files' PEAK chunk)."""
    buf = io.BytesIO()
    sf.write(buf, data, fmt.samplerate, subtype=fmt.subtype, format="WAV")
    raw = bytearray(buf.getvalue())
    pos = 12
    while pos + 8 <= len(raw):
        chunk_id, size = bytes(raw[pos : pos + 4]), int.from_bytes(raw[pos + 4 : pos + 8], "little")
        if chunk_id == b"PEAK" and size >= 8:
            raw[pos + 12 : pos + 16] = b"\0\0\0\0"  # the timestamp field, after the version field
            break
        pos += 8 + size + (size & 1)
    return bytes(raw)


def _summarise(plan: list[RecordingPlan]) -> dict[str, Any]:
    slices = [(rec, s) for rec in plan for s in rec.slices]
    return {
        "clips": len(slices),
        "recordings": len(plan),
        "samplerates": dict(sorted(Counter(str(r.fmt.samplerate) for r, _ in slices).items())),
        "subtypes": dict(sorted(Counter(r.fmt.subtype for r, _ in slices).items())),
        "channels": dict(sorted(Counter(str(r.fmt.channels) for r, _ in slices).items())),
        "full_length_share": round(
            sum(s.frames == round(MAX_CLIP_SECONDS * r.fmt.samplerate) for r, s in slices)
            / len(slices),
            3,
        ),
    }


def _prepare_out_dir(out: Path) -> None:
    """Refuse to write over a dataset the generator did not write; clear an old synthetic one."""
    csv_path = out / METADATA_RELPATH
    ours = (out / MARKER_NAME).exists() or (out / IN_PROGRESS_NAME).exists()
    if csv_path.exists() and not ours:
        raise FileExistsError(
            f"{csv_path} exists but {out} has no {MARKER_NAME}: it looks like a real UrbanSound8K "
            "copy; refusing to overwrite it with synthetic data (choose another --out)"
        )
    (out / MARKER_NAME).unlink(missing_ok=True)
    if ours:
        for fold in FOLDS:
            shutil.rmtree(out / f"audio/fold{fold}", ignore_errors=True)
        csv_path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / IN_PROGRESS_NAME).write_text(
        "generation started; incomplete until synthetic.json exists\n"
    )


def _marker(preset: SyntheticPreset, seed: int) -> dict[str, Any]:
    return {
        "generator": "features.synthetic",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "preset": preset.to_dict(),
    }


def generate(
    out_dir: str | Path,
    preset: str | SyntheticPreset = "demo",
    seed: int = 0,
    clips_per_class_fold: int | None = None,
    progress: bool = False,
) -> Path:
    """Write the dataset under ``out_dir`` (marker file last) and return ``out_dir``."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    chosen = resolve_preset(preset, clips_per_class_fold)
    out = Path(out_dir)
    plan = build_plan(chosen, seed)
    _prepare_out_dir(out)
    for fold in FOLDS:
        (out / f"audio/fold{fold}").mkdir(parents=True, exist_ok=True)
    recordings: Iterable[RecordingPlan] = plan
    if progress:
        from tqdm import tqdm

        recordings = tqdm(plan, desc=f"synthetic {chosen.name}", unit="rec", file=sys.stderr)
    for rec in recordings:
        for s, audio in render_recording(rec, chosen, seed):
            (out / audio_relpath(s.fold, s.file_name)).write_bytes(wav_bytes(audio, rec.fmt))
    rows = sorted((s.csv_row() for rec in plan for s in rec.slices), key=lambda r: r[0])
    (out / METADATA_RELPATH).parent.mkdir(parents=True, exist_ok=True)
    with open(out / METADATA_RELPATH, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    marker = _marker(chosen, seed) | _summarise(plan)
    (out / MARKER_NAME).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    (out / IN_PROGRESS_NAME).unlink(missing_ok=True)
    return out


def read_marker(out_dir: str | Path) -> dict[str, Any] | None:
    """The marker of a complete synthetic dataset, or None."""
    path = Path(out_dir) / MARKER_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def ensure_synthetic(
    out_dir: str | Path,
    preset: str | SyntheticPreset = "demo",
    seed: int = 0,
    clips_per_class_fold: int | None = None,
    progress: bool = False,
) -> Path:
    """Return ``out_dir`` at once if it holds this exact dataset already; generate it otherwise."""
    chosen = resolve_preset(preset, clips_per_class_fold)
    marker = read_marker(out_dir)
    expected = _marker(chosen, seed)
    if (
        marker is not None
        and all(marker.get(k) == v for k, v in expected.items())
        and (Path(out_dir) / METADATA_RELPATH).exists()
    ):
        return Path(out_dir)
    return generate(out_dir, chosen, seed, progress=progress)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m features.synthetic",
        description="Write an offline UrbanSound8K-shaped synthetic dataset.",
    )
    parser.add_argument("--out", required=True, type=Path, help="dataset root to write")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument(
        "--clips-per-class-fold",
        type=positive_int,
        default=None,
        help="override the preset's clips per class and fold",
    )
    args = parser.parse_args(argv)
    preset = resolve_preset(args.preset, args.clips_per_class_fold)
    began = time.perf_counter()
    try:
        generate(args.out, preset, args.seed, progress=preset.clips_per_class_fold >= 3)
    except (FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    marker = read_marker(args.out) or {}
    seconds = time.perf_counter() - began
    print(
        f"wrote {marker.get('clips')} clips from {marker.get('recordings')} recordings to {args.out} "
        f"in {seconds:.1f} s (preset {preset.name}, seed {args.seed})\n"
        f"  sample rates: {marker.get('samplerates')}\n"
        f"  subtypes:     {marker.get('subtypes')}\n"
        f"  channels:     {marker.get('channels')}\n"
        f"  4 s clips:    {marker.get('full_length_share', 0):.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
