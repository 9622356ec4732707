"""What every configuration layer (features, train, sweep) shares: a strict ``from_dict``.

Each layer is one frozen dataclass with ``to_dict``/``from_dict``; ``from_dict`` goes through
``from_dict_strict`` so an unknown key (a typo in a config file, a stale ``--set``) is an error
naming the known keys, never silently ignored. It lives in the lowest package so that
``features``, ``model`` and ``orchestration`` all import it downwards.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any


def from_dict_strict(cls: type, data: dict[str, Any]):
    """Build dataclass ``cls`` from ``data``, rejecting keys it does not know."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        named = [_with_hint(key, names) for key in unknown]
        raise ValueError(
            f"{cls.__name__}: unknown key(s) {', '.join(named)}; known keys: {', '.join(sorted(names))}"
        )
    return cls(**data)


def _with_hint(key: str, names: set[str]) -> str:
    """``key``, and the known key it is probably a typo of."""
    close = difflib.get_close_matches(str(key), sorted(names), n=1, cutoff=0.75)
    return f"{key} (did you mean {close[0]}?)" if close else str(key)
