"""Tests for features.dataset: real UrbanSound8K-shaped trees with real WAV files in tmp_path."""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from features.dataset import DatasetError, DatasetIndex, load_dataset, main
from features.us8k import CLASS_NAMES, CSV_COLUMNS, METADATA_RELPATH, audio_relpath

SAMPLE_RATE = 22_050
Row = dict[str, str]


def valid_rows() -> list[Row]:
    """Ten valid rows: one per class, folds 1..5 two each, ten distinct recordings.

    Row i is on CSV line i + 2 (the header is line 1).
    """
    rows = []
    for i, name in enumerate(CLASS_NAMES):
        fs_id = 100_000 + 17 * i
        rows.append(
            {
                "slice_file_name": f"{fs_id}-{i}-0-{i % 3}.wav",
                "fsID": str(fs_id),
                "start": f"{0.5 * i:.6f}",
                "end": f"{0.5 * i + 0.25:.6f}",
                "salience": str(1 + i % 2),
                "fold": str(1 + i // 2),
                "classID": str(i),
                "class": name,
            }
        )
    return rows


def write_wav(path: Path, seconds: float = 0.05, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = 0.1 * rng.standard_normal(int(SAMPLE_RATE * seconds)).astype(np.float32)
    sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16")


def write_csv(root: Path, rows: list[Row], columns: tuple[str, ...] = CSV_COLUMNS) -> Path:
    path = root / METADATA_RELPATH
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_dataset(
    tmp_path: Path,
    corrupt: Callable[[list[Row]], None] | None = None,
    audio: bool = True,
) -> Path:
    """Write a valid 10-row tree; ``corrupt`` edits the rows first (audio follows the edited rows)."""
    root = tmp_path / "UrbanSound8K"
    rows = valid_rows()
    if corrupt is not None:
        corrupt(rows)
    write_csv(root, rows)
    if audio:
        for i, row in enumerate(rows):
            if row["fold"].isdigit() and row["slice_file_name"]:
                write_wav(root / audio_relpath(int(row["fold"]), row["slice_file_name"]), seed=i)
    return root


def error_of(root: Path, **kwargs) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_dataset(root, **kwargs)
    return info.value


def edit(index: int, **changes: str) -> Callable[[list[Row]], None]:
    def apply(rows: list[Row]) -> None:
        rows[index].update(changes)

    return apply


# --- a valid tree -----------------------------------------------------------------------------


def test_valid_dataset_loads_with_typed_table(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    index = load_dataset(root)
    rows = valid_rows()
    assert isinstance(index, DatasetIndex)
    assert len(index) == len(rows)
    assert list(index.table.columns) == [*CSV_COLUMNS, "path", "row"]
    for col in ("fsID", "salience", "fold", "classID", "row"):
        assert index.table[col].dtype == np.int64, col
    for col in ("start", "end"):
        assert index.table[col].dtype == np.float64, col
    assert index.table["row"].tolist() == list(range(2, len(rows) + 2))
    assert index.table["slice_file_name"].tolist() == [r["slice_file_name"] for r in rows]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in index.table["path"])
    assert index.folds == tuple(sorted({int(r["fold"]) for r in rows}))
    assert index.missing == ()
    assert index.warnings == ()
    assert index.root == root


def test_summary_counts_clips_per_fold_class_and_recordings(tmp_path: Path) -> None:
    rows = valid_rows()
    index = load_dataset(make_dataset(tmp_path))
    text = index.summary()
    assert f"{len(rows)} clips from {len({r['fsID'] for r in rows})} recordings" in text
    lines = text.splitlines()
    per_fold = Counter(int(r["fold"]) for r in rows)
    total_line = next(line for line in lines if line.startswith("total"))
    assert total_line.split()[1:] == [str(per_fold[f]) for f in sorted(per_fold)] + [str(len(rows))]
    for class_id, name in enumerate(CLASS_NAMES):
        class_line = next(line for line in lines if line.startswith(f"{class_id} {name}"))
        assert class_line.split()[-1] == "1"


def test_extra_columns_are_ignored_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    rows = valid_rows()
    for row in rows:
        row["comment"] = "x"
    write_csv(root, rows, (*CSV_COLUMNS, "comment"))
    for i, row in enumerate(rows):
        write_wav(root / audio_relpath(int(row["fold"]), row["slice_file_name"]), seed=i)
    index = load_dataset(root)
    assert "comment" not in index.table.columns
    assert any("extra column" in w and "comment" in w for w in index.warnings)


def test_blank_lines_are_ignored_and_line_numbers_stay_true(tmp_path: Path) -> None:
    root = make_dataset(tmp_path, edit(3, fold="11"))
    csv_path = root / METADATA_RELPATH
    lines = csv_path.read_text().splitlines()
    lines.insert(2, "")  # a blank line 3 pushes the bad row (line 5) to line 6
    csv_path.write_text("\n".join(lines) + "\n")
    err = error_of(root)
    assert err.kinds == ("fold",)  # the blank line itself is no problem
    assert "line 6 (" in str(err)
    assert "line 5 (" not in str(err)


# --- layout and CSV-level problems -----------------------------------------------------------


def test_root_does_not_exist(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nowhere")
    assert "does not exist" in str(err)
    assert str(tmp_path / "nowhere") in str(err)
    assert err.kinds == ("layout",)


def test_root_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    err = error_of(path)
    assert "is not a directory" in str(err)
    assert str(path) in str(err)


def test_missing_csv_names_expected_path_and_layout(tmp_path: Path) -> None:
    root = tmp_path / "empty_root"
    root.mkdir()
    msg = str(error_of(root))
    assert str(root / METADATA_RELPATH) in msg
    assert "not found" in msg
    assert "audio/fold1" in msg  # the expected layout
    assert "did you mean" not in msg


def test_pointing_at_audio_folder_suggests_the_root(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    msg = str(error_of(root / "audio"))
    assert f"did you mean --data-dir {root}?" in msg


def test_pointing_at_parent_suggests_the_dataset_folder(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    assert root.parent == tmp_path
    msg = str(error_of(tmp_path))
    assert str(tmp_path / METADATA_RELPATH) in msg
    assert f"did you mean --data-dir {root}?" in msg


def test_empty_csv(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    (root / METADATA_RELPATH).write_text("")
    err = error_of(root)
    assert "empty" in str(err)
    assert str(root / METADATA_RELPATH) in str(err)


def test_header_only_csv(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    (root / METADATA_RELPATH).write_text(",".join(CSV_COLUMNS) + "\n")
    assert "no data rows" in str(error_of(root))


def test_binary_csv_is_unreadable(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    (root / METADATA_RELPATH).write_bytes(bytes([0xFF, 0xFE, 0x81, 0x90]) * 20)
    msg = str(error_of(root))
    assert "not UTF-8" in msg
    assert str(root / METADATA_RELPATH) in msg


def test_row_with_too_many_fields_names_its_line(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    csv_path = root / METADATA_RELPATH
    lines = csv_path.read_text().splitlines()
    lines[4] += ",surplus"  # line 5
    csv_path.write_text("\n".join(lines) + "\n")
    msg = str(error_of(root))
    assert "cannot be parsed as CSV" in msg
    assert "line 5" in msg


def test_missing_columns_are_named_and_found_ones_listed(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    columns = tuple(c for c in CSV_COLUMNS if c not in ("salience", "classID"))
    write_csv(root, valid_rows(), columns)
    err = error_of(root)
    msg = str(err)
    assert "column(s) missing: salience, classID" in msg
    assert "found: " + ", ".join(columns) in msg
    assert err.kinds == ("columns",)


# --- row-level problems: one test per kind ----------------------------------------------------


def test_integer_column_with_text(tmp_path: Path) -> None:
    rows = valid_rows()
    err = error_of(make_dataset(tmp_path, edit(2, fold="three")))
    msg = str(err)
    assert err.kinds == ("type",)
    assert "values of the wrong type (1):" in msg
    assert f"line 4 ({rows[2]['slice_file_name']}): column fold: 'three' is not an integer" in msg


def test_non_integral_and_number_columns(tmp_path: Path) -> None:
    def corrupt(rows: list[Row]) -> None:
        rows[0]["fsID"] = "12.5"
        rows[5]["start"] = "soon"
        rows[6]["end"] = ""

    rows = valid_rows()
    msg = str(error_of(make_dataset(tmp_path, corrupt)))
    assert "values of the wrong type (3):" in msg
    assert f"line 2 ({rows[0]['slice_file_name']}): column fsID: '12.5' is not an integer" in msg
    assert f"line 7 ({rows[5]['slice_file_name']}): column start: 'soon' is not a number" in msg
    assert f"line 8 ({rows[6]['slice_file_name']}): column end: '' is not a number" in msg


def test_fold_outside_range(tmp_path: Path) -> None:
    rows = valid_rows()
    err = error_of(make_dataset(tmp_path, edit(4, fold="11")))
    assert err.kinds == ("fold",)
    assert f"line 6 ({rows[4]['slice_file_name']}): fold 11" in str(err)
    assert "fold outside 1..10 (1):" in str(err)


def test_class_id_outside_range(tmp_path: Path) -> None:
    rows = valid_rows()
    name = rows[1]["slice_file_name"].replace("-1-", "-12-", 1)
    err = error_of(make_dataset(tmp_path, edit(1, classID="12", slice_file_name=name)))
    assert err.kinds == ("classID",)
    assert f"line 3 ({name}): classID 12" in str(err)


def test_unknown_class_name(tmp_path: Path) -> None:
    rows = valid_rows()
    err = error_of(make_dataset(tmp_path, edit(8, **{"class": "sirens"})))
    assert err.kinds == ("class",)
    assert (
        f"line 10 ({rows[8]['slice_file_name']}): class 'sirens' is not an UrbanSound8K class"
        in str(err)
    )
    assert "siren" in str(err).split("what to do:")[-1]


def test_class_id_and_class_mismatch(tmp_path: Path) -> None:
    rows = valid_rows()
    err = error_of(make_dataset(tmp_path, edit(3, **{"class": "siren"})))
    assert err.kinds == ("mismatch",)
    assert (
        f"line 5 ({rows[3]['slice_file_name']}): classID 3 is dog_bark but class says siren"
        in str(err)
    )


def test_salience_not_one_or_two(tmp_path: Path) -> None:
    rows = valid_rows()
    err = error_of(make_dataset(tmp_path, edit(7, salience="3")))
    assert err.kinds == ("salience",)
    assert f"line 9 ({rows[7]['slice_file_name']}): salience 3" in str(err)


def test_end_before_start_and_negative_start(tmp_path: Path) -> None:
    def corrupt(rows: list[Row]) -> None:
        rows[2]["start"], rows[2]["end"] = "2.0", "1.5"
        rows[4]["start"] = "-0.5"

    rows = valid_rows()
    err = error_of(make_dataset(tmp_path, corrupt))
    assert err.kinds == ("times",)
    assert f"line 4 ({rows[2]['slice_file_name']}): end 1.5 is before start 2" in str(err)
    assert f"line 6 ({rows[4]['slice_file_name']}): negative start -0.5" in str(err)


def test_duplicate_rows_give_both_lines(tmp_path: Path) -> None:
    def corrupt(rows: list[Row]) -> None:
        rows.append(dict(rows[1]))  # the copy lands on line 12

    rows = valid_rows()
    err = error_of(make_dataset(tmp_path, corrupt))
    assert err.kinds == ("duplicate",)
    assert f"{rows[1]['slice_file_name']} appears on lines 3, 12" in str(err)


def test_file_name_not_of_the_pattern(tmp_path: Path) -> None:
    err = error_of(make_dataset(tmp_path, edit(0, slice_file_name="clip_one.wav")))
    assert err.kinds == ("name",)
    assert "line 2 (clip_one.wav): 'clip_one.wav' is not of the form [fsID]-[classID]" in str(err)


def test_file_name_disagrees_with_row(tmp_path: Path) -> None:
    def corrupt(rows: list[Row]) -> None:
        rows[5]["fsID"] = "424242"
        rows[6]["slice_file_name"] = rows[6]["slice_file_name"].replace("-6-", "-2-", 1)

    rows = valid_rows()
    bad_name = rows[6]["slice_file_name"].replace("-6-", "-2-", 1)
    msg = str(error_of(make_dataset(tmp_path, corrupt)))
    assert "file name does not match its row (2):" in msg
    assert (
        f"line 7 ({rows[5]['slice_file_name']}): fsID in the name is {rows[5]['fsID']} but the row says 424242"
        in msg
    )
    assert f"line 8 ({bad_name}): classID in the name is 2 but the row says 6" in msg


def test_empty_file_name(tmp_path: Path) -> None:
    msg = str(error_of(make_dataset(tmp_path, edit(9, slice_file_name=""))))
    assert "line 11: slice_file_name is empty" in msg


# --- audio files ------------------------------------------------------------------------------


def test_missing_audio_fails_by_default(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    rows = valid_rows()
    gone = [audio_relpath(int(rows[i]["fold"]), rows[i]["slice_file_name"]) for i in (2, 7)]
    for rel in gone:
        (root / rel).unlink()
    err = error_of(root)
    msg = str(err)
    assert err.kinds == ("missing",)
    assert "audio files missing (2):" in msg
    assert f"{root / gone[0]} (line 4)" in msg
    assert f"{root / gone[1]} (line 9)" in msg
    assert "--skip-missing" in msg


def test_missing_fold_folder_is_pointed_out(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    for wav in (root / "audio/fold2").iterdir():
        wav.unlink()
    (root / "audio/fold2").rmdir()
    msg = str(error_of(root))
    assert "audio files missing (2):" in msg
    assert "fold2 do not exist" in msg


def test_skip_missing_drops_rows_and_warns(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    rows = valid_rows()
    rel = audio_relpath(int(rows[4]["fold"]), rows[4]["slice_file_name"])
    (root / rel).unlink()
    index = load_dataset(root, skip_missing=True)
    assert len(index) == len(rows) - 1
    assert index.missing == (rel,)
    assert rows[4]["slice_file_name"] not in set(index.table["slice_file_name"])
    assert index.table["row"].tolist() == [i + 2 for i in range(len(rows)) if i != 4]
    assert any("skipped 1 clip" in w and rel in w for w in index.warnings)
    assert "skipped (audio missing): 1" in index.summary()


def test_skip_missing_still_fails_on_metadata_problems(tmp_path: Path) -> None:
    root = make_dataset(tmp_path, edit(0, salience="0"))
    rows = valid_rows()
    (root / audio_relpath(int(rows[3]["fold"]), rows[3]["slice_file_name"])).unlink()
    err = error_of(root, skip_missing=True)
    assert err.kinds == ("salience",)


def test_skip_missing_with_no_audio_at_all_fails(tmp_path: Path) -> None:
    root = make_dataset(tmp_path, audio=False)
    err = error_of(root, skip_missing=True)
    assert "all 10 selected audio files are missing" in str(err)
    msg = str(error_of(root))
    assert "audio files missing (10):" in msg
    assert f"{root / 'audio'} does not exist" in msg


# --- several problems at once -----------------------------------------------------------------


def test_all_problem_kinds_are_reported_together(tmp_path: Path) -> None:
    def corrupt(rows: list[Row]) -> None:
        rows[0]["fold"] = "0"
        rows[3]["class"] = "siren"
        rows[5]["salience"] = "x"
        rows[6]["salience"] = "x"
        rows.append(dict(rows[8]))

    rows = valid_rows()
    root = make_dataset(tmp_path, corrupt)
    (root / audio_relpath(int(rows[9]["fold"]), rows[9]["slice_file_name"])).unlink()
    err = error_of(root)
    msg = str(err)
    assert set(err.kinds) == {"type", "fold", "mismatch", "duplicate", "missing"}
    assert "5 kind(s) of problem" in msg
    assert "values of the wrong type (2):" in msg
    assert f"line 2 ({rows[0]['slice_file_name']}): fold 0" in msg
    assert "line 5 (" in msg and "line 7 (" in msg and "line 8 (" in msg
    assert "appears on lines 10, 12" in msg
    assert "(line 11)" in msg


def test_examples_are_capped_with_a_count(tmp_path: Path) -> None:
    def corrupt(rows: list[Row]) -> None:
        for row in rows:
            row["salience"] = "9"

    msg = str(error_of(make_dataset(tmp_path, corrupt)))
    assert "salience not 1 or 2 (10):" in msg
    assert "line 6 (" in msg  # the fifth example
    assert "line 7 (" not in msg
    assert "... and 5 more" in msg


# --- warnings ---------------------------------------------------------------------------------


def test_recording_in_several_folds_warns_but_loads(tmp_path: Path) -> None:
    def corrupt(rows: list[Row]) -> None:
        # Row 9 (fold 5, class 9) becomes a second slice of row 0's recording (fold 1).
        rows[9]["fsID"] = rows[0]["fsID"]
        rows[9]["slice_file_name"] = f"{rows[0]['fsID']}-9-0-5.wav"

    rows = valid_rows()
    index = load_dataset(make_dataset(tmp_path, corrupt))
    assert len(index) == len(rows)
    (warning,) = index.warnings
    assert "1 recording(s) (fsID) appear in more than one fold" in warning
    assert f"{rows[0]['fsID']} (folds 1, 5)" in warning
    assert "recordings in" in index.summary()
    assert f"from {len(rows) - 1} recordings" in index.summary()


def test_several_folds_warning_only_counts_selected_folds(tmp_path: Path) -> None:
    def corrupt(rows: list[Row]) -> None:
        rows[9]["fsID"] = rows[0]["fsID"]
        rows[9]["slice_file_name"] = f"{rows[0]['fsID']}-9-0-5.wav"

    index = load_dataset(make_dataset(tmp_path, corrupt), folds=(1, 2))
    assert index.warnings == ()


# --- fold selection ---------------------------------------------------------------------------


def test_fold_selection_keeps_only_those_folds(tmp_path: Path) -> None:
    rows = valid_rows()
    root = make_dataset(tmp_path)
    index = load_dataset(root, folds=(4, 2))
    expected = [r["slice_file_name"] for r in rows if r["fold"] in ("2", "4")]
    assert index.folds == (2, 4)
    assert index.table["slice_file_name"].tolist() == expected
    assert load_dataset(root, folds="2,4").table["slice_file_name"].tolist() == expected


def test_fold_selection_validates_the_whole_file_first(tmp_path: Path) -> None:
    rows = valid_rows()
    root = make_dataset(tmp_path, edit(8, salience="5"))  # row 8 is in fold 5
    err = error_of(root, folds=(1,))
    assert f"line 10 ({rows[8]['slice_file_name']}): salience 5" in str(err)


def test_fold_selection_ignores_missing_audio_of_other_folds(tmp_path: Path) -> None:
    rows = valid_rows()
    root = make_dataset(tmp_path)
    (root / audio_relpath(int(rows[9]["fold"]), rows[9]["slice_file_name"])).unlink()
    index = load_dataset(root, folds=(1,))
    assert len(index) == sum(r["fold"] == "1" for r in rows)
    assert index.missing == ()


def test_fold_selection_with_no_rows_is_an_error(tmp_path: Path) -> None:
    err = error_of(make_dataset(tmp_path), folds=(7, 9))
    assert err.kinds == ("selection",)
    assert "folds 7, 9 selected; the CSV has folds 1, 2, 3, 4, 5" in str(err)


@pytest.mark.parametrize(
    ("folds", "expected"),
    [
        ((0,), "0"),
        ((1, 11), "11"),
        ((), "no fold given"),
        (("2",), "'2'"),
        ((True,), "True"),
        ("1,x", "'x'"),
    ],
)
def test_bad_fold_argument(tmp_path: Path, folds, expected: str) -> None:
    err = error_of(make_dataset(tmp_path), folds=folds)
    assert err.kinds == ("folds",)
    assert expected in str(err)
    assert "fold" in str(err)


# --- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_is_stable_without_changes(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    first = load_dataset(root).fingerprint()
    (root / "README.txt").write_text("not part of the index")
    (root / "audio/fold1/stray.wav").write_bytes(b"")  # not in the CSV
    again = load_dataset(root)
    assert len(first) == 64
    assert again.fingerprint() == first
    assert again.fingerprint() == first


def test_fingerprint_changes_with_file_size(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    index = load_dataset(root)
    before = index.fingerprint()
    path = Path(index.table["path"][3])
    st = path.stat()
    write_wav(path, seconds=0.08)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only the size differs
    assert path.stat().st_size != st.st_size
    assert index.fingerprint() != before


def test_fingerprint_changes_with_mtime(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    index = load_dataset(root)
    before = index.fingerprint()
    path = Path(index.table["path"][6])
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000))
    assert index.fingerprint() != before
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert index.fingerprint() == before


def test_fingerprint_changes_when_a_row_is_added(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    before = load_dataset(root).fingerprint()
    rows = valid_rows()
    extra = dict(rows[0], slice_file_name=f"{rows[0]['fsID']}-0-0-7.wav")
    write_csv(root, [*rows, extra])
    write_wav(root / audio_relpath(int(extra["fold"]), extra["slice_file_name"]), seed=99)
    after = load_dataset(root)
    assert len(after) == len(rows) + 1
    assert after.fingerprint() != before


def test_fingerprint_ignores_row_order_but_not_fold_selection(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    before = load_dataset(root).fingerprint()
    write_csv(root, valid_rows()[::-1])
    assert load_dataset(root).fingerprint() == before
    assert load_dataset(root, folds=(1, 2)).fingerprint() != before


def test_fingerprint_raises_if_a_file_vanished(tmp_path: Path) -> None:
    index = load_dataset(make_dataset(tmp_path))
    Path(index.table["path"][0]).unlink()
    with pytest.raises(DatasetError, match="load it again"):
        index.fingerprint()


# --- CLI --------------------------------------------------------------------------------------


def test_cli_valid_dataset_exits_0_with_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_dataset(tmp_path)
    assert main(["--data-dir", str(root)]) == 0
    out = capsys.readouterr()
    assert f"{len(valid_rows())} clips from" in out.out
    assert f"fingerprint: {load_dataset(root).fingerprint()}" in out.out
    assert out.err == ""


def test_cli_invalid_dataset_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_dataset(tmp_path, edit(3, fold="12"))
    assert main(["--data-dir", str(root)]) == 2
    out = capsys.readouterr()
    assert out.err.startswith("error: ")
    assert "fold 12" in out.err and "line 5" in out.err
    assert "Traceback" not in out.err
    assert out.out == ""


def test_cli_folds_and_skip_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dataset(tmp_path)
    rows = valid_rows()
    rel = audio_relpath(int(rows[0]["fold"]), rows[0]["slice_file_name"])
    (root / rel).unlink()
    assert main(["--data-dir", str(root), "--folds", "1,2"]) == 2
    assert rel in capsys.readouterr().err
    assert main(["--data-dir", str(root), "--folds", "1,2", "--skip-missing"]) == 0
    out = capsys.readouterr()
    assert f"warning: skipped 1 clip(s) whose audio file is missing: {rel}" in out.err
    kept = sum(r["fold"] in ("1", "2") for r in rows) - 1
    assert f"{kept} clips from" in out.out


def test_cli_bad_folds_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(make_dataset(tmp_path)), "--folds", "0"]) == 2
    err = capsys.readouterr().err
    assert "fold 0 is outside 1..10" in err


def test_cli_missing_root_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err
