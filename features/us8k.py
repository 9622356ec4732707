"""Facts about UrbanSound8K as published (metadata v1), shared by the loader and the generator."""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
)
NUM_CLASSES = len(CLASS_NAMES)
FOLDS: tuple[int, ...] = tuple(range(1, 11))
METADATA_RELPATH = "metadata/UrbanSound8K.csv"
CSV_COLUMNS: tuple[str, ...] = (
    "slice_file_name",
    "fsID",
    "start",
    "end",
    "salience",
    "fold",
    "classID",
    "class",
)
MAX_CLIP_SECONDS = 4.0


def audio_relpath(fold: int, slice_file_name: str) -> str:
    """Path of a clip relative to the dataset root: ``audio/fold<N>/<name>``."""
    return f"audio/fold{fold}/{slice_file_name}"


def parse_folds(text: str) -> tuple[int, ...]:
    """Parse ``"1,2,10"`` (or ``"1-3,10"``) into sorted unique folds, each in 1..10."""
    folds: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                chosen = range(lo, hi + 1)
            else:
                chosen = [int(part)]
        except ValueError:
            raise ValueError(f"folds: {part!r} is not a fold number or range (e.g. 1,2,10 or 1-3)") from None
        for fold in chosen:
            if fold not in FOLDS:
                raise ValueError(f"folds: fold {fold} is outside 1..10 (UrbanSound8K has 10 folds)")
            folds.add(fold)
    if not folds:
        raise ValueError("folds: no fold given")
    return tuple(sorted(folds))
