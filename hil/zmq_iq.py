"""The GNU Radio gr-zeromq IQ wire format: complex64 messages, optional key frame, optional tag header.

Each ZeroMQ message carries raw items (complex64 = interleaved float32 I/Q, native byte order, little-endian
on every machine this runs on), of any length that is a whole number of items. A PUB sink given a key sends
a two-frame message [key, payload]. With ``pass_tags`` the payload starts with a header:

    magic u16 = 0x5FF0 | version u8 = 1 | offset u64 (absolute index of the first item) | ntags u64 |
    per tag: offset u64, key, value, srcid (each a GNU Radio PMT in its serialised form)

(header integers native order, PMT numbers big-endian). REQ/REP sockets: the REQ side sends a uint32
"items wanted" and the REP side answers with at most that many items.

This module is pure (bytes in, arrays out) so the channel-emulator service, ZmqRadio and tests share it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = [
    "IqTag",
    "ZmqIqError",
    "ITEM_BYTES",
    "TAG_HEADER_MAGIC",
    "encode_iq",
    "decode_iq",
    "encode_iq_frames",
    "decode_iq_frames",
    "encode_request",
    "decode_request",
    "pmt_serialize",
    "pmt_deserialize",
    "MAX_PMT_DEPTH",
]

ITEM_BYTES = 8  # complex64
TAG_HEADER_MAGIC = 0x5FF0
TAG_HEADER_VERSIONS = (1, 2)  # 1 is written; GNU Radio 3.10 writes 2 with the same layout
_HEADER = struct.Struct("<HBQQ")
MAX_PMT_DEPTH = 64  # pairs/tuples nested deeper are refused (real tags nest a few levels)

# PMT serial tags (GNU Radio pmt/pmt_serial_tags.h)
_PST_TRUE, _PST_FALSE, _PST_SYMBOL, _PST_INT32, _PST_DOUBLE, _PST_COMPLEX = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
_PST_NULL, _PST_PAIR, _PST_UINT64, _PST_TUPLE, _PST_INT64 = 0x06, 0x07, 0x0B, 0x0C, 0x0D


class ZmqIqError(ValueError):
    """A message that is not a valid gr-zeromq IQ message (wrong length, bad tag header)."""


@dataclass(frozen=True)
class IqTag:
    """A GNU Radio stream tag: absolute item offset, key (a symbol), value, source id (PMT_F if none)."""

    offset: int
    key: str
    value: Any
    srcid: Any = False


# ---------------------------------------------------------------------------------------------- PMT codec
def pmt_serialize(value: Any, _depth: int = 0) -> bytes:
    """Serialise a Python value as a GNU Radio PMT.

    Supported: bool, None (PMT_NIL), str (symbol), int (int32 when it fits, else int64 / uint64), float,
    complex, tuple (PMT tuple), and a 2-list [car, cdr] (PMT pair), nested at most MAX_PMT_DEPTH deep.
    """
    if _depth > MAX_PMT_DEPTH:
        raise ZmqIqError(f"PMT nested deeper than {MAX_PMT_DEPTH} levels")
    if value is True:
        return bytes([_PST_TRUE])
    if value is False:
        return bytes([_PST_FALSE])
    if value is None:
        return bytes([_PST_NULL])
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) > 0xFFFF:
            raise ZmqIqError(f"PMT symbol of {len(raw)} bytes is longer than 65535")
        return struct.pack(">BH", _PST_SYMBOL, len(raw)) + raw
    if isinstance(value, (int, np.integer)):
        v = int(value)
        if -(2**31) <= v < 2**31:
            return struct.pack(">Bi", _PST_INT32, v)
        if -(2**63) <= v < 2**63:
            return struct.pack(">Bq", _PST_INT64, v)
        if 0 <= v < 2**64:
            return struct.pack(">BQ", _PST_UINT64, v)
        raise ZmqIqError(f"integer {v} does not fit a PMT int64/uint64")
    if isinstance(value, (float, np.floating)):
        return struct.pack(">Bd", _PST_DOUBLE, float(value))
    if isinstance(value, (complex, np.complexfloating)):
        return struct.pack(">Bdd", _PST_COMPLEX, value.real, value.imag)
    if isinstance(value, tuple):
        return struct.pack(">BI", _PST_TUPLE, len(value)) + b"".join(pmt_serialize(v, _depth + 1) for v in value)
    if isinstance(value, list) and len(value) == 2:
        return bytes([_PST_PAIR]) + pmt_serialize(value[0], _depth + 1) + pmt_serialize(value[1], _depth + 1)
    raise ZmqIqError(
        f"cannot serialise {type(value).__name__} {value!r} as a PMT; use bool, None, str, int, float, "
        "complex, tuple or a [car, cdr] pair"
    )


def pmt_deserialize(buf: bytes | memoryview, pos: int = 0, _depth: int = 0) -> tuple[Any, int]:
    """Parse one serialised PMT starting at byte `pos`; return (value, position after it).

    Raises ZmqIqError on a truncated or unknown PMT, or one nested deeper than MAX_PMT_DEPTH (a hostile
    tag must be refused, not recurse until Python's stack runs out).
    """
    if _depth > MAX_PMT_DEPTH:
        raise ZmqIqError(f"PMT nested deeper than {MAX_PMT_DEPTH} levels at byte {pos}")
    buf = memoryview(buf)

    def need(n: int) -> None:
        if pos + n > len(buf):
            raise ZmqIqError(f"PMT truncated at byte {pos}: need {n} more byte(s), message has {len(buf)}")

    need(1)
    tag = buf[pos]
    pos += 1
    fixed = {_PST_INT32: ">i", _PST_DOUBLE: ">d", _PST_UINT64: ">Q", _PST_INT64: ">q", _PST_COMPLEX: ">dd"}
    if tag == _PST_TRUE:
        return True, pos
    if tag == _PST_FALSE:
        return False, pos
    if tag == _PST_NULL:
        return None, pos
    if tag in fixed:
        fmt = fixed[tag]
        need(struct.calcsize(fmt))
        vals = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return (complex(*vals) if tag == _PST_COMPLEX else vals[0]), pos
    if tag == _PST_SYMBOL:
        need(2)
        (n,) = struct.unpack_from(">H", buf, pos)
        pos += 2
        need(n)
        return bytes(buf[pos : pos + n]).decode(errors="replace"), pos + n
    if tag == _PST_TUPLE:
        need(4)
        (n,) = struct.unpack_from(">I", buf, pos)
        pos += 4
        items = []
        if n > len(buf) - pos:  # each item takes at least one byte
            raise ZmqIqError(f"PMT tuple of {n} items at byte {pos - 5} is longer than the message")
        for _ in range(n):
            item, pos = pmt_deserialize(buf, pos, _depth + 1)
            items.append(item)
        return tuple(items), pos
    if tag == _PST_PAIR:
        car, pos = pmt_deserialize(buf, pos, _depth + 1)
        cdr, pos = pmt_deserialize(buf, pos, _depth + 1)
        return [car, cdr], pos
    raise ZmqIqError(f"unsupported PMT type 0x{tag:02x} at byte {pos - 1}")


# ---------------------------------------------------------------------------------------------- messages
def _as_complex64(samples: Any) -> np.ndarray:
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ZmqIqError(f"IQ samples must be a 1-D array; got shape {arr.shape}")
    if not np.iscomplexobj(arr) and arr.size:
        raise ZmqIqError(f"IQ samples must be complex; got dtype {arr.dtype} (use samples.astype(np.complex64))")
    return np.ascontiguousarray(arr, dtype=np.complex64)


def encode_iq(
    samples: Any, tags: Sequence[IqTag] | None = None, *, pass_tags: bool | None = None, offset: int = 0
) -> bytes:
    """One gr-zeromq payload.

    Input
    -----
    samples: 1-D complex array (sent as complex64).
    tags: stream tags to carry; giving tags (even an empty list) turns the tag header on.
    pass_tags: force the header on (True) or off (False, tags must then be empty). Default: on iff tags given.
    offset: absolute index of the first item (the header's offset field).

    Output
    ------
    bytes: the message payload, as a gr-zeromq sink would send it.
    """
    arr = _as_complex64(samples)
    with_header = (tags is not None) if pass_tags is None else pass_tags
    if not with_header:
        if tags:
            raise ZmqIqError("tags given with pass_tags=False; a raw gr-zeromq message cannot carry tags")
        return arr.tobytes()
    if offset < 0:
        raise ZmqIqError(f"offset = {offset} must be >= 0 (absolute item index)")
    tags = list(tags or [])
    parts = [_HEADER.pack(TAG_HEADER_MAGIC, 1, offset, len(tags))]
    for t in tags:
        parts.append(struct.pack("<Q", int(t.offset)))
        parts += [pmt_serialize(t.key), pmt_serialize(t.value), pmt_serialize(t.srcid)]
    parts.append(arr.tobytes())
    return b"".join(parts)


def decode_iq(message: bytes | memoryview, pass_tags: bool = False) -> tuple[np.ndarray, list[IqTag]]:
    """Parse one gr-zeromq payload into (complex64 samples, tags).

    Input
    -----
    message: the payload frame (without the key frame; see `decode_iq_frames`).
    pass_tags: whether the sender had pass_tags on (the header is then required).

    Output
    ------
    samples: 1-D complex64 array (a copy, writable). tags: list of IqTag (empty without pass_tags).

    Raises ZmqIqError naming the problem when the length is not a whole number of items or the header is bad.
    """
    buf = memoryview(message).cast("B")
    tags: list[IqTag] = []
    pos = 0
    if pass_tags:
        if len(buf) < _HEADER.size:
            raise ZmqIqError(
                f"message of {len(buf)} bytes is too short for the {_HEADER.size}-byte gr-zeromq tag header; "
                "is the sender's pass_tags off? (decode with pass_tags=False)"
            )
        magic, version, _offset, ntags = _HEADER.unpack_from(buf, 0)
        if magic != TAG_HEADER_MAGIC:
            raise ZmqIqError(
                f"tag header magic 0x{magic:04X} != 0x{TAG_HEADER_MAGIC:04X}; the sender does not pass tags "
                "(decode with pass_tags=False)"
            )
        if version not in TAG_HEADER_VERSIONS:
            raise ZmqIqError(f"tag header version {version} is not one of {TAG_HEADER_VERSIONS}")
        pos = _HEADER.size
        if ntags > len(buf):  # each tag takes > 1 byte: a count this large is corrupt
            raise ZmqIqError(f"tag header claims {ntags} tags in a {len(buf)}-byte message")
        for _ in range(ntags):
            if pos + 8 > len(buf):
                raise ZmqIqError(f"tag header truncated at byte {pos} of {len(buf)}")
            (toff,) = struct.unpack_from("<Q", buf, pos)
            key, pos = pmt_deserialize(buf, pos + 8)
            value, pos = pmt_deserialize(buf, pos)
            srcid, pos = pmt_deserialize(buf, pos)
            tags.append(IqTag(int(toff), str(key), value, srcid))
    payload = buf[pos:]
    if len(payload) % ITEM_BYTES:
        raise ZmqIqError(
            f"IQ payload of {len(payload)} bytes is not a whole number of {ITEM_BYTES}-byte complex64 items "
            "(is the sender's item type complex64 / gr_complex?)"
        )
    return np.frombuffer(payload, dtype=np.complex64).copy(), tags


def encode_iq_frames(
    samples: Any, tags: Sequence[IqTag] | None = None, *, key: bytes | str | None = None, **kw: Any
) -> list[bytes]:
    """The frames of one message: [key, payload] when a PUB key is set, else [payload]."""
    payload = encode_iq(samples, tags, **kw)
    if key is None or key == b"" or key == "":
        return [payload]
    return [key.encode() if isinstance(key, str) else bytes(key), payload]


def decode_iq_frames(
    frames: Sequence[bytes | memoryview], pass_tags: bool = False
) -> tuple[np.ndarray, list[IqTag], bytes | None]:
    """Parse a (possibly multipart) message: returns (samples, tags, key or None)."""
    if len(frames) == 1:
        samples, tags = decode_iq(frames[0], pass_tags)
        return samples, tags, None
    if len(frames) == 2:
        samples, tags = decode_iq(frames[1], pass_tags)
        return samples, tags, bytes(frames[0])
    raise ZmqIqError(f"a gr-zeromq message has 1 frame or 2 (key, payload); got {len(frames)}")


def encode_request(n_items: int) -> bytes:
    """The REQ side's request: a native uint32 count of items wanted."""
    if not 0 < n_items < 2**32:
        raise ZmqIqError(f"items wanted = {n_items} must be in [1, 2**32 - 1]")
    return struct.pack("=I", n_items)


def decode_request(message: bytes | memoryview) -> int:
    """Parse a REQ request (uint32 items wanted)."""
    if len(message) != 4:
        raise ZmqIqError(f"a gr-zeromq request is 4 bytes (uint32 items wanted); got {len(message)} bytes")
    return struct.unpack("=I", message)[0]
