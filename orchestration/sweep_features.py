"""The sweep's inputs: the dataset (the synthetic demo set unless ``--data-dir``), validated,
then its features (and augmented variants) from the cache or extracted by Ray tasks."""

from __future__ import annotations

import sys
from pathlib import Path

from features.cache import default_cache_dir
from orchestration.plan import Plan, SweepError


def cache_dir_of(plan: Plan) -> Path:
    """The feature cache root the sweep uses: ``--cache-dir`` (``~`` expanded), else the default."""
    sweep = plan.spec.sweep
    return Path(sweep.cache_dir).expanduser() if sweep.cache_dir else default_cache_dir()


def sweep_features(plan: Plan):
    """Dataset (synthetic demo unless --data-dir), validated, then features from cache or Ray."""
    from features.dataset import load_dataset
    from features.extract import extract_features

    sweep = plan.spec.sweep
    cache_dir = cache_dir_of(plan)
    if sweep.data_dir is None:
        from features.synthetic import ensure_synthetic

        root = ensure_synthetic(
            cache_dir / "synthetic" / f"{sweep.synthetic_preset}-seed{sweep.synthetic_seed}",
            sweep.synthetic_preset,
            sweep.synthetic_seed,
        )
    else:
        root = Path(sweep.data_dir).expanduser()
    index = load_dataset(root, folds=None, skip_missing=sweep.skip_missing)
    for warning in index.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    check_folds_present(index, sweep.folds)
    result = extract_features(index, plan.spec.features, cache_dir)
    print(result.summary(), flush=True)
    featureset, augment_info = augmented(plan, index, result.featureset, cache_dir)
    info = {
        "us8k.dataset_root": str(root),
        "us8k.dataset_fingerprint": index.fingerprint(),
        "us8k.feature_cache": str(result.entries[0].directory) if result.entries else "",
        "us8k.feature_cache_keys": ",".join(f"{e.fold}:{e.key}" for e in result.entries),
        "us8k.clips": str(len(result.featureset)),
        "us8k.failed_clips": str(len(result.failures)),
        **augment_info,
    }
    return featureset, info


def augmented(plan: Plan, index, featureset, cache_dir: Path):
    """The feature set with its augmented training candidates (cached Ray tasks), when the
    spec's ``augment`` section defines variants; unchanged (and no work) otherwise."""
    augment = plan.spec.augment
    if augment.empty:
        return featureset, {}
    from features.augment_extract import augment_features, with_augmented

    result = augment_features(index, plan.spec.features, augment, featureset, cache_dir)
    print(result.summary(), flush=True)
    return with_augmented(featureset, result.rows), {
        "us8k.augment_digest": augment.digest(),
        "us8k.augment_cache_keys": ",".join(f"{e.fold}:{e.key}" for e in result.entries),
        "us8k.augmented_rows": str(len(result.rows)),
        "us8k.augment_failed_clips": str(len(result.failures)),
    }


def check_folds_present(index, folds: tuple[int, ...]) -> None:
    absent = sorted(set(folds) - set(index.folds))
    if absent:
        raise SweepError(f"folds {absent} have no clips in {index.root}; choose among {list(index.folds)}")
