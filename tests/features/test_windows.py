"""Sliding windows over recordings of any length: a training-length clip is one window with
the clip's own cached features; longer ones stream, cover the whole recording, and match the
one-shot features of the same stretch of audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from features.config import FeatureConfig
from features.logmel import AudioDecodeError, extract_clip, features_from_signal, load_audio
from features.windows import iter_windows, window_seconds

CONFIG = FeatureConfig()


def _tone(path, seconds: float, rate: int = 44_100, channels: int = 2, subtype: str = "PCM_16"):
    t = np.arange(int(seconds * rate)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.3 * t))
    data = np.stack([left, 0.8 * left], axis=1) if channels == 2 else left
    sf.write(path, data, rate, subtype=subtype)
    return path


def test_a_training_length_clip_is_one_window_with_its_cached_features(tmp_path):
    path = _tone(tmp_path / "clip.wav", 3.5)
    (window,) = list(iter_windows(path, CONFIG))
    assert window.start_s == 0 and window.end_s == pytest.approx(3.5)
    assert np.array_equal(window.features, extract_clip(path, CONFIG))
    assert window_seconds(CONFIG) == pytest.approx(174 * 512 / 22_050)


def test_a_long_recording_is_covered_by_windows_that_match_one_shot_features(tmp_path):
    path = _tone(tmp_path / "long.wav", 30.0, rate=48_000)
    windows = list(iter_windows(path, CONFIG, hop_s=2.0, block_s=7.0))  # blocks not aligned to windows
    length = window_seconds(CONFIG)
    starts = [w.start_s for w in windows]
    assert starts[:3] == pytest.approx([0.0, 2.0, 4.0])
    assert windows[-1].end_s == pytest.approx(30.0, abs=1e-3)  # the tail is covered
    assert all(w.end_s - w.start_s == pytest.approx(length, abs=1e-3) for w in windows)
    signal = load_audio(path, CONFIG.sample_rate)  # the whole file, resampled in one go
    for w in (windows[0], windows[5], windows[-1]):
        begin = round(w.start_s * CONFIG.sample_rate)
        expected = features_from_signal(signal[begin : begin + round(length * CONFIG.sample_rate)], CONFIG)
        # Streaming and one-shot resampling agree to float rounding away from the file's ends.
        np.testing.assert_allclose(w.features, expected, atol=2e-3)


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT", "IMA_ADPCM"])
def test_other_formats_stream_too(tmp_path, subtype):
    path = _tone(tmp_path / "f.wav", 9.0, rate=16_000, channels=1, subtype=subtype)
    windows = list(iter_windows(path, CONFIG))
    assert len(windows) >= 3 and all(w.features.shape == CONFIG.shape for w in windows)
    assert all(np.isfinite(w.features).all() for w in windows)


def test_bytes_and_paths_give_the_same_windows(tmp_path):
    path = _tone(tmp_path / "b.wav", 10.0)
    by_path = list(iter_windows(path, CONFIG))
    by_bytes = list(iter_windows(path.read_bytes(), CONFIG))
    assert [w.start_s for w in by_path] == [w.start_s for w in by_bytes]
    assert all(np.array_equal(a.features, b.features) for a, b in zip(by_path, by_bytes, strict=True))


def test_unusable_audio_is_an_audio_decode_error(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is a text file named .wav")
    with pytest.raises(AudioDecodeError, match="cannot decode audio"):
        list(iter_windows(bad, CONFIG))
    with pytest.raises(ValueError, match="hop_s must be > 0"):
        list(iter_windows(_tone(tmp_path / "x.wav", 8.0), CONFIG, hop_s=0))
