"""Features of recordings of any length: sliding windows of the training clip length (pure).

A model trained on UrbanSound8K sees clips of at most ~4 s (``frames`` x ``hop_length`` /
``sample_rate``: 4.04 s for the reference features). A recording is cut into windows of that
length every ``hop_s`` seconds; each window becomes features exactly as a training clip does
(``features.logmel.features_from_signal``: peak-normalised, log-mel, centre-padded to
``frames``). A recording no longer than one window is one window, computed by
``extract_clip`` itself, so a dataset clip gets the very features it was cached with.

Longer recordings are streamed: libsndfile decodes blocks of ``block_s`` seconds, ``soxr``'s
streaming resampler (the same HQ filter as the one-shot path) brings them to the feature rate,
and only one window plus one block is held in memory, so an hour-long file needs ~a few MB
of audio buffer rather than the whole decoded file.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from features.config import FeatureConfig
from features.logmel import (
    AudioDecodeError,
    AudioSource,
    extract_clip,
    features_from_signal,
    undecodable_reason,
)


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float
    features: np.ndarray  # (bands, frames) float32


def window_seconds(config: FeatureConfig) -> float:
    """The training clip length the features cover: ``frames`` STFT hops."""
    return config.frames * config.hop_length / config.sample_rate


def duration_seconds(source: AudioSource) -> float:
    try:
        info = sf.info(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioDecodeError(undecodable_reason(source, exc)) from None
    except OSError as exc:
        raise AudioDecodeError(f"cannot read file: {exc.strerror or exc}") from None
    return info.frames / info.samplerate if info.samplerate else 0.0


def iter_windows(
    source: AudioSource, config: FeatureConfig, hop_s: float | None = None, block_s: float = 30.0
) -> Iterator[Window]:
    """Windows of ``window_seconds(config)`` every ``hop_s`` (default: half a window).

    The last window ends at the end of the recording (so the tail is covered once, partly
    overlapping the one before). Raises AudioDecodeError for audio that cannot be used.
    """
    length = window_seconds(config)
    hop = hop_s if hop_s is not None else length / 2
    if hop <= 0:
        raise ValueError(f"hop_s must be > 0 seconds, got {hop}")
    total = duration_seconds(source)
    if total <= length:
        yield Window(0.0, total, extract_clip(source, config))
        return
    yield from _stream(source, config, length, hop, block_s)


def _stream(source: AudioSource, config: FeatureConfig, length: float, hop: float, block_s: float) -> Iterator[Window]:
    rate = config.sample_rate
    window_n, hop_n = round(length * rate), max(1, round(hop * rate))
    buffer = np.zeros(0, np.float32)
    offset = 0  # samples (at ``rate``) dropped from the front of ``buffer``
    next_start = 0
    last_start = None
    for chunk in _resampled_blocks(source, rate, block_s):
        buffer = np.concatenate([buffer, chunk])
        while next_start + window_n <= offset + len(buffer):
            begin = next_start - offset
            yield Window(next_start / rate, (next_start + window_n) / rate,
                         features_from_signal(buffer[begin : begin + window_n], config))
            last_start = next_start
            next_start += hop_n
        # Keep what the next window needs, and always the last window's worth (for the tail).
        keep_from = max(0, min(next_start - offset, len(buffer) - window_n))
        buffer, offset = buffer[keep_from:], offset + keep_from
    end = offset + len(buffer)
    tail_start = max(0, end - window_n)
    if last_start is None or tail_start > last_start:  # the end of the recording, covered once
        begin = tail_start - offset
        yield Window(tail_start / rate, end / rate, features_from_signal(buffer[begin:], config))


def _resampled_blocks(source: AudioSource, rate: int, block_s: float) -> Iterator[np.ndarray]:
    """Mono float32 blocks at ``rate``: libsndfile blocks, downmixed, through soxr's stream."""
    try:
        with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as sound:
            stream = soxr.ResampleStream(sound.samplerate, rate, 1, dtype="float32", quality="HQ")
            blocksize = max(1024, int(block_s * sound.samplerate))
            pending = None
            for block in sound.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    raise AudioDecodeError(f"{int((~np.isfinite(block)).sum())} NaN/Inf samples in the audio")
                if pending is not None:
                    yield stream.resample_chunk(pending)
                pending = block.mean(axis=1, dtype=np.float32)
            if pending is not None:
                yield stream.resample_chunk(pending, last=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioDecodeError(f"cannot decode audio: {str(exc).splitlines()[0]}") from None
