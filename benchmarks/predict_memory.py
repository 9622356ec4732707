"""python -m benchmarks.predict_memory [--minutes 60] [--rate 44100] [--channels 2]

Peak memory of classifying one long recording (not a test). Runtime: about 3-6 minutes for
the default hour on 2 cores (writing the file, then ~1,800 windows of the demo network).

Writes a ``--minutes``-long WAV (street-like noise, ``--rate`` Hz, ``--channels``, 16-bit),
then measures, each in a fresh process (peak RSS from ``getrusage``):

1. baseline: importing TensorFlow and building the classifier, no audio (what any prediction costs);
2. the one-shot path: decoding and resampling the whole file at once (``features.logmel.load_audio``,
   what a naive loop over whole files would hold);
3. the project's streaming prediction over sliding windows (``model.predictor.AudioClassifier``).

It prints each peak and the streaming path's increment over the baseline against the one-shot
decode's increment, and the window count and seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.machine import describe
from features.argtypes import positive_int

_CHILD = r"""
import json, os, resource, sys, time
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1"); os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
mode, path = sys.argv[1], sys.argv[2]
from features.config import FeatureConfig
config = FeatureConfig()
started = time.perf_counter(); extra = {}
if mode == "one-shot":
    from features.logmel import load_audio
    extra["samples"] = len(load_audio(path, config.sample_rate))
else:
    import numpy as np
    import tf_keras as keras
    from features.us8k import CLASS_NAMES
    from model.cnn import build_cnn
    from model.config import TrainConfig
    from model.data import Normaliser
    from model.predictor import AudioClassifier
    keras.utils.set_random_seed(0)
    net = build_cnn((*config.shape, 1), 10, TrainConfig(filters=(16, 16, 32, 32)))
    clf = AudioClassifier(net, config, Normaliser.identity(config.n_mels), CLASS_NAMES)
    if mode == "stream":
        extra["windows"] = len(clf.classify(path).windows)
extra["seconds"] = time.perf_counter() - started
extra["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(extra))
"""


def write_recording(path: Path, minutes: int, rate: int, channels: int, seed: int = 0) -> None:
    """Pink-ish noise with bursts, written a minute at a time (never all in memory)."""
    rng = np.random.default_rng(seed)
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, subtype="PCM_16") as out:
        for _ in range(minutes):
            white = rng.standard_normal((rate * 60, channels)).astype(np.float32)
            noise = np.cumsum(white, axis=0) * 0.001
            noise -= np.linspace(noise[0], noise[-1], len(noise))  # keep the walk bounded
            bursts = (rng.random((rate * 60, 1)) < 1e-4).astype(np.float32) * 0.5
            out.write(np.clip(0.1 * noise + bursts, -0.99, 0.99))


def measure(mode: str, path: Path) -> dict:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path)], capture_output=True, text=True,
                          cwd=root, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.predict_memory", description="Peak RSS of long-recording prediction.")
    p.add_argument("--minutes", type=positive_int, default=60)
    p.add_argument("--rate", type=positive_int, default=44_100)
    p.add_argument("--channels", type=positive_int, default=2)
    args = p.parse_args(argv)
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        started = time.perf_counter()
        write_recording(path, args.minutes, args.rate, args.channels)
        print(f"{args.minutes} min, {args.rate} Hz, {args.channels} ch, 16-bit: {path.stat().st_size / 2**20:.0f} MB "
              f"on disk (written in {time.perf_counter() - started:.0f} s)")
        base = measure("baseline", path)
        one_shot = measure("one-shot", path)
        stream = measure("stream", path)
    print(f"| {'process':<44} | {'peak RSS MB':>11} | {'seconds':>8} |")
    print(f"|{'-' * 46}|{'-' * 12}:|{'-' * 9}:|")
    print(f"| {'baseline: TensorFlow + classifier, no audio':<44} | {base['peak_mb']:>11.0f} | {base['seconds']:>8.1f} |")
    print(f"| {'one-shot decode + resample of the whole file':<44} | {one_shot['peak_mb']:>11.0f} | {one_shot['seconds']:>8.1f} |")
    print(f"| {'streaming prediction, ' + str(stream['windows']) + ' windows':<44} | {stream['peak_mb']:>11.0f} | {stream['seconds']:>8.1f} |")
    extra = stream["peak_mb"] - base["peak_mb"]
    print(f"streaming prediction holds {extra:.0f} MB above the baseline; the one-shot decode alone peaks at "
          f"{one_shot['peak_mb']:.0f} MB ({one_shot['peak_mb'] / max(extra, 1):.0f}x the streaming increment)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
