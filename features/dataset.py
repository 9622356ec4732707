"""python -m features.dataset --data-dir DIR [--folds 1,2,10] [--skip-missing]

Runtime: about a second for the full UrbanSound8K (reads the 8,732-row CSV and stats every
audio file; audio contents are never read).

Loads and validates an UrbanSound8K tree as published::

    <root>/metadata/UrbanSound8K.csv   slice_file_name,fsID,start,end,salience,fold,classID,class
    <root>/audio/fold<N>/<slice_file_name>   named [fsID]-[classID]-[occurrenceID]-[sliceID].wav

Every problem in the metadata is collected before one ``DatasetError`` is raised, so a user
fixes everything in one go. The metadata is validated in full; audio presence is checked for
the selected folds only (those are the files that will be read). Exit codes: 0 valid,
2 invalid (the message, no traceback).

Pure module: pandas, numpy and the standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.us8k import (
    CLASS_NAMES,
    CSV_COLUMNS,
    FOLDS,
    METADATA_RELPATH,
    NUM_CLASSES,
    audio_relpath,
    parse_folds,
)

INT_COLUMNS: tuple[str, ...] = ("fsID", "salience", "fold", "classID")
FLOAT_COLUMNS: tuple[str, ...] = ("start", "end")
FILE_NAME_PATTERN = re.compile(r"^(\d+)-(\d+)-(\d+)-(\d+)\.wav$")
FILE_NAME_FORMAT = "[fsID]-[classID]-[occurrenceID]-[sliceID].wav"
EXAMPLES_PER_KIND = 5
LAYOUT = (
    "expected layout: <root>/metadata/UrbanSound8K.csv and <root>/audio/fold1 .. fold10/*.wav "
    "(the extracted UrbanSound8K archive)"
)

# Problem kinds: title shown to the user, and what to do about it.
KINDS: dict[str, tuple[str, str]] = {
    "type": (
        "values of the wrong type",
        "fsID, salience, fold and classID must be integers, start and end numbers in seconds; "
        "restore the published UrbanSound8K.csv",
    ),
    "fold": ("fold outside 1..10", "UrbanSound8K has folds 1..10; correct the fold column"),
    "classID": (
        "classID outside 0..9",
        "UrbanSound8K has classIDs 0..9; correct the classID column",
    ),
    "class": ("unknown class name", f"class must be one of: {', '.join(CLASS_NAMES)}"),
    "mismatch": (
        "classID and class disagree",
        "classIDs map to names as "
        + ", ".join(f"{i}={n}" for i, n in enumerate(CLASS_NAMES))
        + "; correct one of the two columns",
    ),
    "salience": ("salience not 1 or 2", "salience is 1 (foreground) or 2 (background)"),
    "times": (
        "bad start/end times",
        "start and end are seconds in the source recording: 0 <= start <= end",
    ),
    "duplicate": ("duplicate rows", "each slice_file_name appears once; delete the extra rows"),
    "name": (
        "file name does not match its row",
        f"slice_file_name must be {FILE_NAME_FORMAT}, with the row's fsID and classID",
    ),
    "selection": ("no rows left after fold selection", "choose folds that the CSV contains"),
    "missing": (
        "audio files missing",
        "extract the audio/fold<N>/ folders completely, or pass --skip-missing "
        "(skip_missing=True) to proceed without these clips",
    ),
}


class DatasetError(ValueError):
    """The dataset on disk cannot be used: says which file, which CSV lines, what, and what to do.

    ``kinds`` names the problem kinds found (keys of ``KINDS``, or ``"layout"``/``"csv"``/``"folds"``).
    """

    def __init__(self, message: str, kinds: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.kinds: tuple[str, ...] = tuple(kinds)


@dataclass
class _Problems:
    """Problems collected while validating: kind -> examples (each 'line N (name): what')."""

    csv_path: Path
    found: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, example: str) -> None:
        self.found.setdefault(kind, []).append(example)

    def note(self, kind: str, text: str) -> None:
        """Extra context for a kind, shown once above its examples."""
        self.notes.setdefault(kind, []).append(text)

    def raise_if_any(self) -> None:
        if not self.found:
            return
        kinds = [k for k in KINDS if k in self.found]
        parts = [f"{self.csv_path}: {len(kinds)} kind(s) of problem; fix them all and run again."]
        for kind in kinds:
            title, todo = KINDS[kind]
            examples = self.found[kind]
            parts.append(f"{title} ({len(examples)}):")
            parts.extend(f"    {note}" for note in self.notes.get(kind, []))
            parts.extend(f"    {ex}" for ex in examples[:EXAMPLES_PER_KIND])
            if len(examples) > EXAMPLES_PER_KIND:
                parts.append(f"    ... and {len(examples) - EXAMPLES_PER_KIND} more")
            parts.append(f"    what to do: {todo}")
        raise DatasetError("\n".join(parts), kinds)


@dataclass(frozen=True, eq=False)  # eq=False: a DataFrame field has no usable ==/hash
class DatasetIndex:
    """The validated clips of one UrbanSound8K tree (possibly a fold selection of it).

    ``table`` holds the CSV columns with proper dtypes, ``path`` (absolute audio path) and
    ``row`` (the CSV line number, header = line 1), in CSV order. ``missing`` lists the
    relative audio paths skipped under ``skip_missing``.
    """

    root: Path
    table: pd.DataFrame
    missing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.table)

    @property
    def folds(self) -> tuple[int, ...]:
        return tuple(sorted(int(f) for f in self.table["fold"].unique()))

    def relpaths(self) -> list[str]:
        """Audio paths relative to ``root``, in table order."""
        return [
            audio_relpath(int(f), n)
            for f, n in zip(self.table["fold"], self.table["slice_file_name"], strict=True)
        ]

    def fingerprint(self) -> str:
        """sha256 over the sorted (relpath, size, mtime_ns, fold, classID, fsID) of every row.

        Part of the feature-cache key: any change of the file list, a size or an mtime changes
        it. Files are stat-ed now, not at load time, so edits since loading are seen.
        """
        digest = hashlib.sha256()
        rows = zip(
            self.relpaths(),
            self.table["fold"],
            self.table["classID"],
            self.table["fsID"],
            strict=True,
        )
        root = str(self.root)
        for rel, fold, class_id, fs_id in sorted(rows):
            try:
                st = os.stat(os.path.join(root, rel))
            except OSError as exc:
                raise DatasetError(
                    f"{self.root / rel}: cannot stat audio file ({exc.strerror}); it changed since the "
                    "dataset was loaded: load it again"
                ) from None
            digest.update(
                f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\t{fold}\t{class_id}\t{fs_id}\n".encode()
            )
        return digest.hexdigest()

    def summary(self) -> str:
        """Clips per class and fold, recordings and total, as a small text table."""
        table = self.table
        folds = self.folds
        counts = pd.crosstab(table["classID"], table["fold"])
        lines = [
            f"UrbanSound8K at {self.root}: {len(table)} clips from {table['fsID'].nunique()} "
            f"recordings in {len(folds)} fold(s)",
            f"{'class':<20}" + "".join(f"{'f' + str(f):>6}" for f in folds) + f"{'total':>7}",
        ]
        for class_id, name in enumerate(CLASS_NAMES):
            row = counts.loc[class_id] if class_id in counts.index else pd.Series(dtype=int)
            cells = "".join(f"{int(row.get(f, 0)):>6}" for f in folds)
            lines.append(f"{class_id} {name:<18}{cells}{int(row.sum()):>7}")
        per_fold = table["fold"].value_counts()
        lines.append(
            f"{'total':<20}" + "".join(f"{int(per_fold[f]):>6}" for f in folds) + f"{len(table):>7}"
        )
        if self.missing:
            lines.append(f"skipped (audio missing): {len(self.missing)}")
        return "\n".join(lines)


def load_dataset(
    root: str | Path,
    folds: Iterable[int] | str | None = None,
    skip_missing: bool = False,
) -> DatasetIndex:
    """Validate the UrbanSound8K tree at ``root`` and index its clips.

    ``folds`` keeps only those folds (after validating the whole CSV); ``skip_missing`` drops
    rows whose audio file is missing (listed in ``missing``, with a warning) instead of failing.
    Raises ``DatasetError`` listing every problem found.
    """
    chosen = _check_fold_argument(folds)
    root = Path(root).expanduser().absolute()
    csv_path = _check_layout(root)
    raw = _read_csv(csv_path)
    warnings = _check_columns(raw, csv_path)
    raw = _drop_blank_lines(raw)
    problems = _Problems(csv_path)
    values = _parse_values(raw, problems)
    _check_rows(values, problems)
    _check_duplicates(values, problems)
    selected = values if chosen is None else values[values["fold"].isin(chosen)]
    if chosen is not None and selected.empty:
        present = ", ".join(str(int(f)) for f in sorted(values["fold"].dropna().unique()))
        problems.add(
            "selection",
            f"folds {', '.join(map(str, chosen))} selected; the CSV has folds {present or 'none'}",
        )
    missing = _check_audio(root, selected, problems, skip_missing)
    problems.raise_if_any()
    table = _build_table(root, selected, missing)
    if table.empty:
        raise DatasetError(
            f"{root}: all {len(missing)} selected audio files are missing (e.g. {missing[0]}); "
            f"nothing to load. {LAYOUT}",
            ["missing"],
        )
    if missing:
        warnings.append(
            f"skipped {len(missing)} clip(s) whose audio file is missing: "
            + ", ".join(missing[:EXAMPLES_PER_KIND])
            + (" ..." if len(missing) > EXAMPLES_PER_KIND else "")
        )
    warnings.extend(_multi_fold_warning(table))
    return DatasetIndex(root=root, table=table, missing=tuple(missing), warnings=tuple(warnings))


def _check_fold_argument(folds: Iterable[int] | str | None) -> tuple[int, ...] | None:
    if folds is None:
        return None
    if isinstance(folds, str):
        try:
            return parse_folds(folds)
        except ValueError as exc:
            raise DatasetError(str(exc), ["folds"]) from None
    chosen = list(folds)
    bad = [
        f
        for f in chosen
        if isinstance(f, bool) or not isinstance(f, int | np.integer) or f not in FOLDS
    ]
    if bad or not chosen:
        raise DatasetError(
            f"folds: {', '.join(map(repr, bad)) if bad else 'no fold given'}: "
            "choose one or more fold numbers in 1..10 (e.g. folds=(1, 2, 10))",
            ["folds"],
        )
    return tuple(sorted({int(f) for f in chosen}))


def _check_layout(root: Path) -> Path:
    """Return the metadata CSV path, or raise saying what is wrong and where to look instead."""
    csv_path = root / METADATA_RELPATH
    if not root.exists():
        problem = f"dataset root {root} does not exist"
    elif not root.is_dir():
        problem = f"dataset root {root} is not a directory"
    elif not csv_path.is_file():
        problem = f"metadata file {csv_path} not found"
        metadata_dir = root / "metadata"
        if metadata_dir.is_dir():
            csvs = sorted(p.name for p in metadata_dir.glob("*.csv"))
            problem += f" ({metadata_dir} holds: {', '.join(csvs) or 'no .csv file'})"
    else:
        return csv_path
    hint = _suggest_root(root)
    raise DatasetError(
        f"{problem}; {LAYOUT}" + (f"; did you mean --data-dir {hint}?" if hint else ""), ["layout"]
    )


def _suggest_root(root: Path) -> Path | None:
    """A nearby directory holding metadata/UrbanSound8K.csv: the user's likely intent."""
    candidates = [
        root.parent,
        root.parent.parent,
    ]  # pointed at audio/, metadata/, a fold, or the CSV
    if root.is_dir():
        candidates += sorted(p for p in root.iterdir() if p.is_dir())  # pointed at the parent
    for candidate in candidates:
        if candidate != root and (candidate / METADATA_RELPATH).is_file():
            return candidate
    return None


def _read_csv(csv_path: Path) -> pd.DataFrame:
    def fail(what: str) -> DatasetError:
        return DatasetError(
            f"{csv_path}: {what}; restore metadata/UrbanSound8K.csv from the UrbanSound8K archive",
            ["csv"],
        )

    try:
        # Everything as text, blank lines kept, so that row i is file line i + 2.
        raw = pd.read_csv(
            csv_path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError:
        raise fail("the file is empty") from None
    except UnicodeDecodeError as exc:
        raise fail(
            f"not UTF-8 text ({exc.reason} at byte {exc.start}); is it the right file?"
        ) from None
    except pd.errors.ParserError as exc:
        raise fail(f"cannot be parsed as CSV ({str(exc).strip()})") from None
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror or exc})") from None
    if raw.empty:
        raise fail("has a header but no data rows")
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw


def _check_columns(raw: pd.DataFrame, csv_path: Path) -> list[str]:
    """Raise if required columns are missing; return warnings about extra ones."""
    found = list(raw.columns)
    absent = [c for c in CSV_COLUMNS if c not in found]
    if absent:
        raise DatasetError(
            f"{csv_path}: required column(s) missing: {', '.join(absent)}; found: {', '.join(found)}. "
            f"The first line must be the header {','.join(CSV_COLUMNS)}",
            ["columns"],
        )
    extra = [c for c in found if c not in CSV_COLUMNS]
    return [f"{csv_path}: ignoring extra column(s): {', '.join(extra)}"] if extra else []


def _drop_blank_lines(raw: pd.DataFrame) -> pd.DataFrame:
    """Strip cells, number rows by file line, and drop rows that are entirely empty."""
    text = raw[list(CSV_COLUMNS)].apply(lambda col: col.str.strip())
    text.insert(len(CSV_COLUMNS), "row", np.arange(len(text)) + 2)  # header is line 1
    return text[(text[list(CSV_COLUMNS)] != "").any(axis=1)]


def _where(line: int, name: str) -> str:
    return f"line {line} ({name})" if name else f"line {line}"


def _parse_values(raw: pd.DataFrame, problems: _Problems) -> pd.DataFrame:
    """Numeric columns as float with NaN where the text is not a valid number (reported)."""
    values = raw.copy()
    for col in INT_COLUMNS + FLOAT_COLUMNS:
        number = pd.to_numeric(raw[col], errors="coerce").astype(float)
        ok = np.isfinite(number)
        if col in INT_COLUMNS:
            ok &= number == np.round(number)
        for line, name, text in zip(
            raw["row"][~ok], raw["slice_file_name"][~ok], raw[col][~ok], strict=True
        ):
            kind = "an integer" if col in INT_COLUMNS else "a number"
            problems.add("type", f"{_where(line, name)}: column {col}: {text!r} is not {kind}")
        values[col] = number.where(ok)
    return values


def _check_rows(values: pd.DataFrame, problems: _Problems) -> None:
    for rec in values.to_dict("records"):
        where = _where(rec["row"], rec["slice_file_name"])
        for kind, what in _row_problems(rec):
            problems.add(kind, f"{where}: {what}")


def _given(value: float) -> bool:
    """False for NaN: a value that failed to parse and was already reported as a type error."""
    return not pd.isna(value)


def _row_problems(rec: dict) -> list[tuple[str, str]]:
    """(kind, what) for every problem of one row."""
    found: list[tuple[str, str]] = []
    fold, class_id, salience = rec["fold"], rec["classID"], rec["salience"]
    start, end, name = rec["start"], rec["end"], rec["class"]
    if _given(fold) and fold not in FOLDS:
        found.append(("fold", f"fold {int(fold)}"))
    valid_id = _given(class_id) and 0 <= class_id < NUM_CLASSES
    if _given(class_id) and not valid_id:
        found.append(("classID", f"classID {int(class_id)}"))
    if name not in CLASS_NAMES:
        found.append(("class", f"class {name!r} is not an UrbanSound8K class"))
    elif valid_id and CLASS_NAMES[int(class_id)] != name:
        found.append(
            (
                "mismatch",
                f"classID {int(class_id)} is {CLASS_NAMES[int(class_id)]} but class says {name}",
            )
        )
    if _given(salience) and salience not in (1, 2):
        found.append(("salience", f"salience {int(salience)}"))
    if _given(start) and start < 0:
        found.append(("times", f"negative start {start:g}"))
    if _given(start) and _given(end) and end < start:
        found.append(("times", f"end {end:g} is before start {start:g}"))
    found.extend(("name", what) for what in _name_problems(rec))
    return found


def _name_problems(rec: dict) -> list[str]:
    name = rec["slice_file_name"]
    if not name:
        return ["slice_file_name is empty"]
    match = FILE_NAME_PATTERN.match(name)
    if not match:
        return [f"{name!r} is not of the form {FILE_NAME_FORMAT}"]
    found = []
    for col, text in (("fsID", match[1]), ("classID", match[2])):
        if _given(rec[col]) and int(text) != rec[col]:
            found.append(f"{col} in the name is {int(text)} but the row says {int(rec[col])}")
    return found


def _check_duplicates(values: pd.DataFrame, problems: _Problems) -> None:
    names = values["slice_file_name"]
    repeated = values[names.duplicated(keep=False) & (names != "")]
    for name, lines in repeated.groupby("slice_file_name", sort=False)["row"]:
        problems.add("duplicate", f"{name} appears on lines {', '.join(map(str, lines))}")


def _check_audio(
    root: Path, selected: pd.DataFrame, problems: _Problems, skip_missing: bool
) -> list[str]:
    """Relative paths of selected rows whose audio file is missing (a problem unless skipped)."""
    usable = selected[
        selected["fold"].isin(FOLDS) & ~selected["slice_file_name"].str.contains(r"[/\\]")
    ]
    missing: list[str] = []
    folds_missing: set[int] = set()
    for line, fold, name in zip(
        usable["row"], usable["fold"], usable["slice_file_name"], strict=True
    ):
        rel = audio_relpath(int(fold), name)
        if name and not (root / rel).is_file():
            missing.append(rel)
            folds_missing.add(int(fold))
            problems.add("missing", f"{root / rel} (line {line})")
    if skip_missing:
        problems.found.pop("missing", None)
    elif not (root / "audio").is_dir():
        problems.note("missing", f"folder {root / 'audio'} does not exist")
    else:
        absent = [
            f"fold{f}" for f in sorted(folds_missing) if not (root / f"audio/fold{f}").is_dir()
        ]
        if absent:
            problems.note(
                "missing", f"folder(s) {', '.join(absent)} do not exist under {root / 'audio'}"
            )
    return missing


def _build_table(root: Path, selected: pd.DataFrame, missing: list[str]) -> pd.DataFrame:
    rel = [
        audio_relpath(int(f), n)
        for f, n in zip(selected["fold"], selected["slice_file_name"], strict=True)
    ]
    keep = ~pd.Series(rel, index=selected.index).isin(set(missing))
    table = selected[keep].reset_index(drop=True)
    table = table.astype(
        {c: "int64" for c in INT_COLUMNS} | {c: "float64" for c in FLOAT_COLUMNS} | {"row": "int64"}
    )
    table["path"] = [str(root / r) for r, k in zip(rel, keep, strict=True) if k]
    return table[[*CSV_COLUMNS, "path", "row"]]


def _multi_fold_warning(table: pd.DataFrame) -> list[str]:
    """Recordings split across folds: tolerated (the published set has 5), but worth knowing."""
    folds_per_id = table.groupby("fsID")["fold"].unique()
    several = folds_per_id[folds_per_id.map(len) > 1]
    if several.empty:
        return []
    shown = [
        f"{fs_id} (folds {', '.join(map(str, sorted(f)))})" for fs_id, f in several.head(10).items()
    ]
    more = f" and {len(several) - 10} more" if len(several) > 10 else ""
    return [
        f"{len(several)} recording(s) (fsID) appear in more than one fold: {', '.join(shown)}{more}; "
        "their clips can land in both training and test folds (the published UrbanSound8K has 5)"
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m features.dataset",
        description="Validate an UrbanSound8K tree and summarise it.",
    )
    parser.add_argument(
        "--data-dir", required=True, help="dataset root: holds metadata/ and audio/"
    )
    parser.add_argument(
        "--folds", default=None, help="folds to keep, e.g. 1,2,10 or 1-3 (default: all)"
    )
    parser.add_argument(
        "--skip-missing", action="store_true", help="skip clips whose audio file is missing"
    )
    args = parser.parse_args(argv)
    try:
        index = load_dataset(args.data_dir, folds=args.folds, skip_missing=args.skip_missing)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in index.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(index.summary())
    print(f"fingerprint: {index.fingerprint()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
