"""One registry shape for every pluggable part: codecs, modes, controllers, radios, benchmarks.

A `Registry` maps a name to a target: either a lazy "module:attr[.attr]" string, resolved on first use (so
listing names imports nothing), or the object itself. A layer's base module declares its built-in entries
as strings and never imports its implementations; a user adds their own with `register`.

    CODECS = Registry("codec", {"jpeg2000": "sagin_hil.codecs.jpeg2000:Jpeg2000Codec"})
    CODECS.create("jpeg2000")           # builds a Jpeg2000Codec
    CODECS.names()                      # ["jpeg2000"], without importing glymur
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "RegistryError", "resolve"]

T = TypeVar("T")


class RegistryError(ValueError):
    """An unknown name, or an entry whose target cannot be imported; the message says which and the fix."""


def resolve(target: str) -> Any:
    """Import "package.module:attr.attr" and return the attribute."""
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise RegistryError(f"target {target!r} must read 'package.module:attr'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Names -> lazy targets, with defaults for factories.

    Parameters
    ----------
    kind: what the entries are ("codec", "controller", ...), used in error messages.
    entries: name -> target ("module:attr" or the object), optionally as (target, {default kwargs}).
    """

    def __init__(self, kind: str, entries: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, tuple[Any, dict[str, Any]]] = {}
        for name, target in (entries or {}).items():
            if isinstance(target, tuple):
                self.register(name, target[0], **target[1])
            else:
                self.register(name, target)

    def register(self, name: str, target: str | Callable[..., T] | T, **defaults: Any) -> None:
        """Add (or replace) an entry; `defaults` are keyword arguments `create` passes to a factory."""
        if not name or not isinstance(name, str):
            raise RegistryError(f"{self.kind} name {name!r} must be a non-empty string")
        self._entries[name] = (target, dict(defaults))

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def unknown(self, name: str) -> RegistryError:
        """The error for a name that is not registered: the close matches first, then every name."""
        close = difflib.get_close_matches(str(name), self.names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return RegistryError(f"unknown {self.kind} {name!r}{hint} (choose one of: {', '.join(self.names())})")

    def get(self, name: str) -> Any:
        """The entry's target, imported if it was given as a string (looked up each time: after the first
        import that is a dictionary lookup, and the module's current attribute is what runs)."""
        if name not in self._entries:
            raise self.unknown(name)
        target = self._entries[name][0]
        if isinstance(target, str):
            try:
                return resolve(target)
            except (ImportError, AttributeError) as exc:
                raise RegistryError(f"{self.kind} {name!r} cannot be loaded from {target!r}: {exc}") from exc
        return target

    def defaults(self, name: str) -> dict[str, Any]:
        if name not in self._entries:
            raise self.unknown(name)
        return dict(self._entries[name][1])

    def create(self, name: str, **kwargs: Any) -> T:
        """Call the entry's factory with its defaults overridden by `kwargs`."""
        factory = self.get(name)
        return factory(**{**self.defaults(name), **kwargs})
