"""python -m features.synthetic --out DIR --preset tiny|demo|bench|shifted|tiny-shifted [--seed N] [--clips-per-class-fold N]

Runtime (one core, serial): tiny (200 clips, ~160 MB) about 4 s, demo (300 clips, ~240 MB)
about 7 s, bench (500 clips, ~370 MB) about 10 s; shifted as bench, tiny-shifted as tiny.

An offline, UrbanSound8K-shaped dataset: ``<out>/metadata/UrbanSound8K.csv`` with the real
schema and ``<out>/audio/fold<N>/<fsID>-<classID>-<occurrenceID>-<sliceID>.wav``. 10 folds x
10 classes; every recording (fsID) lives in one fold and one class and gives several
consecutive slices; durations, saliences and the WAV format mix (sample rates, subtypes,
channels, IMA ADPCM) follow the real set. Each class is a procedural sound with its own
character, randomised per recording and mixed with urban background noise.

Modules: ``plan`` (presets, formats, recordings and slices), ``dsp`` (signal helpers),
``sounds`` (one sound per class, registered by name), ``writer`` (mixing, WAV encoding,
``generate``), ``cli`` (the command). Output is a pure function of (preset, seed).
"""

from features.synthetic.cli import main
from features.synthetic.plan import PRESETS, SyntheticPreset, WavFormat, build_plan, resolve_preset
from features.synthetic.sounds import SOUNDS, render_class
from features.synthetic.writer import (
    IN_PROGRESS_NAME,
    MARKER_NAME,
    ensure_synthetic,
    generate,
    read_marker,
    render_recording,
    wav_bytes,
)

__all__ = [
    "IN_PROGRESS_NAME",
    "MARKER_NAME",
    "PRESETS",
    "SOUNDS",
    "SyntheticPreset",
    "WavFormat",
    "build_plan",
    "ensure_synthetic",
    "generate",
    "main",
    "read_marker",
    "render_class",
    "render_recording",
    "resolve_preset",
    "wav_bytes",
]
