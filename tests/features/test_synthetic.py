"""The synthetic UrbanSound8K generator, checked on real WAV files written to tmp_path."""

from __future__ import annotations

import csv
import hashlib
import itertools
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from features import synthetic
from features.us8k import CLASS_NAMES, CSV_COLUMNS, FOLDS, METADATA_RELPATH, audio_relpath

NAME_RE = re.compile(r"^(\d+)-(\d)-(\d+)-(\d+)\.wav$")
ALL_SUBTYPES = {"PCM_16", "PCM_24", "PCM_U8", "PCM_32", "FLOAT", "IMA_ADPCM"}


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / METADATA_RELPATH, newline="") as fh:
        return list(csv.DictReader(fh))


def _wav_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.glob("audio/fold*/*.wav"))
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """The tiny preset, seed 0, generated once for the module."""
    root = tmp_path_factory.mktemp("synthetic") / "tiny0"
    synthetic.generate(root, "tiny", seed=0)
    rows = _rows(root)
    infos = {
        r["slice_file_name"]: sf.info(
            str(root / audio_relpath(int(r["fold"]), r["slice_file_name"]))
        )
        for r in rows
    }
    return {"root": root, "rows": rows, "infos": infos}


def test_layout_and_schema(tiny):
    root = tiny["root"]
    with open(root / METADATA_RELPATH, newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == CSV_COLUMNS
    names = [r["slice_file_name"] for r in tiny["rows"]]
    assert names == sorted(names), "rows are sorted by file name, like the real CSV"
    expected = {audio_relpath(int(r["fold"]), r["slice_file_name"]) for r in tiny["rows"]}
    on_disk = {p.relative_to(root).as_posix() for p in root.glob("audio/**/*") if p.is_file()}
    assert on_disk == expected
    marker = synthetic.read_marker(root)
    assert marker is not None
    assert marker["clips"] == len(tiny["rows"]) == 200
    assert marker["seed"] == 0 and marker["preset"]["name"] == "tiny"
    assert not (root / synthetic.IN_PROGRESS_NAME).exists()


def test_ten_folds_by_ten_classes_with_preset_counts(tiny):
    per = Counter((int(r["fold"]), int(r["classID"])) for r in tiny["rows"])
    k = synthetic.PRESETS["tiny"].clips_per_class_fold
    assert per == {(fold, c): k for fold in FOLDS for c in range(len(CLASS_NAMES))}
    for r in tiny["rows"]:
        assert r["class"] == CLASS_NAMES[int(r["classID"])]
        assert r["salience"] in ("1", "2")


def test_recordings_stay_in_one_fold_and_class_and_give_several_slices(tiny):
    by_rec: dict[str, list[dict[str, str]]] = {}
    for r in tiny["rows"]:
        by_rec.setdefault(r["fsID"], []).append(r)
    for fs_id, rows in by_rec.items():
        assert int(fs_id) > 0
        assert len({r["fold"] for r in rows}) == 1, f"fsID {fs_id} spans folds"
        assert len({r["classID"] for r in rows}) == 1, f"fsID {fs_id} spans classes"
        assert len(rows) >= 2, f"fsID {fs_id} has a single slice"
    assert len(by_rec) < len(tiny["rows"])


def test_file_names_match_their_rows(tiny):
    names = [r["slice_file_name"] for r in tiny["rows"]]
    assert len(set(names)) == len(names)
    for r in tiny["rows"]:
        m = NAME_RE.match(r["slice_file_name"])
        assert m, r["slice_file_name"]
        assert m.group(1) == r["fsID"] and m.group(2) == r["classID"]


def test_slices_are_consecutive_segments_of_an_occurrence(tiny):
    occurrences: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    for r in tiny["rows"]:
        _, _, occ, slice_id = NAME_RE.match(r["slice_file_name"]).groups()
        occurrences.setdefault((r["fsID"], occ), []).append(
            (int(slice_id), float(r["start"]), float(r["end"]))
        )
    several = 0
    for key, slices in occurrences.items():
        slices.sort()
        several += len(slices) > 1
        for (id_a, start_a, end_a), (id_b, start_b, _) in itertools.pairwise(slices):
            assert id_b == id_a + 1, key
            # Full-length, up to IMA ADPCM rounding down to whole blocks (< 0.1 s).
            assert 3.9 < end_a - start_a <= 4.0 + 1e-6, key
            assert start_b == pytest.approx(end_a, abs=1e-5), key
    assert several > 0


def test_real_format_mix_is_present(tiny):
    infos = tiny["infos"]
    subtypes = Counter(i.subtype for i in infos.values())
    rates = Counter(i.samplerate for i in infos.values())
    channels = Counter(i.channels for i in infos.values())
    print(f"subtypes {dict(subtypes)}; rates {dict(rates)}; channels {dict(channels)}")
    assert set(subtypes) >= ALL_SUBTYPES
    assert set(channels) == {1, 2}
    assert len(rates) >= 4
    assert subtypes.most_common(1)[0][0] == "PCM_16"
    assert channels[2] > channels[1]
    assert {44_100, 48_000} <= set(rates)
    for info in infos.values():
        assert info.format == "WAV"
    # A recording keeps its format across its slices.
    per_rec: dict[str, set] = {}
    for r in tiny["rows"]:
        i = infos[r["slice_file_name"]]
        per_rec.setdefault(r["fsID"], set()).add((i.samplerate, i.subtype, i.channels))
    assert all(len(f) == 1 for f in per_rec.values())


def test_durations_are_realistic_and_match_the_csv(tiny):
    durations: dict[str, list[float]] = {c: [] for c in CLASS_NAMES}
    full = 0
    for r in tiny["rows"]:
        info = tiny["infos"][r["slice_file_name"]]
        seconds = info.frames / info.samplerate
        assert seconds == pytest.approx(
            float(r["end"]) - float(r["start"]), abs=1e-5 + 1 / info.samplerate
        )
        assert 0 < seconds <= 4.0
        full += info.frames == 4 * info.samplerate
        durations[r["class"]].append(seconds)
    share = full / len(tiny["rows"])
    print(
        f"4 s clips: {share:.0%}; gun_shot median {np.median(durations['gun_shot']):.2f} s; "
        f"car_horn median {np.median(durations['car_horn']):.2f} s"
    )
    assert 0.7 <= share < 0.95
    assert np.median(durations["gun_shot"]) < 2.5
    assert min(durations["car_horn"]) < 4.0
    assert min(min(d) for d in durations.values()) < 0.15, "a very short clip, as in the real set"


def test_audio_is_finite_audible_and_never_clips(tiny):
    root = tiny["root"]
    for r in tiny["rows"]:
        audio, sr = sf.read(
            root / audio_relpath(int(r["fold"]), r["slice_file_name"]), always_2d=True
        )
        info = tiny["infos"][r["slice_file_name"]]
        assert audio.shape == (info.frames, info.channels) and sr == info.samplerate
        peak = float(np.abs(audio).max())
        assert np.isfinite(audio).all()
        assert 0.01 < peak < 0.99, f"{r['slice_file_name']}: peak {peak}"


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tiny, tmp_path):
    again = synthetic.generate(tmp_path / "again", "tiny", seed=0)
    assert (again / METADATA_RELPATH).read_bytes() == (tiny["root"] / METADATA_RELPATH).read_bytes()
    assert _wav_hashes(again) == _wav_hashes(tiny["root"])
    other = synthetic.generate(tmp_path / "other", "tiny", seed=1)
    assert (other / METADATA_RELPATH).read_bytes() != (tiny["root"] / METADATA_RELPATH).read_bytes()
    assert not set(_wav_hashes(other).values()) & set(_wav_hashes(tiny["root"]).values())


def test_a_recording_renders_the_same_alone(tiny):
    """Audio depends on (seed, recording) only, not on what was generated before it."""
    preset = synthetic.PRESETS["tiny"]
    plan = synthetic.build_plan(preset, seed=0)
    rec = plan[len(plan) // 2 + 3]
    for s, audio in synthetic.render_recording(rec, preset, seed=0):
        path = tiny["root"] / audio_relpath(s.fold, s.file_name)
        assert synthetic.wav_bytes(audio, rec.fmt) == path.read_bytes()


# ------------------------------------------------------------------ learnability


def _mel_edges(n_bands: int = 40, fmax: float = 11_025.0) -> np.ndarray:
    mel = np.linspace(0.0, 2595.0 * np.log10(1.0 + fmax / 700.0), n_bands + 2)
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def _band_features(path: Path) -> np.ndarray:
    """Mean and spread over time of 40 mel-spaced log band energies, level-normalised."""
    audio, sr = sf.read(path, always_2d=True)
    x = audio.mean(axis=1)
    nper = 1 << round(np.log2(0.046 * sr))  # ~46 ms windows whatever the sample rate
    x = np.pad(x, (0, max(0, nper - len(x))))
    freqs, _, z = signal.stft(x, fs=sr, nperseg=nper, noverlap=nper // 2)
    edges = _mel_edges()
    bands = ((freqs[None, :] >= edges[:-2, None]) & (freqs[None, :] < edges[2:, None])).astype(
        float
    )
    energy = bands @ (np.abs(z) ** 2)
    log_e = np.log10(energy + 1e-8 * energy.max() + 1e-20)
    log_e -= log_e.mean()
    return np.concatenate([log_e.mean(axis=1), log_e.std(axis=1)])


def test_classes_are_learnable_but_not_trivial(tiny):
    rows = tiny["rows"]
    feats = np.stack(
        [
            _band_features(tiny["root"] / audio_relpath(int(r["fold"]), r["slice_file_name"]))
            for r in rows
        ]
    )
    labels = np.array([int(r["classID"]) for r in rows])
    train = np.array([int(r["fold"]) <= 8 for r in rows])
    mu, sd = feats[train].mean(axis=0), feats[train].std(axis=0) + 1e-9
    z = (feats - mu) / sd
    centroids = np.stack([z[train & (labels == c)].mean(axis=0) for c in range(len(CLASS_NAMES))])
    pred = np.argmin(((z[~train, None, :] - centroids[None]) ** 2).sum(axis=-1), axis=1)
    accuracy = float((pred == labels[~train]).mean())
    print(f"nearest-centroid accuracy, folds 1-8 -> 9-10: {accuracy:.3f} (chance 0.100)")
    assert accuracy > 0.4
    assert accuracy < 0.95


# ------------------------------------------------------------------ ensure / CLI / presets


def test_ensure_synthetic_reuses_a_complete_dataset_and_regenerates_otherwise(tmp_path):
    root = tmp_path / "ds"
    synthetic.ensure_synthetic(root, "tiny", seed=5, clips_per_class_fold=1)
    marker = synthetic.read_marker(root)
    assert marker["clips"] == 100 and marker["seed"] == 5
    written = {p: p.stat().st_mtime_ns for p in [root / METADATA_RELPATH, *root.glob("audio/fold*/*.wav")]}
    assert synthetic.ensure_synthetic(root, "tiny", seed=5, clips_per_class_fold=1) == root
    assert {p: p.stat().st_mtime_ns for p in written} == written  # nothing written again

    synthetic.ensure_synthetic(root, "tiny", seed=6, clips_per_class_fold=1)
    assert synthetic.read_marker(root)["seed"] == 6
    listed = {audio_relpath(int(r["fold"]), r["slice_file_name"]) for r in _rows(root)}
    assert set(_wav_hashes(root)) == listed, "no stale clips of the previous dataset remain"


def test_an_interrupted_generation_is_redone(tmp_path):
    root = synthetic.generate(tmp_path / "ds", "tiny", seed=2, clips_per_class_fold=1)
    (root / synthetic.MARKER_NAME).unlink()
    (root / synthetic.IN_PROGRESS_NAME).write_text("interrupted\n")
    synthetic.ensure_synthetic(root, "tiny", seed=2, clips_per_class_fold=1)
    assert synthetic.read_marker(root)["clips"] == 100
    assert not (root / synthetic.IN_PROGRESS_NAME).exists()


def test_refuses_to_overwrite_a_dataset_it_did_not_write(tmp_path):
    csv_path = tmp_path / METADATA_RELPATH
    csv_path.parent.mkdir(parents=True)
    csv_path.write_text(",".join(CSV_COLUMNS) + "\n")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        synthetic.ensure_synthetic(tmp_path, "tiny", seed=0)
    assert csv_path.read_text() == ",".join(CSV_COLUMNS) + "\n"
    assert synthetic.main(["--out", str(tmp_path), "--preset", "tiny"]) == 2


def test_cli_writes_a_dataset_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        synthetic.main(
            ["--out", str(out), "--preset", "tiny", "--seed", "3", "--clips-per-class-fold", "1"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "wrote 100 clips" in printed and "subtypes" in printed
    marker = synthetic.read_marker(out)
    assert marker["seed"] == 3 and marker["preset"]["clips_per_class_fold"] == 1
    assert len(_rows(out)) == 100
    with pytest.raises(SystemExit):
        synthetic.main(["--out", str(out), "--clips-per-class-fold", "0"])
    with pytest.raises(SystemExit):
        synthetic.main(["--out", str(out), "--preset", "huge"])


def test_presets_and_their_sizes():
    sizes = {name: p.clips_per_class_fold for name, p in synthetic.PRESETS.items()}
    assert sizes == {"tiny": 2, "demo": 3, "bench": 5, "shifted": 5, "tiny-shifted": 2}
    demo = synthetic.PRESETS["demo"]
    assert synthetic.SyntheticPreset.from_dict(demo.to_dict()) == demo
    with pytest.raises(ValueError, match="unknown key"):
        synthetic.SyntheticPreset.from_dict(demo.to_dict() | {"clips": 3})
    with pytest.raises(ValueError, match="clips_per_class_fold"):
        synthetic.SyntheticPreset(clips_per_class_fold=0)
    with pytest.raises(ValueError, match="peak_dbfs"):
        synthetic.SyntheticPreset(peak_dbfs=(-6.0, 0.0))
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        synthetic.resolve_preset("huge")
    assert synthetic.resolve_preset("bench", 7).clips_per_class_fold == 7
    with pytest.raises(ValueError, match="seed"):
        synthetic.generate("/nonexistent-never-written", "tiny", seed=-1)


def test_plan_counts_follow_the_override():
    preset = synthetic.resolve_preset("tiny", 7)
    plan = synthetic.build_plan(preset, seed=0)
    per = Counter((rec.fold, rec.class_id) for rec in plan for _ in rec.slices)
    assert set(per.values()) == {7}
    sizes = [len(rec.slices) for rec in plan]
    assert (
        min(sizes) >= preset.min_slices_per_recording
        and max(sizes) <= preset.max_slices_per_recording
    )
    assert len({rec.fs_id for rec in plan}) == len(plan)
