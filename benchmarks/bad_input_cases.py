"""The bad-input table (``CASES``): each kind, the entry point it goes through, how it is built,
and what the user must see. Run by ``python -m benchmarks.bad_inputs`` and by
``tests/test_bad_input.py``; the README's "Bad input" table is that command's output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.bad_input_files import (
    BAD_LINE,
    bad_clip,
    base_rows,
    full_disk,
    nan_wav,
    noise,
    unwritable_folder,
    wav_bytes,
    write_hour,
    write_tree,
)
from benchmarks.bad_inputs import Built, Case
from features.us8k import CSV_COLUMNS

NO_MOUNT = "needs root, to mount a 1 MiB tmpfs (a full disk cannot be made otherwise without mocks)"
Stack = contextlib.ExitStack
BAD = "<tmp>/data/audio/fold2/100004-3-0-0.wav"


# ---------------------------------------------------------------------------------------------
# The dataset layer: python -m features.dataset --data-dir ROOT


def _dataset(kind: str, edit: Callable[[list], tuple | None], expect: tuple[str, ...],
             after: Callable[[Path], None] | None = None) -> Case:
    def build(tmp: Path, stack: Stack) -> Built:
        rows = base_rows()
        header = edit(rows) or CSV_COLUMNS
        root = write_tree(tmp / "data", rows, header)
        if after is not None:
            after(root)
        return Built(("--data-dir", str(root)))

    return Case(kind, "features.dataset", build, 2, expect)


def _set(index: int, column: str, value: str) -> Callable[[list], None]:
    def edit(rows: list) -> None:
        rows[index][column] = value

    return edit


def _folds_0_11(rows: list) -> None:
    rows[0]["fold"], rows[1]["fold"] = "0", "11"


DATASET = [
    _dataset("missing metadata CSV", lambda rows: None,
             ("metadata file <tmp>/data/metadata/UrbanSound8K.csv not found",
              "expected layout: <root>/metadata/UrbanSound8K.csv"),
             after=lambda root: (root / "metadata/UrbanSound8K.csv").unlink()),
    _dataset("wrong CSV header", lambda rows: ("file", *CSV_COLUMNS[1:]),
             ("UrbanSound8K.csv: required column(s) missing: slice_file_name",
              "The first line must be the header slice_file_name,fsID,start,end")),
    _dataset("fold 0 / 11 in the CSV", _folds_0_11,
             ("fold outside 1..10 (2):", "line 2 (100001-0-0-0.wav): fold 0", "line 3 (100002-1-0-0.wav): fold 11",
              "what to do: UrbanSound8K has folds 1..10; correct the fold column")),
    _dataset("unknown class", _set(-1, "class", "cat"),
             ("unknown class name (1):", f"line {BAD_LINE} (100004-3-0-0.wav): class 'cat' is not an UrbanSound8K class",
              "what to do: class must be one of: air_conditioner")),
    _dataset("classID / class mismatch", _set(-1, "class", "siren"),
             ("classID and class disagree (1):", f"line {BAD_LINE} (100004-3-0-0.wav): classID 3 is dog_bark but class says siren",
              "what to do: classIDs map to names as 0=air_conditioner")),
    _dataset("duplicate row", lambda rows: rows.append(dict(rows[0])),
             ("duplicate rows (1):", "100001-0-0-0.wav appears on lines 2, 6", "what to do: each slice_file_name appears once")),
    _dataset("file name not matching its row", _set(-1, "slice_file_name", "999-3-0-0.wav"),
             ("file name does not match its row (1):", f"line {BAD_LINE} (999-3-0-0.wav): fsID in the name is 999 but the row says 100004",
              "what to do: slice_file_name must be [fsID]-[classID]-[occurrenceID]-[sliceID].wav")),
    _dataset("missing audio file", lambda rows: None,
             ("audio files missing (1):", f"{BAD} (line {BAD_LINE})",
              "what to do: extract the audio/fold<N>/ folders completely, or pass --skip-missing"),
             after=lambda root: bad_clip(root).unlink()),
]


# ---------------------------------------------------------------------------------------------
# Extraction: python -m features.extract --data-dir ROOT --cache-dir CACHE


def _cached(root: Path, cache: Path, clips: int) -> str | None:
    """Every fold in the cache (nothing computed is lost), ``clips`` clips, finite features."""
    from features.cache import fold_entry, read_fold
    from features.config import FeatureConfig
    from features.dataset import load_dataset

    index = load_dataset(root)
    total = 0
    for fold in index.folds:
        sub = index.table[index.table["fold"] == fold]
        entry = fold_entry(cache, FeatureConfig(), fold, dataclasses.replace(index, table=sub).fingerprint())
        if not entry.exists():
            return f"fold {fold} is not in the cache"
        features = read_fold(entry)[0].features
        if not np.isfinite(features).all():
            return f"fold {fold}: non-finite features in the cache"
        total += len(features)
    return None if total == clips else f"{total} clips cached, expected {clips}"


def _audio(kind: str, content: Callable[[], bytes], reason: str | None, root_name: str = "data") -> Case:
    """The base tree with the last clip's file replaced by ``content``: left out with
    ``reason`` (the rest extracted and cached), or, if ``reason`` is None, extracted like any clip."""
    def build(tmp: Path, stack: Stack) -> Built:
        root = write_tree(tmp / root_name)
        bad_clip(root).write_bytes(content())
        cache = tmp / "cache"
        clips = 4 if reason is None else 3
        return Built(("--data-dir", str(root), "--cache-dir", str(cache)), check=lambda out: _cached(root, cache, clips))

    if reason is None:
        expect = ("features: 4 clips x (40, 174) (0 failed) from folds 1, 2",)
    else:
        expect = ("features: 3 clips x (40, 174) (1 failed) from folds 1, 2",
                  f"{BAD} (CSV line {BAD_LINE}, fold 2): {reason}", "what to do: nothing, to go on without them")
    return Case(kind, "features.extract", build, 0, expect)


def _good_wav() -> bytes:
    return wav_bytes(noise(0.5))


def _cache_folder(kind: str, make: Callable[[Path, Stack], tuple[Path, str] | None], cause: str | None) -> Case:
    def build(tmp: Path, stack: Stack) -> Built | str:
        root = write_tree(tmp / "data")
        made = make(tmp, stack)
        if made is None:
            return NO_MOUNT
        folder, why = made
        cache = folder / "cache"
        before = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else None
        after = lambda out: (f"{cache} was created" if cache.exists() else  # noqa: E731
                             "files left behind" if before is not None and sorted(p.name for p in folder.iterdir()) != before else None)
        return Built(("--data-dir", str(root), "--cache-dir", str(cache)), {"cache": str(cache), "cause": cause or why}, after)

    return Case(kind, "features.extract", build, 2,
                ("error: feature cache folder <cache>:", "<cause>", "choose another with --cache-dir"))


def _full(leave: int) -> Callable[[Path, Stack], tuple[Path, str] | None]:
    def make(tmp: Path, stack: Stack) -> tuple[Path, str] | None:
        folder = full_disk(tmp, stack, leave)
        return None if folder is None else (folder, "")

    return make


EXTRACT = [
    _audio("empty audio file (0 bytes)", lambda: b"", "cannot decode audio: the file is empty (0 bytes)"),
    _audio("truncated WAV header", lambda: _good_wav()[:24], "cannot decode audio: damaged RIFF header"),
    _audio("truncated audio data", lambda: _good_wav()[: len(_good_wav()) // 2], "truncated: the header declares 22050 bytes of audio"),
    _audio("garbage bytes", lambda: np.random.default_rng(1).bytes(5000),
           "cannot decode audio: not an audio format libsndfile reads (it starts with bytes ff e4"),
    _audio("a text file named .wav", lambda: b"This is a text file, not a WAV.\n" * 10,
           "cannot decode audio: a text file, not audio (it starts 'This is a text file, not a WAV.')"),
    _audio("NaN / inf samples", nan_wav, "2 NaN/Inf samples in the audio"),
    _audio("0.05 s clip (centre zero-padded)", lambda: wav_bytes(noise(0.05)), None),
    _audio("silence (constant features)", lambda: wav_bytes(np.zeros(11_025, np.float32)), None),
    _audio("192 kHz (resampled)", lambda: wav_bytes(noise(0.5, 192_000), 192_000), None),
    _audio("8-bit (PCM_U8)", lambda: wav_bytes(noise(0.5), subtype="PCM_U8"), None),
    _audio("4-bit IMA ADPCM", lambda: wav_bytes(noise(0.5), subtype="IMA_ADPCM"), None),
    _audio("stereo (downmixed)", lambda: wav_bytes(noise(0.5, channels=2)), None),
    _audio("path with spaces and non-ASCII", _good_wav, None, root_name="my data/Ürban Sound 8K — 音"),
    _cache_folder("unwritable cache folder", unwritable_folder, None),
    _cache_folder("cache on a full disk", _full(0), "No space left on device"),
    _cache_folder("cache on a nearly full disk", _full(64 * 1024), "free on its disk, about"),
]


# ---------------------------------------------------------------------------------------------
# The sweep CLI: python -m orchestration.cv_sweep ... (--dry-run: plan-time checks only)


def _sweep(kind: str, flags: Callable[[Path, Stack], tuple[dict[str, str], dict[str, str]] | None],
           expect: tuple[str, ...], edit: Callable[[list], None] | None = None) -> Case:
    def build(tmp: Path, stack: Stack) -> Built | str:
        rows = base_rows()
        if edit is not None:
            edit(rows)
        base = {"--data-dir": str(write_tree(tmp / "data", rows)), "--cache-dir": str(tmp / "cache"),
                "--storage-path": str(tmp / "ray"), "--tracking-uri": f"sqlite:///{tmp}/mlflow.db", "--folds": "1,2"}
        made = flags(tmp, stack)
        if made is None:
            return NO_MOUNT
        changed, fill = made
        argv = tuple(x for flag, value in {**base, **changed}.items() for x in (flag, value))
        written = [tmp / "cache", tmp / "ray", tmp / "mlflow.db"]
        return Built(argv, fill, lambda out: next((f"{p} was written" for p in written if p.exists()), None))

    return Case(kind, "orchestration.cv_sweep", build, 2, expect)


def _config_file(tmp: Path, stack: Stack) -> tuple[dict[str, str], dict[str, str]]:
    path = tmp / "sweep.yaml"
    path.write_text("train:\n  epochs: 2\n  learning_rat: 0.001\n")
    return {"--config": str(path)}, {}


def _flags(**flags: str) -> Callable[[Path, Stack], tuple[dict[str, str], dict[str, str]]]:
    return lambda tmp, stack: ({f"--{k.replace('_', '-')}": v for k, v in flags.items()}, {})


def _unwritable(flag: str) -> Callable[[Path, Stack], tuple[dict[str, str], dict[str, str]]]:
    def make(tmp: Path, stack: Stack) -> tuple[dict[str, str], dict[str, str]]:
        folder, cause = unwritable_folder(tmp, stack)
        value = f"sqlite:///{folder}/mlflow.db" if flag == "--tracking-uri" else str(folder / "ray")
        return {flag: value}, {"folder": str(folder), "cause": cause}

    return make


def _full_tracking(tmp: Path, stack: Stack) -> tuple[dict[str, str], dict[str, str]] | None:
    folder = full_disk(tmp, stack)
    return None if folder is None else ({"--tracking-uri": f"sqlite:///{folder}/mlflow.db"}, {"folder": str(folder)})


SWEEP = [
    _sweep("config file with an unknown key", _config_file,
           ("error: config file <tmp>/sweep.yaml: TrainConfig: unknown key(s) learning_rat (did you mean learning_rate?)",)),
    _sweep("search space with an empty choice list", _flags(search_space='{"learning_rate": []}'),
           ("error: sweep.search_space.learning_rate: empty list of values; give at least one value",)),
    _sweep("search space with an empty {choice: []}", _flags(search="random", search_space='{"dropout2": {"choice": []}}'),
           ("error: sweep.search_space.dropout2: choice needs a non-empty list of values, got []",)),
    _sweep("--folds 0 / 11", _flags(folds="0,11"), ("error: folds: fold 0 is outside 1..10",)),
    _sweep("bad metadata (checked at plan time)", _flags(), ("unknown class name (1):", f"line {BAD_LINE} (100004-3-0-0.wav)"),
           edit=_set(-1, "class", "cat")),
    _sweep("unwritable Ray storage folder", _unwritable("--storage-path"),
           ("error: Ray storage folder <folder>/ray:", "<cause>", "choose another with --storage-path")),
    _sweep("unwritable tracking folder", _unwritable("--tracking-uri"), ("<folder>", "--tracking-uri")),
    _sweep("tracking store on a full disk", _full_tracking,
           ("error: MLflow tracking folder <folder>: cannot write there (No space left on device)",)),
]


# ---------------------------------------------------------------------------------------------
# Prediction: python -m orchestration.predict --model URI PATH...


def _predict(kind: str, files: Callable[[Path], dict[str, Path]], rc: int, expect: tuple[str, ...]) -> Case:
    def build(tmp: Path, stack: Stack) -> Built:
        made = files(tmp)
        return Built(tuple(str(p) for p in made.values()), {k: str(p) for k, p in made.items()})

    return Case(kind, "orchestration.predict", build, rc, expect)


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _hour(tmp: Path, stack: Stack) -> Built:
    short = _write(tmp / "short.wav", wav_bytes(noise(4.0)))
    long = write_hour(tmp / "one hour.wav")
    whole_mb = 3600 * 22_050 * 4 / 2**20  # float32 at the feature rate

    def check(out: str) -> str | None:
        traced = re.search(r"memory peaked at (\d+) MB", out)
        grew = re.search(r"\(\+(-?\d+) MB", out)
        windows = re.search(r"(\d+) window\(s\)", out)
        if not traced or not grew or not windows:
            return "no memory figures or window count in the output"
        if int(windows[1]) < 1700:  # 2.02 s apart over an hour: 1,781
            return f"only {windows[1]} windows"
        if int(traced[1]) > whole_mb / 8:
            return f"Python + numpy memory peaked at {traced[1]} MB on the long file"
        return None if int(grew[1]) < whole_mb else f"RSS grew by {grew[1]} MB on the long file"

    return Built((str(short), str(long), f"{whole_mb:.1f}"), {"long": str(long)}, check)


PREDICT = [
    Case("1-hour recording (streamed: bounded memory)", "orchestration.predict, peak RSS", _hour, 0,
         ("<long>: ", "window(s)", "memory peaked at")),
    _predict("path with spaces and non-ASCII", lambda tmp: {"file": _write(tmp / "my recordings" / "rue de l'Église — 街.wav",
                                                                           wav_bytes(noise(3.0)))},
             0, ("<file>: ", "1 window(s)")),
    _predict("a text file named .wav, beside a good file",
             lambda tmp: {"bad": _write(tmp / "notes.wav", b"meeting notes\n" * 20), "good": _write(tmp / "good.wav", _good_wav())},
             1, ("<bad>: FAILED: cannot decode audio: a text file, not audio", "<good>: ",
                 "1 of 2 file(s) could not be classified")),
    _predict("missing file", lambda tmp: {"missing": tmp / "absent.wav", "good": _write(tmp / "good.wav", _good_wav())},
             1, ("<missing>: FAILED: no such file",)),
    _predict("0.05 s clip", lambda tmp: {"file": _write(tmp / "click.wav", wav_bytes(noise(0.05)))}, 0, ("<file>: ", "1 window(s)")),
]

CASES: tuple[Case, ...] = (*DATASET, *EXTRACT, *SWEEP, *PREDICT)
