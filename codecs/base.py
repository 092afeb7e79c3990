"""The codec interface shared by every codec, its payload, and the self-describing payload header.

A codec turns an image into a :class:`Payload` for a budget of bits (digital codecs: JPEG 2000, VQ) or of
channel symbols (analog codecs: deep JSCC), and back. Every payload starts with a small header

    magic b"SG" | version u8 | codec id u8 | body length u16 | body | CRC-32 u32 (over all the preceding bytes)

so a receiver knows what it got, and a corrupted header is a clear erasure (:class:`CodecError`), never garbage.
"""

from __future__ import annotations

import struct
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Budget", "Codec", "CodecError", "Payload", "pack_header", "unpack_header", "HEADER_OVERHEAD_BYTES", "check_image"]

MAGIC = b"SG"
VERSION = 1
HEADER_OVERHEAD_BYTES = 2 + 1 + 1 + 2 + 4  # magic, version, codec id, body length, CRC-32
_PREFIX = struct.Struct(">2sBBH")


class CodecError(ValueError):
    """An image cannot be encoded as asked, or a payload cannot be decoded (a clear erasure)."""


@dataclass(frozen=True)
class Budget:
    """What an encoder may spend, in the units it understands; a codec uses what applies to it and raises
    CodecError for a budget it cannot meet or a field it needs that is missing.

    bits: digital payload size in bits, header included (JPEG 2000's rate; a ceiling for fixed-size codecs).
    symbols: analog channel uses available (deep JSCC sends ratio x source values; fewer is an error).
    snr_db: the channel SNR the encoder should expect (SNR-adaptive analog codecs condition on it).
    psnr_db: a quality target instead of a size (JPEG 2000 searches for the smallest rate reaching it).
    """

    bits: int | None = None
    symbols: int | None = None
    snr_db: float | None = None
    psnr_db: float | None = None

    def __post_init__(self) -> None:
        for name in ("bits", "symbols"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, np.integer)) or v <= 0):
                raise CodecError(f"Budget.{name} = {v!r} must be a positive integer")
        for name in ("snr_db", "psnr_db"):
            v = getattr(self, name)
            if v is not None and not np.isfinite(v):
                raise CodecError(f"Budget.{name} = {v!r} must be a finite number of dB")


@dataclass
class Payload:
    """What an encoder produces.

    Attributes
    ----------
    codec : str
        Registry name of the codec that made it.
    data : bytes
        Header + content bytes (digital codecs) or header only (analog codecs: the symbols travel apart).
    n_bits : int
        Bits to carry digitally: 8 * len(data).
    encode_time_s : float
        Wall time of the encoder on this machine.
    symbols : numpy.ndarray or None
        complex64 channel symbols of an analog codec (unit mean power), else None.
    metadata : dict
        Codec-specific facts (achieved PSNR, layer count, bandwidth ratio, ...).
    """

    codec: str
    data: bytes
    n_bits: int
    encode_time_s: float
    symbols: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_symbols(self) -> int:
        """Analog channel uses (0 for a digital payload)."""
        return 0 if self.symbols is None else int(self.symbols.size)


def pack_header(codec_id: int, body: bytes) -> bytes:
    """Frame `body` with magic, version, codec id, length and a CRC-32."""
    if len(body) > 0xFFFF:
        raise CodecError(f"header body of {len(body)} bytes exceeds 65535")
    head = _PREFIX.pack(MAGIC, VERSION, codec_id, len(body)) + body
    return head + struct.pack(">I", zlib.crc32(head))


def unpack_header(data: bytes, codec_id: int) -> tuple[bytes, int]:
    """Check and strip the header of `data`; return (body, offset of the content). Raises CodecError."""
    if len(data) < HEADER_OVERHEAD_BYTES:
        raise CodecError(f"payload of {len(data)} bytes is shorter than a header ({HEADER_OVERHEAD_BYTES} bytes)")
    magic, version, cid, n = _PREFIX.unpack_from(data)
    end = _PREFIX.size + n
    if len(data) < end + 4:
        raise CodecError(f"payload truncated inside its header ({len(data)} < {end + 4} bytes)")
    (crc,) = struct.unpack_from(">I", data, end)
    if zlib.crc32(data[:end]) != crc:
        raise CodecError("payload header failed its CRC-32 (corrupted in transit): erasure")
    if magic != MAGIC or version != VERSION:
        raise CodecError(f"not a sagin-hil payload (magic {magic!r}, version {version})")
    if cid != codec_id:
        raise CodecError(f"payload was made by codec id {cid}, this decoder is id {codec_id}")
    return bytes(data[_PREFIX.size : end]), end + 4


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an 8-bit HxW or HxWx3 image; return it as a C-contiguous uint8 array."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise CodecError(f"images are uint8, got dtype {img.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8)")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
        raise CodecError(f"expected an HxW or HxWx3 image, got shape {img.shape}")
    if min(img.shape[:2]) < 8:
        raise CodecError(f"image of {img.shape[:2]} px is too small; use at least 8x8")
    return np.ascontiguousarray(img)


class Codec(ABC):
    """An image codec. Subclasses set `name` and `codec_id` and implement encode/decode.

    Input (encode)
    --------------
    image : uint8 HxW or HxWx3
    budget : :class:`Budget` (None: the codec's own default, where it has one).

    Output (encode)
    ---------------
    :class:`Payload`

    Input (decode)
    --------------
    data : bytes, the (possibly truncated or corrupted) payload bytes; analog codecs also take the
    received symbols.

    Output (decode)
    ---------------
    uint8 image of the encoded shape; raises :class:`CodecError` when nothing usable arrived.
    """

    name: str = ""
    codec_id: int = 0
    kind: str = "digital"  # "digital" (bits) or "analog" (channel symbols)

    @abstractmethod
    def encode(self, image: np.ndarray, budget: Budget | None = None) -> Payload: ...

    @abstractmethod
    def decode(self, data: bytes, **kwargs: Any) -> np.ndarray: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
