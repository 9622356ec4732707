"""One procedural sound per UrbanSound8K class, registered by class name.

Each class has a parameter drawer (a recording's character: pitch, rate, timbre) and a
renderer that makes a mono float signal of n samples for one occurrence; ``@sound`` registers
the pair in ``SOUNDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from features.synthetic.dsp import (
    add,
    band_gain,
    colored_gain,
    damped_sines,
    decay,
    fade,
    formant_amps,
    harmonic_table,
    lowpass,
    max_harmonics,
    osc,
    pulse_train,
    shaped_noise,
    smooth_walk,
    time_axis,
)
from features.us8k import CLASS_NAMES

Params = dict[str, Any]


@dataclass(frozen=True)
class ClassSound:
    draw: Callable[[np.random.Generator], Params]
    render: Callable[[Params, int, int, np.random.Generator], np.ndarray]


SOUNDS: dict[str, ClassSound] = {}


def sound(class_name: str, draw: Callable[[np.random.Generator], Params]):
    """Register the decorated renderer, with its parameter drawer, as ``class_name``'s sound."""

    def register(render):
        SOUNDS[class_name] = ClassSound(draw, render)
        return render

    return register
# Each class has a parameter drawer (the recording's character: pitch, rate, timbre) and a
# renderer producing a mono float signal of n samples for one occurrence.



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


@sound("air_conditioner", _p_air_conditioner)
def _r_air_conditioner(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    def gain(f: np.ndarray) -> np.ndarray:
        g = colored_gain(p["tilt"], 40.0, p["cutoff"])(f)
        for center, octaves, boost in p["bumps"]:
            g = g * (1.0 + boost * band_gain(center, octaves)(f))
        return g

    noise = shaped_noise(rng, n, sr, gain)
    hum = osc(
        p["mains"], n, sr, harmonic_table(np.array([1.0, 0.5, 0.3, 0.2]), rng), rng.random()
    )
    blade = osc(p["blade"], n, sr, harmonic_table(np.array([1.0, 0.3])), rng.random())
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


@sound("car_horn", _p_car_horn)
def _r_car_horn(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    f0s = [p["f0"]] if p["ratio"] is None else [p["f0"], p["f0"] * p["ratio"]]
    tables = []
    for f in f0s:
        k = max_harmonics(f, sr, 6000.0)
        tables.append((f, harmonic_table(formant_amps(f, k, [p["formant"]], p["tilt"]), rng)))
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
            osc(f * (1 + 0.002 * rng.standard_normal()), m, sr, tab, rng.random())
            for f, tab in tables
        )
        out[a:b] += tone * fade(m, sr, 0.012, 0.03) * rng.uniform(0.8, 1.0)
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


@sound("children_playing", _p_children_playing)
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
            k = max_harmonics(base * 1.6, sr, 6000.0)
            vowels.append(
                harmonic_table(formant_amps(base, k, formants, rng.uniform(0.4, 1.0)), rng)
            )
        level = rng.uniform(0.3, 1.0)
        t = int(rng.uniform(0, 0.5) * sr)
        while t < n:
            m = int(rng.uniform(*p["syllable"]) * sr)
            shout = rng.random() < p["shout_prob"]
            f_a = base * rng.uniform(0.85, 1.2) * (1.3 if shout else 1.0)
            f_b = f_a * rng.uniform(0.7, 1.45)
            track = np.geomspace(f_a, f_b, max(m, 2))
            track *= 1.0 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 7) * time_axis(len(track), sr))
            syl = osc(track, len(track), sr, vowels[int(rng.integers(0, 3))], rng.random())
            syl *= fade(len(syl), sr, 0.02, 0.05) * level * (1.8 if shout else 1.0)
            add(out, t, syl)
            t += m + int(rng.uniform(*p["gap"]) * sr)
    crowd = shaped_noise(rng, n, sr, band_gain(1200.0, 3.0))
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


@sound("dog_bark", _p_dog_bark)
def _r_dog_bark(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    k = max_harmonics(p["f0"] * 1.3, sr, 7000.0)
    table = harmonic_table(formant_amps(p["f0"], k, [p["formant"]], p["tilt"]), rng)
    t = int(rng.uniform(0.0, 0.12) * sr)
    while t < n:
        m = max(2, int(rng.uniform(*p["bark"]) * sr))
        f = p["f0"] * rng.uniform(0.9, 1.1)
        # Pitch jumps up quickly then falls: the bark's typical contour.
        x = np.linspace(0.0, 1.0, m)
        track = f * np.where(x < 0.2, 1.0 + 0.25 * x / 0.2, 1.25 - 0.55 * (x - 0.2) / 0.8)
        voiced = osc(track, m, sr, table, rng.random())
        noise = shaped_noise(rng, m, sr, band_gain(p["noise_band"], 2.0))
        bark = ((1 - p["rough"]) * voiced + p["rough"] * 0.5 * noise) * decay(
            m, sr, m / sr / 2.5, 0.008
        )
        add(out, t, bark * rng.uniform(0.6, 1.0))
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


@sound("drilling", _p_drilling)
def _r_drilling(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    speed = 1.0 + 0.06 * smooth_walk(rng, n, sr, 1.5)
    f = p["whine"] * speed
    k = max_harmonics(p["whine"] * 1.1, sr, 12000.0)
    amps = p["harmonics"] ** np.arange(k)
    whine = osc(f, n, sr, harmonic_table(amps, rng), rng.random())
    noise = shaped_noise(rng, n, sr, band_gain(*p["band"]))
    am = 1.0 - p["am_depth"] * (
        0.5 + 0.5 * np.sin(2 * np.pi * np.cumsum(p["am_rate"] * speed) / sr)
    )
    out = (p["mix"] * whine + (1 - p["mix"]) * noise) * am
    if p["on_off"]:
        gate, t, on = np.zeros(n), 0, rng.random() < 0.8
        while t < n:
            m = int((rng.uniform(0.6, 3.0) if on else rng.uniform(0.1, 0.6)) * sr)
            if on:
                gate[t : t + m] = fade(len(gate[t : t + m]), sr, 0.08, 0.1)
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


@sound("engine_idling", _p_engine_idling)
def _r_engine_idling(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    freq = p["f0"] * (1.0 + p["wander"] * smooth_walk(rng, n, sr, 1.0))
    pulses = pulse_train(
        freq, sr, p["pattern"] * rng.uniform(0.9, 1.1, len(p["pattern"])), rng.random()
    )
    klen = int(0.15 * sr)
    freqs, taus = zip(*p["resonances"], strict=True)
    kernel = damped_sines(klen, sr, freqs, taus, [1.0] * len(freqs))
    hum = signal.oaconvolve(pulses, kernel)[:n]
    hum = lowpass(hum, sr, p["cutoff"])
    hum /= max(float(np.sqrt(np.mean(hum**2))), 1e-12)
    rumble = shaped_noise(rng, n, sr, colored_gain(1.5, 20.0, p["cutoff"]))
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
    noise = lowpass(rng.standard_normal(m), sr, p["cutoff"] * rng.uniform(0.8, 1.2))
    shot = noise * decay(m, sr, tau, 0.0005)
    shot /= max(np.abs(shot).max(), 1e-12)
    thump_f, thump_a = p["thump"]
    shot += thump_a * damped_sines(m, sr, [thump_f], [tau * 0.6], [1.0])
    if rng.random() < p["echo_prob"]:
        echoed = np.zeros(m + int(1.0 * sr))
        echoed[:m] = shot
        for _ in range(int(rng.integers(1, 3))):
            add(
                echoed,
                int(rng.uniform(0.08, 0.5) * sr),
                rng.uniform(0.15, 0.5) * lowpass(shot, sr, 1500.0),
            )
        shot = echoed
    # The echo buffer ends abruptly; fade its tail so no edge shows up in a spectrogram.
    return shot * fade(len(shot), sr, 0.0, 0.3 * len(shot) / sr)


@sound("gun_shot", _p_gun_shot)
def _r_gun_shot(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    t = int(rng.uniform(0.005, min(0.12, 0.3 * n / sr + 0.005)) * sr)
    add(out, t, _gunshot(p, sr, rng))
    while rng.random() < p["burst_prob"]:
        t += int(rng.uniform(*p["interval"]) * sr)
        if t >= n:
            break
        add(out, t, _gunshot(p, sr, rng) * rng.uniform(0.6, 1.0))
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


@sound("jackhammer", _p_jackhammer)
def _r_jackhammer(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    rate = p["rate"] * (1.0 + 0.04 * smooth_walk(rng, n, sr, 2.0))
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
    kernel = rng.standard_normal(klen) * decay(klen, sr, p["hit_tau"], 0.0003)
    kernel /= max(np.abs(kernel).max(), 1e-12)
    kernel += p["ring_level"] * damped_sines(klen, sr, freqs, taus, [1.0] * len(freqs))
    kernel += 0.5 * damped_sines(klen, sr, [p["thud"]], [0.015], [1.0])
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


@sound("siren", _p_siren)
def _r_siren(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    x = p["rate"] * time_axis(n, sr) * rng.uniform(0.9, 1.1) + rng.random()
    frac = x - np.floor(x)
    if p["mode"] == "wail":
        shape = -np.cos(2 * np.pi * x)
    elif p["mode"] == "yelp":
        shape = 2 * frac - 1
    else:
        shape = 1 - 2 * frac
    drift = 1.0 + p["doppler"] * smooth_walk(rng, n, sr, 0.5)
    freq = p["center"] * (1.0 + p["depth"] * shape) * drift
    k = min(len(p["amps"]), max_harmonics(p["center"] * (1 + p["depth"]) * 1.05, sr, 12000.0))
    tone = osc(freq, n, sr, harmonic_table(p["amps"][:k], rng), rng.random())
    swell = 1.0 + 0.3 * smooth_walk(rng, n, sr, 0.5)
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


@sound("street_music", _p_street_music)
def _r_street_music(p: Params, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    k = max_harmonics(p["root"] * 4, sr, 8000.0)
    table = harmonic_table(np.arange(1, k + 1, dtype=float) ** (-p["tilt"]), rng)
    beat = p["beat"]
    t, degree = -rng.uniform(0, beat), int(rng.integers(0, len(p["scale"])))
    while t < n / sr:
        dur = beat * float(rng.choice([0.5, 0.5, 1.0, 1.0, 2.0]))
        degree = int(np.clip(degree + rng.integers(-2, 3), -2, 2 * len(p["scale"])))
        m = int(dur * sr)
        env = decay(m, sr, p["decay"], 0.005) if p["pluck"] else fade(m, sr, 0.02, 0.06)
        add(out, int(t * sr), osc(_note_hz(p, degree), m, sr, table, rng.random()) * env)
        t += dur
    if p["bass"]:
        bass_table = harmonic_table(np.array([1.0, 0.4, 0.15]))
        t = 0.0
        while t < n / sr:
            m = int(beat * sr)
            f = _note_hz(p, int(rng.choice([0, 0, 4]))) / 4
            add(
                out, int(t * sr), 0.6 * osc(f, m, sr, bass_table) * decay(m, sr, beat / 2, 0.005)
            )
            t += beat
    if p["drums"]:
        level = p["drum_level"] * max(float(np.abs(out).max()), 0.1)
        m = int(0.25 * sr)
        kick = np.sin(2 * np.pi * np.cumsum(np.geomspace(120, 45, m)) / sr) * decay(
            m, sr, 0.06, 0.002
        )
        hat_m = int(0.05 * sr)
        t = 0.0
        while t < n / sr:
            add(out, int(t * sr), level * kick)
            hat = lowpass(rng.standard_normal(hat_m), sr, 12000.0) * decay(
                hat_m, sr, 0.01, 0.0005
            )
            add(out, int((t + beat / 2) * sr), 0.3 * level * hat)
            t += beat
    return out



assert set(SOUNDS) == set(CLASS_NAMES), sorted(set(CLASS_NAMES) - set(SOUNDS))


def render_class(class_name: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A fresh sound of ``class_name``, mono, n samples at sr (no background)."""
    chosen = SOUNDS[class_name]
    return chosen.render(chosen.draw(rng), n, sr, rng)
