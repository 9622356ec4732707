"""Named recipes: ``python -m orchestration.cv_sweep --recipe NAME`` (no runtime of its own).

A recipe is a YAML file beside this module (``<name>.yaml``, shipped as package data, read
with ``importlib.resources`` so it is found after ``pip install -e .`` and a normal install
alike) holding the sweep's ``features``, ``augment``, ``train`` and ``sweep`` sections, the
last limited to the search (``RECIPE_SWEEP_KEYS``: never data, resources or tracking). It is
therefore also a valid ``--config`` file: copy one and edit it.

Precedence, lowest first: the defaults (and, without ``--data-dir``, the demo's shortened
training), the recipe, a ``--config`` file, ``--set`` overrides, the explicit flags. A layer
replaces the fields it names and keeps the others; a field's value is replaced whole (a
``sweep.search_space`` in a config file replaces the recipe's), except that ``--set
sweep.search_space.NAME=[...]`` adds or replaces one entry of it.
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import yaml

from orchestration.config import SECTIONS, parse_yaml

SUFFIX = ".yaml"
# What a recipe may say about the sweep: how to search, never where or on what to run.
RECIPE_SWEEP_KEYS = frozenset({"search", "search_space", "num_samples", "seed", "racing", "racing_min_folds",
                               "racing_alpha"})


class RecipeError(ValueError):
    """An unknown recipe name or a malformed recipe file (names the file and what is wrong)."""


def available() -> tuple[str, ...]:
    """The recipe names, sorted."""
    root = resources.files(__name__)
    return tuple(sorted(p.name[: -len(SUFFIX)] for p in root.iterdir() if p.name.endswith(SUFFIX)))


def recipe_text(name: str) -> str:
    """The recipe file's text (its header comment says where its settings come from)."""
    names = available()
    if name not in names:
        raise RecipeError(f"--recipe {name!r}: unknown recipe; available: {', '.join(names)}")
    return resources.files(__name__).joinpath(name + SUFFIX).read_text(encoding="utf-8")


def load_recipe(name: str) -> dict[str, Any]:
    """The recipe's sections as nested dicts, checked for shape (values are checked when the
    sweep spec is built from them)."""
    return parse_recipe(recipe_text(name), f"recipe {name!r} (orchestration/recipes/{name}{SUFFIX})")


def parse_recipe(text: str, where: str) -> dict[str, Any]:
    """A recipe file's text as sections; ``where`` names the file in errors."""
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping with {'/'.join(SECTIONS)} sections")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise RecipeError(f"{where}: unknown section(s) {', '.join(unknown)}; sections: {', '.join(SECTIONS)}")
    for section, body in data.items():
        if body is not None and not isinstance(body, dict):
            raise RecipeError(f"{where}: section {section!r} must be a mapping, got {body!r}")
    sweep_keys = sorted(set(data.get("sweep") or {}) - RECIPE_SWEEP_KEYS)
    if sweep_keys:
        raise RecipeError(f"{where}: sweep key(s) {', '.join(sweep_keys)} do not belong in a recipe "
                          f"(allowed: {', '.join(sorted(RECIPE_SWEEP_KEYS))})")
    return {section: dict(body or {}) for section, body in data.items()}


def merge_sections(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, section by section: fields ``over`` names replace
    ``base``'s, whole; the others stay; an empty section changes nothing. Neither input is
    modified."""
    out = copy.deepcopy(base)
    for section, body in over.items():
        if body is None:  # an empty section in YAML ("augment:") says nothing
            continue
        if isinstance(body, dict) and isinstance(out.get(section), dict):
            out[section].update(copy.deepcopy(body))
        else:
            out[section] = copy.deepcopy(body)
    return out
