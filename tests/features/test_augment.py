"""Waveform augmentations on signals with known answers, and the AugmentConfig contract."""

from __future__ import annotations

import numpy as np
import pytest

from features.augment import (
    DRC_PRESETS,
    AugmentConfig,
    Variant,
    apply_variant,
    clip_variants,
    compand,
    generated_noise,
    mix_at_snr,
    noise_partner,
    variants,
)

SR = 22_050


def _tone(freq: float, seconds: float = 2.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(y: np.ndarray) -> tuple[float, float]:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spectrum) * SR / len(y)), SR / len(y)


@pytest.mark.parametrize("steps", [-3.5, -2, 1, 2.5])
def test_pitch_shift_moves_a_pure_tone_by_k_semitones(steps):
    config = AugmentConfig(pitch_shift=(steps,))
    out = apply_variant(_tone(440.0), SR, variants(config)[0], config, "a.wav")
    peak, bin_hz = _peak_hz(out)
    assert abs(peak - 440.0 * 2 ** (steps / 12)) <= bin_hz
    assert abs(peak - 440.0) > 10  # it did move
    assert len(out) == 2 * SR  # pitch shift keeps the duration


@pytest.mark.parametrize("rate", [0.81, 0.93, 1.07, 1.23])
def test_time_stretch_duration_is_length_over_rate_and_pitch_is_kept(rate):
    config = AugmentConfig(time_stretch=(rate,))
    y = _tone(1000.0)
    out = apply_variant(y, SR, variants(config)[0], config, "a.wav")
    assert len(out) == round(len(y) / rate)
    peak, bin_hz = _peak_hz(out)
    assert abs(peak - 1000.0) <= bin_hz


def _level_db(y: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(y, dtype=np.float64))))  # a square wave's amplitude


def _square(freq: float, seconds: float, amplitude: float) -> np.ndarray:
    """|x| is constant, so sox's envelope settles exactly on the amplitude: a known answer."""
    return (amplitude * np.sign(_tone(freq, seconds) + 1e-9)).astype(np.float32)


@pytest.mark.parametrize("name", ["music_standard", "film_standard", "speech", "radio"])
def test_drc_follows_the_preset_transfer_curve_and_narrows_the_range(name):
    preset = DRC_PRESETS[name]
    quiet, loud = _square(500, 6.0, 10 ** (-50 / 20)), _square(500, 3.0, 10 ** (-6 / 20))
    out = compand(np.concatenate([quiet, loud]), SR, preset)
    n = len(quiet)
    # Steady state (a second before each part ends, the envelope settled, clear of the gain's
    # look-ahead into the next part): output level = curve(input level) + gain.
    ins, outs = zip(*preset.points, strict=True)
    for part, level in ((out[n - SR - SR // 4 : n - SR // 4], -50.0), (out[-SR:], -6.0)):
        expected = np.interp(level, ins, outs) + preset.gain_db
        assert abs(_level_db(part) - expected) < 0.05, (name, level)
    # 44 dB of input range come out much narrower.
    assert _level_db(out[-SR:]) - _level_db(out[n - SR - SR // 4 : n - SR // 4]) < 44 - 15


def test_drc_keeps_length_and_silence():
    out = compand(np.zeros(1000, np.float32), SR, DRC_PRESETS["radio"])
    assert out.shape == (1000,) and not out.any()


def test_noise_mixing_hits_the_requested_snr():
    rng = np.random.default_rng(1)
    signal = _tone(300)
    noise = rng.standard_normal(len(signal)).astype(np.float32) * 3
    for snr in (0.0, 7.5, 20.0):
        out = mix_at_snr(signal, noise, snr)
        residual = out.astype(np.float64) - signal
        measured = 10 * np.log10(np.mean(np.square(signal, dtype=np.float64)) / np.mean(residual**2))
        assert abs(measured - snr) < 0.01


@pytest.mark.parametrize("source", ["white", "pink"])
def test_generated_noise_variant_snr_in_range_and_seeded(source):
    config = AugmentConfig(noise_mixes=2, noise_source=source, noise_snr_db=(5.0, 10.0), seed=3)
    y = _tone(300)
    outs = []
    for variant in variants(config):
        out = apply_variant(y, SR, variant, config, "clip-1.wav")
        residual = out.astype(np.float64) - y
        snr = 10 * np.log10(np.mean(np.square(y, dtype=np.float64)) / np.mean(residual**2))
        assert 5.0 - 0.01 <= snr <= 10.0 + 0.01
        outs.append(out)
    assert not np.array_equal(outs[0], outs[1])  # two mixes differ
    again = apply_variant(y, SR, variants(config)[0], config, "clip-1.wav")
    np.testing.assert_array_equal(again, outs[0])  # same seed and clip: same output
    other_seed = AugmentConfig(noise_mixes=2, noise_source=source, noise_snr_db=(5.0, 10.0), seed=4)
    assert not np.array_equal(apply_variant(y, SR, variants(other_seed)[0], other_seed, "clip-1.wav"), outs[0])
    other_clip = apply_variant(y, SR, variants(config)[0], config, "clip-2.wav")
    assert not np.array_equal(other_clip, outs[0])


def test_pink_noise_has_a_falling_spectrum():
    noise = generated_noise("pink", 2**16, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(noise)) ** 2
    low, high = power[10:100].mean(), power[10000:11000].mean()
    assert 10 * np.log10(low / high) > 15  # ~1/f: 20 dB over two decades


def test_clip_noise_variant_uses_the_partner_audio():
    config = AugmentConfig(noise_mixes=1, noise_snr_db=(10.0, 10.0))
    y, partner = _tone(300), _tone(2000, 1.0)
    out = apply_variant(y, SR, variants(config)[0], config, "a.wav", noise=partner)
    peak, bin_hz = _peak_hz(out - y)
    assert abs(peak - 2000.0) <= bin_hz  # the background is the partner (looped to length)
    with pytest.raises(ValueError, match="partner"):
        apply_variant(y, SR, variants(config)[0], config, "a.wav")


def test_salamon_bello_variants_are_named_and_ordered():
    config = AugmentConfig(
        time_stretch=(0.81, 0.93, 1.07, 1.23), pitch_shift=(-2, -1, 1, 2, -3.5, -2.5, 2.5, 3.5),
        drc=("music_standard", "film_standard", "speech", "radio"), noise_mixes=2,
    )
    names = [v.name for v in variants(config)]
    assert names[:5] == ["ts0.81", "ts0.93", "ts1.07", "ts1.23", "ps-2"]
    assert names[-3:] == ["drc:radio", "bg0:clips", "bg1:clips"]
    assert len(names) == len(set(names)) == 18 and config.per_clip == 18


def test_variants_per_clip_is_a_seeded_subset():
    config = AugmentConfig(time_stretch=(0.81, 1.23), pitch_shift=(-2, 2), drc=("radio",), variants_per_clip=3)
    a = clip_variants(config, "x.wav")
    assert len(a) == 3 and a == clip_variants(config, "x.wav")
    assert set(v.name for v in a) <= {v.name for v in variants(config)}
    picks = {tuple(v.name for v in clip_variants(config, f"{i}.wav")) for i in range(20)}
    assert len(picks) > 1  # different clips get different subsets
    assert clip_variants(AugmentConfig(pitch_shift=(1, 2)), "x.wav") == variants(AugmentConfig(pitch_shift=(1, 2)))


def test_noise_partner_is_seeded_and_needs_candidates():
    config = AugmentConfig(noise_mixes=2)
    v0, v1 = variants(config)
    pool = [f"{i}.wav" for i in range(50)]
    assert noise_partner(config, "a.wav", v0, pool) == noise_partner(config, "a.wav", v0, pool)
    assert noise_partner(config, "a.wav", v0, pool) in pool
    with pytest.raises(ValueError, match="white or pink"):
        noise_partner(config, "a.wav", v1, [])


def test_default_config_is_empty_and_round_trips():
    assert AugmentConfig().empty and variants(AugmentConfig()) == []
    config = AugmentConfig(time_stretch=[0.81], drc=["speech"], noise_mixes=1, noise_source="white")
    data = config.to_dict()
    assert AugmentConfig.from_dict(data) == config
    assert config.digest() == AugmentConfig.from_dict(data).digest() != AugmentConfig().digest()
    assert AugmentConfig(seed=1).digest() != AugmentConfig().digest()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"time_stretch": [1.0]}, "time_stretch"),
        ({"time_stretch": "0.8"}, "list of numbers"),
        ({"pitch_shift": [0]}, "pitch_shift"),
        ({"pitch_shift": [2, 2]}, "twice"),
        ({"drc": ["loud"]}, "unknown preset"),
        ({"noise_snr_db": [10, 0]}, "low <= high"),
        ({"noise_mixes": -1}, "noise_mixes"),
        ({"noise_source": "traffic"}, "noise_source"),
        ({"storage": "int8"}, "storage"),
        ({"pitch_shift": [1, 2], "variants_per_clip": 3}, "only 2 variant"),
        ({"rates": [0.9]}, "unknown key"),
    ],
)
def test_bad_config_values_are_clear_errors(data, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig.from_dict(data)


def test_unknown_variant_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown variant kind"):
        apply_variant(_tone(300), SR, Variant("reverb", 1, "rv"), AugmentConfig(), "a.wav")
