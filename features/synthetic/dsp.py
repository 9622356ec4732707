"""Signal helpers for the synthetic class sounds: oscillators, shaped noise, envelopes, filters."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from scipy import fft as sfft
from scipy import signal

TABLE_SIZE = 4096


def time_axis(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def harmonic_table(amps: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """One period of sum_k amps[k] sin(2 pi (k+1) x + phi_k), peak-normalised."""
    k = np.arange(1, len(amps) + 1)[:, None]
    phases = rng.uniform(0, 2 * np.pi, (len(amps), 1)) if rng is not None else 0.0
    x = np.arange(TABLE_SIZE)[None, :] / TABLE_SIZE
    table = (np.asarray(amps)[:, None] * np.sin(2 * np.pi * k * x + phases)).sum(axis=0)
    return table / max(np.abs(table).max(), 1e-12)


def max_harmonics(f_max: float, sr: int, limit: float = 8000.0) -> int:
    """Harmonics that stay below Nyquist (with margin) and below ``limit`` Hz."""
    return max(1, int(min(0.45 * sr, limit) // max(f_max, 1.0)))


def osc(
    freq: np.ndarray | float, n: int, sr: int, table: np.ndarray, phase0: float = 0.0
) -> np.ndarray:
    """Wavetable oscillator following an instantaneous frequency (Hz) track."""
    if np.isscalar(freq):
        cycles = np.arange(n) * (float(freq) / sr) + phase0
    else:
        cycles = np.cumsum(freq) / sr + phase0
    idx = ((cycles - np.floor(cycles)) * TABLE_SIZE).astype(np.intp) & (TABLE_SIZE - 1)
    return table[idx]


def shaped_noise(
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


def colored_gain(
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


def band_gain(center: float, octaves: float) -> Callable[[np.ndarray], np.ndarray]:
    def gain(f: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / center) / (octaves / 2.0)) ** 2)

    return gain


def smooth_walk(rng: np.random.Generator, n: int, sr: int, knots_per_s: float) -> np.ndarray:
    """A slow random curve in [-1, 1] (random knots, linearly interpolated)."""
    k = max(2, int(n / sr * knots_per_s) + 2)
    knots = rng.uniform(-1.0, 1.0, k)
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), knots)


def decay(n: int, sr: int, tau: float, attack: float = 0.001) -> np.ndarray:
    t = time_axis(n, sr)
    return (1.0 - np.exp(-t / max(attack, 1e-5))) * np.exp(-t / tau)


def fade(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    a, r = min(n, int(attack * sr)), min(n, int(release * sr))
    if a > 0:
        env[:a] *= np.linspace(0.0, 1.0, a)
    if r > 0:
        env[n - r :] *= np.linspace(1.0, 0.0, r)
    return env


def add(out: np.ndarray, start: int, sig: np.ndarray) -> None:
    """Add ``sig`` into ``out`` at ``start``, cropped to ``out``."""
    if start >= len(out) or start + len(sig) <= 0:
        return
    lo = max(0, -start)
    hi = min(len(sig), len(out) - start)
    out[start + lo : start + hi] += sig[lo:hi]


def damped_sines(
    n: int, sr: int, freqs: Iterable[float], taus: Iterable[float], amps: Iterable[float]
) -> np.ndarray:
    t = time_axis(n, sr)
    out = np.zeros(n)
    for f, tau, a in zip(freqs, taus, amps, strict=True):
        if f < 0.45 * sr:
            out += a * np.sin(2 * np.pi * f * t) * np.exp(-t / tau)
    return out


def lowpass(x: np.ndarray, sr: int, cutoff: float, order: int = 2) -> np.ndarray:
    cutoff = min(cutoff, 0.45 * sr)
    return signal.sosfilt(signal.butter(order, cutoff, "low", fs=sr, output="sos"), x)


def formant_amps(
    f0: float, k: int, formants: Iterable[tuple[float, float]], tilt: float
) -> np.ndarray:
    """Harmonic amplitudes of a voiced sound: spectral tilt times formant resonances."""
    h = f0 * np.arange(1, k + 1)
    amps = h ** (-tilt) * 0.05
    for center, bw in formants:
        amps = amps + h ** (-tilt) / (1.0 + ((h - center) / bw) ** 2)
    return amps


def pulse_train(
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
