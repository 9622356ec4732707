"""Mixing a recording's slices with urban background, encoding WAVs, and writing the dataset.

``generate`` writes ``<out>/metadata/UrbanSound8K.csv`` and ``<out>/audio/fold<N>/*.wav``, the
marker file last; ``ensure_synthetic`` returns an existing identical dataset at once.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from features.synthetic.dsp import add, colored_gain, shaped_noise
from features.synthetic.plan import (
    TAG_AUDIO,
    RecordingPlan,
    SlicePlan,
    SyntheticPreset,
    WavFormat,
    build_plan,
    resolve_preset,
)
from features.synthetic.sounds import SOUNDS, render_class
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


# --------------------------------------------------------------------------- mixing


def _rms(x: np.ndarray) -> float:
    return max(float(np.sqrt(np.mean(np.square(x)))), 1e-12)


def _background(
    class_id: int, n: int, sr: int, channels: int, preset: SyntheticPreset, rng: np.random.Generator
) -> np.ndarray:
    """Urban background: pink-to-brown noise, sometimes with a faint event of another class."""
    bg = shaped_noise(
        rng, n, sr, colored_gain(rng.uniform(0.8, 1.6), 20.0, rng.uniform(4000, 12000)), channels
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
            add(bg[:, c] if channels == 2 else bg, start, event)
    return bg


def _to_channels(event: np.ndarray, channels: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    if channels == 1:
        return event
    # A small inter-channel delay and level difference, as from a source off-centre.
    delay = int(rng.uniform(0, 0.0006) * sr)
    right = np.concatenate([np.zeros(delay), event[: len(event) - delay]]) * rng.uniform(0.7, 1.0)
    pair = np.stack([event, right], axis=1)
    return pair[:, ::-1] if rng.random() < 0.5 else pair


class NarrowDraws:
    """A numpy Generator whose ``uniform(lo, hi)`` lands within ``spread`` of the range around
    its middle; every other method is the generator's own. It consumes the generator exactly
    as the plain draws do, so the rest of the recording's random stream is unchanged."""

    def __init__(self, rng: np.random.Generator, spread: float) -> None:
        self._rng, self._spread = rng, spread

    def uniform(self, low=0.0, high=1.0, size=None):
        middle = (np.asarray(low) + np.asarray(high)) / 2
        value = middle + (self._rng.uniform(low, high, size) - middle) * self._spread
        return float(value) if np.ndim(value) == 0 else value

    def __getattr__(self, name: str):
        return getattr(self._rng, name)


def render_recording(
    rec: RecordingPlan, preset: SyntheticPreset, seed: int
) -> list[tuple[SlicePlan, np.ndarray]]:
    """Audio of every slice of one recording, each (frames,) or (frames, 2) float64 in (-1, 1)."""
    rng = np.random.default_rng([seed, TAG_AUDIO, rec.class_id, rec.fold, rec.index])
    name = CLASS_NAMES[rec.class_id]
    chosen = SOUNDS[name]
    params = chosen.draw(NarrowDraws(rng, preset.draw_spread) if preset.draw_spread < 1 else rng)
    sr, ch = rec.fmt.samplerate, rec.fmt.channels
    level_db = rng.uniform(*preset.peak_dbfs)
    out = []
    # A fold's speed factor: the event is rendered at sr / factor and written at sr, so every
    # frequency is x factor and every duration / factor, in the same n samples.
    render_sr = round(sr / preset.speed(rec.fold))
    for occ in rec.occurrences:
        n = sum(s.frames for s in occ)
        event = chosen.render(params, n, render_sr, rng)
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
