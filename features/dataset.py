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
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.dataset_checks import (
    EXAMPLES_PER_KIND,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    DatasetError,
    Problems,
    check_audio,
    check_duplicates,
    check_rows,
    parse_values,
)
from features.us8k import (
    CLASS_NAMES,
    CSV_COLUMNS,
    FOLDS,
    METADATA_RELPATH,
    audio_relpath,
    parse_folds,
)

LAYOUT = (
    "expected layout: <root>/metadata/UrbanSound8K.csv and <root>/audio/fold1 .. fold10/*.wav "
    "(the extracted UrbanSound8K archive)"
)


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
    problems = Problems(csv_path)
    values = parse_values(raw, problems)
    check_rows(values, problems)
    check_duplicates(values, problems)
    selected = values if chosen is None else values[values["fold"].isin(chosen)]
    if chosen is not None and selected.empty:
        present = ", ".join(str(int(f)) for f in sorted(values["fold"].dropna().unique()))
        problems.add(
            "selection",
            f"folds {', '.join(map(str, chosen))} selected; the CSV has folds {present or 'none'}",
        )
    missing = check_audio(root, selected, problems, skip_missing)
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
