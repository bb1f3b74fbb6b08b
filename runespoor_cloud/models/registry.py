"""The architecture registry (BasicSR's utils/registry.py): architecture modules register themselves with
``@register('name')`` and import only this module, so the package's ``__init__`` can import them without a
cycle."""
from __future__ import annotations

from typing import Callable

_REGISTRY: dict[str, Callable[..., object]] = {}  # name -> architecture class or factory


class ModelFileError(ValueError):
    """A weight/checkpoint file that is missing, unreadable or does not fit its architecture."""


def register(name: str):
    """Class/function decorator: make ``build(name, ...)`` construct it."""
    def deco(fn):
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f'model {name!r} registered twice')
        _REGISTRY[name] = fn
        return fn
    return deco


