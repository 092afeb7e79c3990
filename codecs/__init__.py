"""codecs layer of sagin-hil: images <-> payloads (JPEG 2000, deep JSCC, VQ semantic codec), metrics, modes.

Import light: torch and glymur load only when a codec that needs them is built (see docs/codecs.md).
"""

from sagin_hil.codecs.base import Budget, Codec, CodecError, Payload
from sagin_hil.codecs.registry import available_codecs, get_codec, register_codec

__all__ = ["Budget", "Codec", "CodecError", "Payload", "get_codec", "register_codec", "available_codecs"]
