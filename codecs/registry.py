"""The codec registry: names -> lazy factories, so `import sagin_hil.codecs` stays light (no torch, no glymur)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sagin_hil.codecs.base import Codec
from sagin_hil.registry import Registry

__all__ = ["CODECS", "get_codec", "register_codec", "available_codecs"]

CODECS: Registry[Codec] = Registry("codec", {
    "jpeg2000": "sagin_hil.codecs.jpeg2000:Jpeg2000Codec",
    "jpeg2000-lossless": "sagin_hil.codecs.jpeg2000:Jpeg2000LosslessCodec",
    "jscc-1/12": ("sagin_hil.codecs.jscc:JsccCodec.pretrained", {"ratio": "1/12"}),
    "jscc-1/6": ("sagin_hil.codecs.jscc:JsccCodec.pretrained", {"ratio": "1/6"}),
    "vq-3_1": ("sagin_hil.codecs.vq:VqCodec.pretrained", {"mode": "3_1"}),
    "vq-3_2": ("sagin_hil.codecs.vq:VqCodec.pretrained", {"mode": "3_2"}),
    "vq-3_3": ("sagin_hil.codecs.vq:VqCodec.pretrained", {"mode": "3_3"}),
    "spiff": "sagin_hil.codecs.generative.spiff:SpiffCodec",
    "gen-3_1": ("sagin_hil.codecs.generative.modes:mode3_codec", {"mode": "3_1"}),
    "gen-3_2": ("sagin_hil.codecs.generative.modes:mode3_codec", {"mode": "3_2"}),
    "gen-3_3": ("sagin_hil.codecs.generative.modes:mode3_codec", {"mode": "3_3"}),
    "caption-t2i": "sagin_hil.codecs.generative.sd:CaptionCodec",
})


def register_codec(name: str, factory: str | Callable[..., Codec], **defaults: Any) -> None:
    """Add a codec: `factory` is a callable or "module:attr[.attr]" returning a Codec."""
    CODECS.register(name, factory, **defaults)


def available_codecs() -> list[str]:
    """Registered codec names."""
    return CODECS.names()


def get_codec(name: str, **kwargs: Any) -> Codec:
    """A codec instance by registry name (e.g. "jpeg2000", "jscc-1/12", "vq-3_2"); kwargs override defaults."""
    return CODECS.create(name, **kwargs)
