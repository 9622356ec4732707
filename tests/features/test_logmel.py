"""Pure extraction: parity with the reference librosa recipe, shapes, edge cases, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from features.config import FeatureConfig
from features.logmel import (
    AudioDecodeError,
    extract_clip,
    features_from_signal,
    fit_frames,
    load_audio,
    reference_features,
)

# Parity tolerance with the reference recipe: features lie in [-1, 1]; float32 rounding in the
# FFT, the downmix and the dB conversion differ by a few ulps, far below 1e-5.
PARITY_ATOL = 1e-5

# (sample rate, channels, subtype): the formats UrbanSound8K's files come in.
FORMATS = [
    (44_100, 2, "PCM_16"),
    (48_000, 2, "PCM_24"),
    (96_000, 2, "PCM_32"),
    (22_050, 1, "PCM_16"),
    (16_000, 1, "PCM_U8"),
    (8_000, 1, "FLOAT"),
    (11_025, 2, "PCM_16"),
    (44_100, 1, "IMA_ADPCM"),
    (192_000, 1, "PCM_24"),
]


def _signal(rate: int, seconds: float, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    chirp = np.sin(2 * np.pi * (200 + 900 * t) * t)
    mono = 0.4 * chirp * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(t.size)
    return np.stack([mono * (0.6 + 0.4 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def format_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    paths = []
    for i, (rate, channels, subtype) in enumerate(FORMATS):
        path = folder / f"{i}-{rate}-{channels}-{subtype}.wav"
        sf.write(path, _signal(rate, 4.0, channels, seed=i), rate, subtype=subtype)
        paths.append(path)
    return paths


@pytest.mark.parametrize("i", range(len(FORMATS)), ids=[f"{r}Hz-{c}ch-{s}" for r, c, s in FORMATS])
def test_seed_recipe_matches_reference_librosa_recipe(format_clips, i):
    ours = extract_clip(format_clips[i], FeatureConfig())
    ref = reference_features(format_clips[i])
    assert ours.shape == ref.shape == (40, 174)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=PARITY_ATOL)


def test_parity_on_synthetic_dataset_clips(tiny_dataset):
    index_rows = tiny_dataset.table.groupby("classID").head(1)  # one clip of each class
    for path in index_rows["path"]:
        np.testing.assert_allclose(
            extract_clip(path, FeatureConfig()), reference_features(path), rtol=0, atol=PARITY_ATOL
        )


def test_bytes_source_equals_path_source(format_clips):
    path = format_clips[1]
    np.testing.assert_array_equal(
        extract_clip(path.read_bytes(), FeatureConfig()), extract_clip(path, FeatureConfig())
    )


def test_seed_recipe_scales_every_frame_to_peak_one(format_clips):
    feats = extract_clip(format_clips[0], FeatureConfig())
    # 4 s at 22,050 Hz is 173 frames: the reference centre-pads one zero frame on the right.
    assert np.all(feats[:, -1] == 0)
    np.testing.assert_allclose(np.abs(feats[:, :173]).max(axis=0), 1.0, atol=1e-6)


def test_corrected_recipe_and_mfcc_shapes(format_clips):
    corrected = extract_clip(format_clips[0], FeatureConfig(recipe="corrected"))
    assert corrected.shape == (40, 174) and corrected.dtype == np.float32
    assert np.isclose(np.abs(corrected).max(), 1.0)
    # Whole-clip scaling: unlike the seed recipe, frames do not all reach |1|.
    assert np.abs(corrected[:, :173]).max(axis=0).min() < 0.99
    mfcc = extract_clip(format_clips[0], FeatureConfig(kind="mfcc", n_mfcc=20))
    assert mfcc.shape == (20, 174) and np.isfinite(mfcc).all()


def test_very_short_and_silent_clips_give_valid_features(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, _signal(44_100, 0.05, 1, seed=1), 44_100, subtype="PCM_16")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((88_200, 2), np.float32), 22_050, subtype="PCM_16")
    for path in (short, silent):
        feats = extract_clip(path, FeatureConfig())
        assert feats.shape == (40, 174) and np.isfinite(feats).all()
        np.testing.assert_allclose(feats, reference_features(path), atol=PARITY_ATOL)
    # 0.05 s is 3 frames: centred among 171 zero frames.
    assert np.count_nonzero(np.abs(extract_clip(short, FeatureConfig())).max(axis=0)) == 3


def test_longer_clips_are_centre_cropped():
    feats = np.arange(10 * 200, dtype=np.float32).reshape(10, 200)
    cropped = fit_frames(feats, 174)
    assert cropped.shape == (10, 174)
    np.testing.assert_array_equal(cropped, feats[:, 13:187])
    padded = fit_frames(feats[:, :171], 174)
    np.testing.assert_array_equal(padded[:, 1:172], feats[:, :171])
    assert np.all(padded[:, 0] == 0) and np.all(padded[:, 172:] == 0)


def test_resampling_and_downmix(format_clips):
    y = load_audio(format_clips[0], 22_050)  # 4 s of 44.1 kHz stereo
    assert y.dtype == np.float32 and y.ndim == 1 and y.size == 88_200


@pytest.mark.parametrize("i", range(len(FORMATS)), ids=[f"{r}Hz-{c}ch-{s}" for r, c, s in FORMATS])
def test_decoding_equals_libsndfiles_float_decoding(format_clips, i):
    # Integer PCM is read as integers and scaled by load_audio: same samples as libsndfile's
    # float conversion followed by a channel mean (what librosa.load does before resampling).
    data, rate = sf.read(format_clips[i], dtype="float32", always_2d=True)
    ours = load_audio(format_clips[i], rate)
    assert ours.dtype == np.float32 and ours.shape == (data.shape[0],)
    np.testing.assert_allclose(ours, data.mean(axis=1), rtol=0, atol=1e-7)


def test_features_from_signal_matches_file_path():
    y = _signal(22_050, 2.0, 1, seed=3)[:, 0]
    feats = features_from_signal(y, FeatureConfig())
    assert feats.shape == (40, 174)
    # 2 s = 87 frames, centred: 43 zero frames left, 44 right.
    assert np.all(feats[:, :43] == 0) and np.any(feats[:, 43] != 0) and np.all(feats[:, 130:] == 0)


def _good_wav_bytes(tmp_path) -> bytes:
    path = tmp_path / "good.wav"
    sf.write(path, _signal(44_100, 1.0, 1, seed=2), 44_100, subtype="PCM_16")
    return path.read_bytes()


@pytest.mark.parametrize(
    ("kind", "expect"),
    [
        ("corrupt_header", "cannot decode audio"),
        ("truncated", "truncated: the header declares 88200 bytes"),
        ("header_only", "truncated"),
        ("empty", "cannot decode audio: the file is empty (0 bytes)"),
        ("not_audio", "cannot decode audio: a text file, not audio (it starts 'slice_file_name,fsID')"),
        ("nan_samples", "1 NaN/Inf samples"),
        ("missing", "cannot read file"),
    ],
)
def test_bad_files_raise_audio_decode_error_with_reason(tmp_path, kind, expect):
    good = _good_wav_bytes(tmp_path)
    path = tmp_path / f"{kind}.wav"
    if kind == "corrupt_header":
        path.write_bytes(good[:20] + b"\x63\x00" + good[22:])  # unknown format tag
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "header_only":
        path.write_bytes(good[:44])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_audio":
        path.write_text("slice_file_name,fsID\nnot a wav file\n")
    elif kind == "nan_samples":
        y = _signal(22_050, 1.0, 1, seed=4)
        y[100] = np.nan
        sf.write(path, y, 22_050, subtype="FLOAT")
    with pytest.raises(AudioDecodeError) as info:
        extract_clip(path, FeatureConfig())
    assert expect in info.value.reason
