"""Channels are found, not listed: every module here that defines a `Channel`
subclass with a `name` is one. Adding a channel touches no other file."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from .base import Channel


def discover() -> dict[str, type[Channel]]:
    found: dict[str, type[Channel]] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Channel) and obj is not Channel and obj.__module__ == module.__name__ \
                    and getattr(obj, "name", None):
                found[obj.name] = obj
    return found
