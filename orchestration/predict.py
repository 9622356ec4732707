"""python -m orchestration.predict [--model URI] [--windows] [--json|--csv] PATH...

Runtime: the model loads in ~10-20 s (TensorFlow); then ~0.1 s per 4-s window on one core.

Classify recordings with a registered model (default ``models:/us8k-cnn@champion``, the
sweep's refit; any MLflow model URI of the audio pyfunc works, e.g. ``runs:/<id>/audio_model``).
PATH: audio files, or folders searched recursively for the formats libsndfile reads (WAV,
FLAC, OGG, AIFF, ...). Any sample rate, bit depth, channel count and length: recordings longer
than the training clip are classified over sliding windows (``--hop`` seconds apart) and
streamed, so an hour-long file needs little memory. Prints a table per file (top class, its
probability, the top 3) or, with ``--windows``, a timeline per file (start, end, top class,
probability); ``--json`` / ``--csv`` print machine-readable rows instead. A file that cannot
be decoded is reported with its reason and the others go on; exit code 1 if any failed, 2 for
bad arguments or a model that cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "models:/us8k-cnn@champion"
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64", ".mp3"})


def audio_files(paths: Sequence[str]) -> Iterator[Path]:
    """The given files, and the audio files under the given folders (sorted, recursive)."""
    for text in paths:
        path = Path(text).expanduser()
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            yield path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m orchestration.predict", description=__doc__.split("\n\n")[2])
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"MLflow model URI (default {DEFAULT_MODEL})")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--windows", action="store_true", help="a timeline of window predictions per file")
    p.add_argument("--hop", type=float, default=None, help="seconds between windows (default: half a window)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="JSON lines, one per file")
    out.add_argument("--csv", action="store_true", help="CSV, one row per file (per window with --windows)")
    return p


def _load(uri: str, tracking_uri: str | None):
    import mlflow

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    mlflow.set_tracking_uri(tracking_uri or mlflow.get_tracking_uri())
    return mlflow.pyfunc.load_model(uri)


def classify(model: Any, files: list[Path], hop: float | None, windows: bool, progress: bool) -> list[dict[str, Any]]:
    import pandas as pd
    from tqdm import tqdm

    params = {"per_window": windows, **({"hop_seconds": hop} if hop else {})}
    rows = []
    for path in tqdm(files, unit="file", desc="classifying", disable=not progress, file=sys.stderr):
        if not path.is_file():
            rows.append({"file": str(path), "error": "no such file (check the path)"})
            continue
        (row,) = model.predict(pd.DataFrame({"path": [str(path)]}), params=params).to_dict("records")
        row["file"] = str(path)
        if row.get("error"):
            row["error"] = row["error"].split(": ", 1)[-1]  # "row 0: reason" -> reason
        rows.append(row)
    return rows


def _top3(row: dict[str, Any]) -> str:
    probs = sorted(((k[5:], v) for k, v in row.items() if k.startswith("prob_")), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{name} {p:.2f}" for name, p in probs)


def format_rows(rows: list[dict[str, Any]], windows: bool) -> str:
    lines = []
    for row in rows:
        if row.get("error"):
            lines.append(f"{row['file']}: FAILED: {row['error']}")
            continue
        lines.append(f"{row['file']}: {row['top_class']} ({row['top_probability']:.2f}); top 3: {_top3(row)}; "
                     f"{row['windows']} window(s)")
        if windows:
            names = [k[5:] for k in row if k.startswith("prob_")]
            for w in json.loads(row["window_predictions"]):
                best = max(range(len(names)), key=lambda i: w["probabilities"][i])
                lines.append(f"  {w['start']:8.2f} - {w['end']:8.2f} s  {names[best]:<18} {w['probabilities'][best]:.2f}")
    return "\n".join(lines)


def write_machine(rows: list[dict[str, Any]], as_json: bool, windows: bool) -> None:
    import pandas as pd

    if as_json:
        for row in rows:
            if windows and row.get("window_predictions"):
                row = {**row, "window_predictions": json.loads(row["window_predictions"])}
            print(json.dumps(row, default=float))
        return
    if windows:
        flat = []
        for row in rows:
            for w in json.loads(row.get("window_predictions") or "[]"):
                flat.append({"file": row["file"], "start": w["start"], "end": w["end"],
                             **{k: p for k, p in zip([k for k in row if k.startswith("prob_")], w["probabilities"], strict=True)}})
            if row.get("error"):
                flat.append({"file": row["file"], "error": row["error"]})
        pd.DataFrame(flat).to_csv(sys.stdout, index=False)
    else:
        pd.DataFrame([{k: v for k, v in r.items() if k != "window_predictions"} for r in rows]).to_csv(sys.stdout, index=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.hop is not None and args.hop <= 0:
        print(f"error: --hop must be > 0 seconds, got {args.hop}", file=sys.stderr)
        return 2
    files = list(audio_files(args.paths))
    if not files:
        print(f"error: no audio files found in {', '.join(args.paths)}", file=sys.stderr)
        return 2
    try:
        model = _load(args.model, args.tracking_uri)
    except Exception as exc:  # MLflow raises several kinds for a missing model or alias
        print(f"error: cannot load the model {args.model}: {str(exc).splitlines()[0]}. Run a sweep with --refit "
              "(registers us8k-cnn@champion), or pass --model runs:/<run id>/audio_model", file=sys.stderr)
        return 2
    rows = classify(model, files, args.hop, args.windows, progress=not (args.json or args.csv))
    if args.json or args.csv:
        write_machine(rows, args.json, args.windows)
    else:
        print(format_rows(rows, args.windows))
    failed = sum(bool(r.get("error")) for r in rows)
    if failed:
        print(f"{failed} of {len(rows)} file(s) could not be classified; each FAILED line says why (a file that "
              "is not audio, or in a format libsndfile cannot read: convert it to WAV or FLAC, e.g. with ffmpeg)",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
