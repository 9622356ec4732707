"""Row-by-row checks of the UrbanSound8K metadata, collected so every problem is reported at once.

Each problem has a kind (``KINDS``: a title and what to do about it) and examples naming the CSV
line and file; ``Problems.raise_if_any`` turns them into one ``DatasetError``. Used by
``features.dataset.load_dataset``. Pure: pandas, numpy and the standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.us8k import CLASS_NAMES, FOLDS, NUM_CLASSES, audio_relpath

INT_COLUMNS: tuple[str, ...] = ("fsID", "salience", "fold", "classID")
FLOAT_COLUMNS: tuple[str, ...] = ("start", "end")
FILE_NAME_PATTERN = re.compile(r"^(\d+)-(\d+)-(\d+)-(\d+)\.wav$")
FILE_NAME_FORMAT = "[fsID]-[classID]-[occurrenceID]-[sliceID].wav"
EXAMPLES_PER_KIND = 5

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
class Problems:
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


def _where(line: int, name: str) -> str:
    return f"line {line} ({name})" if name else f"line {line}"


def parse_values(raw: pd.DataFrame, problems: Problems) -> pd.DataFrame:
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


def check_rows(values: pd.DataFrame, problems: Problems) -> None:
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


def check_duplicates(values: pd.DataFrame, problems: Problems) -> None:
    names = values["slice_file_name"]
    repeated = values[names.duplicated(keep=False) & (names != "")]
    for name, lines in repeated.groupby("slice_file_name", sort=False)["row"]:
        problems.add("duplicate", f"{name} appears on lines {', '.join(map(str, lines))}")


def check_audio(
    root: Path, selected: pd.DataFrame, problems: Problems, skip_missing: bool
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
