"""Named recipes (orchestration/recipes/*.yaml): every file loads, validates strictly and plans
without training; precedence recipe < config file < --set < flags; bad names and files fail
with a message (no Ray, no training)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from orchestration.config import SweepSpec
from orchestration.cv_sweep import build_parser, main, spec_from_args
from orchestration.plan import configurations, preflight
from orchestration.recipes import (
    RECIPE_SWEEP_KEYS,
    RecipeError,
    available,
    load_recipe,
    merge_sections,
    parse_recipe,
    recipe_text,
)

EXPECTED = ("best", "mixup-ts-ps", "reference", "sb-cnn")
ROOT = Path(__file__).resolve().parents[2]


def _spec(*argv: str) -> SweepSpec:
    return spec_from_args(build_parser().parse_args(list(argv)))


def test_the_four_named_recipes_ship_as_package_data():
    assert available() == EXPECTED
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["tool"]["setuptools"]["package-data"]["orchestration.recipes"] == ["*.yaml"]
    on_disk = sorted(p.stem for p in (ROOT / "orchestration" / "recipes").glob("*.yaml"))
    assert tuple(on_disk) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_every_recipe_loads_validates_strictly_and_plans_without_training(name, tmp_path, tiny_dataset_root):
    sections = load_recipe(name)
    assert set(sections) <= {"features", "augment", "train", "sweep"}
    # Strict: every key of every section is a field of its layer (from_dict rejects others).
    data = merge_sections(sections, {"sweep": {"data_dir": str(tmp_path)}})
    spec = SweepSpec.from_dict(data)
    for section in ("features", "augment", "train"):
        for key, value in sections.get(section, {}).items():
            got = getattr(getattr(spec, section), key)
            assert (list(got) if isinstance(got, tuple) else got) == value, (section, key)
    assert configurations(spec), name  # every grid point accepted for these features
    # Through the command line, as a user runs it: a plan (name, storage, tracking), no training.
    # (the plan validates the dataset, so it needs a real one: the tiny synthetic set)
    plan = preflight(_spec("--recipe", name, "--data-dir", str(tiny_dataset_root), "--storage-path", str(tmp_path / "ray"),
                           "--tracking-uri", f"sqlite:///{tmp_path}/m.db"), resume=False)
    assert plan.spec.sweep.recipe == name and plan.spec.features == spec.features
    assert plan.spec.train == spec.train and plan.spec.augment == spec.augment
    assert not (tmp_path / "ray").exists()  # nothing ran
    # The stored spec (resume) round-trips, the recipe label with it.
    assert SweepSpec.from_dict(json.loads(json.dumps(plan.spec.to_dict()))) == plan.spec


@pytest.mark.parametrize("name", EXPECTED)
def test_every_recipe_header_names_its_source_accuracy_and_compute(name):
    header = "\n".join(line for line in recipe_text(name).splitlines() if line.startswith("#"))
    assert f'Recipe "{name}"' in header
    assert "Published 10-fold accuracy:" in header
    compute = re.search(r"# Compute \(.*?\):\n((?:#   .*\n?)+)", header + "\n")
    assert compute, header
    assert "GPU-hours" in compute.group(1) and "T4" in compute.group(1)


def test_reference_recipe_is_the_demo_and_the_real_data_default(tmp_path):
    assert _spec("--recipe", "reference").to_dict() == {
        **_spec().to_dict(), "sweep": {**_spec().sweep.to_dict(), "recipe": "reference"}}
    real = ("--data-dir", str(tmp_path))
    with_recipe, without = _spec("--recipe", "reference", *real), _spec(*real)
    assert (with_recipe.features, with_recipe.train, with_recipe.augment) == (
        without.features, without.train, without.augment)
    assert with_recipe.sweep.search_space == without.sweep.search_space == {"learning_rate": [1e-4, 1e-3]}


def test_the_recipes_say_what_they_claim(tmp_path):
    real = ("--data-dir", str(tmp_path))
    sb = _spec("--recipe", "sb-cnn", *real)
    assert sb.train.architecture == "sb-cnn" and sb.train.optimizer == "sgd" and sb.train.batch_size == 100
    assert (sb.features.n_mels, sb.features.frames, sb.features.sample_rate) == (128, 128, 44_100)
    assert sb.augment.per_clip == 20  # TS x4, PS1+PS2 x8, DRC x4, BG x4
    zhang = _spec("--recipe", "mixup-ts-ps", *real)
    assert zhang.train.mixup_alpha > 0 and zhang.augment.per_clip == 8
    assert not zhang.augment.drc and not zhang.augment.noise_mixes
    best = _spec("--recipe", "best", *real)
    assert best.train.architecture == "vgg-bn" and best.train.lr_schedule == "cosine"
    assert best.train.mixup_alpha > 0 and best.train.freq_masks > 0 and best.train.time_masks > 0
    assert best.augment.time_stretch and best.augment.pitch_shift


def test_precedence_recipe_then_file_then_set_then_flags(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  epochs: 7\n  batch_size: 32\nsweep:\n  search_space:\n    dropout2: [0.1, 0.2]\n")
    real = ("--data-dir", str(tmp_path))
    assert _spec("--recipe", "best", *real).train.epochs == 120
    spec = _spec("--recipe", "best", *real, "--config", str(path))
    assert spec.train.epochs == 7 and spec.train.batch_size == 32  # the file beats the recipe
    assert spec.train.architecture == "vgg-bn" and spec.train.mixup_alpha == 0.2  # what it does not name stays
    assert spec.sweep.search_space == {"dropout2": [0.1, 0.2]}  # a field's value is replaced whole
    spec = _spec("--recipe", "best", *real, "--config", str(path), "--set", "train.epochs=9", "--set",
                 "sweep.search_space.learning_rate=[1.0e-3]")
    assert spec.train.epochs == 9  # --set beats the file
    assert spec.sweep.search_space == {"dropout2": [0.1, 0.2], "learning_rate": [1e-3]}  # --set adds an entry
    assert _spec("--recipe", "best", *real, "--config", str(path), "--set", "train.epochs=9",
                 "--epochs", "11").train.epochs == 11  # the flag beats --set
    # --set on a recipe alone keeps the recipe's search space and adds to it.
    added = _spec("--recipe", "best", *real, "--set", "sweep.search_space.mixup_alpha=[0.2, 0.4]")
    assert added.sweep.search_space == {"learning_rate": [1e-3, 3e-3], "mixup_alpha": [0.2, 0.4]}
    assert len(configurations(added)) == 4


def test_unknown_recipe_fails_before_any_compute_listing_the_available_ones(tmp_path, capsys):
    code = main(["--recipe", "sota", "--storage-path", str(tmp_path / "ray"), "--cache-dir", str(tmp_path / "cache"),
                 "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--recipe 'sota': unknown recipe; available: best, mixup-ts-ps, reference, sb-cnn" in err
    assert not any(tmp_path.iterdir())  # no dataset, cache, sweep state or tracking store


def test_the_recipe_label_comes_from_recipe_only(tmp_path):
    with pytest.raises(ValueError, match="name a recipe with --recipe NAME"):
        _spec("--set", "sweep.recipe=best")
    path = tmp_path / "c.yaml"
    path.write_text("sweep:\n  recipe: best\n")
    with pytest.raises(ValueError, match="name a recipe with --recipe NAME"):
        _spec("--config", str(path))
    assert _spec().sweep.recipe is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: [1, 2\n", "not valid YAML"),
        ("- 1\n", "expected a mapping"),
        ("model:\n  epochs: 1\n", "unknown section(s) model"),
        ("train: 3\n", "section 'train' must be a mapping"),
        ("sweep:\n  data_dir: /data\n  search: grid\n", "sweep key(s) data_dir do not belong in a recipe"),
    ],
)
def test_malformed_recipe_files_are_rejected_naming_the_file(text, message):
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, "recipe 'x' (orchestration/recipes/x.yaml)")
    assert message in str(info.value) and "orchestration/recipes/x.yaml" in str(info.value)


def test_recipes_only_say_how_to_search():
    for name in EXPECTED:
        assert set(load_recipe(name).get("sweep", {})) <= RECIPE_SWEEP_KEYS


def test_merge_sections_replaces_named_fields_and_keeps_the_rest():
    base = {"train": {"epochs": 5, "batch_size": 8}, "sweep": {"search_space": {"a": [1]}}}
    over = {"train": {"epochs": 6}, "sweep": {"search_space": {"b": [2]}}, "augment": None}
    out = merge_sections(base, over)
    assert out == {"train": {"epochs": 6, "batch_size": 8}, "sweep": {"search_space": {"b": [2]}}}
    assert base["train"]["epochs"] == 5  # inputs untouched
