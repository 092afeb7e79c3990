"""The codec registry: names -> factories, imported lazily so `import sagin_hil.codecs` stays light (no torch)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sagin_hil.codecs.base import Codec

__all__ = ["get_codec", "register_codec", "available_codecs"]

# name -> ("module:factory", default keyword arguments)
_REGISTRY: dict[str, tuple[str | Callable[..., Codec], dict[str, Any]]] = {
    "jpeg2000": ("sagin_hil.codecs.jpeg2000:Jpeg2000Codec", {}),
    "jscc-1/12": ("sagin_hil.codecs.jscc:JsccCodec.pretrained", {"ratio": "1/12"}),
    "jscc-1/6": ("sagin_hil.codecs.jscc:JsccCodec.pretrained", {"ratio": "1/6"}),
    "vq-3_1": ("sagin_hil.codecs.vq:VqCodec.pretrained", {"mode": "3_1"}),
    "vq-3_2": ("sagin_hil.codecs.vq:VqCodec.pretrained", {"mode": "3_2"}),
    "vq-3_3": ("sagin_hil.codecs.vq:VqCodec.pretrained", {"mode": "3_3"}),
}


def register_codec(name: str, factory: str | Callable[..., Codec], **defaults: Any) -> None:
    """Add a codec: `factory` is a callable or "module:attr[.attr]" returning a Codec."""
    _REGISTRY[name] = (factory, defaults)


def available_codecs() -> list[str]:
    """Registered codec names."""
    return list(_REGISTRY)


def _resolve(target: str) -> Callable[..., Codec]:
    module, attr = target.split(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def get_codec(name: str, **kwargs: Any) -> Codec:
    """A codec instance by registry name (e.g. "jpeg2000", "jscc-1/12", "vq-3_2"); kwargs override defaults."""
    try:
        factory, defaults = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}; choose one of: {', '.join(_REGISTRY)}") from None
    fn = _resolve(factory) if isinstance(factory, str) else factory
    return fn(**{**defaults, **kwargs})
