"""JPEG 2000 (Mode 1) through glymur / OpenJPEG, with rate control and resilient decoding.

The codestream is written with L quality layers in LRCP order (each layer a sqrt(2) step in rate) and packet
length markers (PLT), so the byte offset where every layer ends is known. The payload header carries, per
layer, its end offset and a CRC-32. A receiver keeps the longest prefix of intact layers (truncation or bit
errors cut it there), rewrites the tile-part length to "until EOC", appends EOC and decodes: fewer layers,
lower quality, never a crash. No intact layer (or a bad header) is a clear erasure: :class:`CodecError`.
Corrupted bytes never reach OpenJPEG, so it cannot hang or crash on them.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
import time
import warnings
import zlib

import numpy as np

from sagin_hil.codecs.base import HEADER_OVERHEAD_BYTES, Budget, Codec, CodecError, Payload, check_image, pack_header, unpack_header
from sagin_hil.codecs.metrics import psnr

__all__ = ["Jpeg2000Codec", "Jpeg2000LosslessCodec"]

_SOT, _SOD, _PLT, _COM, _EOC = 0xFF90, 0xFF93, 0xFF58, 0xFF64, b"\xff\xd9"
_BODY = struct.Struct(">HHBB")  # height, width, channels, layers
_LAYER = struct.Struct(">II")  # end offset in the codestream, CRC-32 of the layer's bytes (prefix for layer 0)


def _parse_codestream(cs: bytes) -> tuple[int, int, list[int]]:
    """Offset of the SOT marker, offset just after SOD, and the packet lengths from the PLT markers."""
    sot = cs.find(b"\xff\x90")
    if sot < 0 or cs.find(b"\xff\x90", sot + 2) >= 0:
        raise CodecError("expected exactly one tile-part in the JPEG 2000 codestream")
    pos = sot + 12  # SOT segment is 2 + 10 bytes
    lengths: list[int] = []
    while True:
        (marker,) = struct.unpack_from(">H", cs, pos)
        if marker == _SOD:
            return sot, pos + 2, lengths
        (seg_len,) = struct.unpack_from(">H", cs, pos + 2)
        if marker == _PLT:
            val = 0
            for byte in cs[pos + 5 : pos + 2 + seg_len]:  # skip Lplt and Zplt
                val = (val << 7) | (byte & 0x7F)
                if not byte & 0x80:
                    lengths.append(val)
                    val = 0
        pos += 2 + seg_len


def _strip_markers(cs: bytes) -> bytes:
    """Drop COM (main header) and PLT (tile-part header) segments: the receiver needs neither, and they
    cost ~200 bytes, a lot at low rates. Psot is rewritten to the new tile-part length."""
    out = bytearray(cs[:2])  # SOC
    pos = 2
    while True:
        (marker,) = struct.unpack_from(">H", cs, pos)
        if marker == _SOT:
            break
        (seg_len,) = struct.unpack_from(">H", cs, pos + 2)
        if marker != _COM:
            out += cs[pos : pos + 2 + seg_len]
        pos += 2 + seg_len
    sot_out = len(out)
    out += cs[pos : pos + 12]
    pos += 12
    while True:
        (marker,) = struct.unpack_from(">H", cs, pos)
        if marker == _SOD:
            break
        (seg_len,) = struct.unpack_from(">H", cs, pos + 2)
        if marker != _PLT:
            out += cs[pos : pos + 2 + seg_len]
        pos += 2 + seg_len
    out += cs[pos:]
    psot = len(out) - sot_out - 2  # up to (not including) EOC
    out[sot_out + 6 : sot_out + 10] = struct.pack(">I", psot)
    return bytes(out)


class Jpeg2000Codec(Codec):
    """JPEG 2000 with a bit budget or a PSNR target (Mode 1 source coder).

    Parameters
    ----------
    n_layers : int
        Quality layers (truncation points), 1..16.
    num_resolutions : int
        Wavelet decomposition levels + 1, reduced automatically for small images.

    Input (encode)
    --------------
    image : uint8 HxW or HxWx3
    budget : Budget with exactly one of
        bits: upper bound on the payload size in bits (header included); the result is within ~10 % below it;
        psnr_db: the smallest payload whose decoded PSNR reaches this (bisection on rate).

    Output
    ------
    :class:`Payload` with metadata {"psnr_db", "layers", "layer_end_bytes" (codestream offsets), "bpp"}.
    """

    name = "jpeg2000"
    codec_id = 1

    def __init__(self, n_layers: int = 8, num_resolutions: int = 6):
        if not 1 <= n_layers <= 16:
            raise ValueError(f"n_layers={n_layers}; use 1..16")
        self.n_layers = n_layers
        self.num_resolutions = num_resolutions

    # ---- encoding -------------------------------------------------------------------------------------
    def _layers_for(self, target_bytes: float | None) -> int:
        """Fewer layers for small budgets: each costs 8 header bytes and needs ~80 bytes to be useful."""
        return 1 if target_bytes is None else int(min(self.n_layers, max(1, target_bytes // 80)))

    @staticmethod
    def _header_bytes(layers: int) -> int:
        return HEADER_OVERHEAD_BYTES + _BODY.size + _LAYER.size * layers

    def _write(self, img: np.ndarray, target_bytes: float | None, layers: int) -> bytes:
        """One OpenJPEG encode with `layers` quality layers; target_bytes None means lossless (reversible 5/3)."""
        import glymur

        h, w = img.shape[:2]
        numres = max(1, min(self.num_resolutions, int(math.log2(min(h, w))) - 2))
        kwargs: dict = {"numres": numres, "plt": True, "prog": "LRCP"}
        if target_bytes is not None:
            raw = img.size
            ratios = [max(1.0, raw / (target_bytes * 2 ** (-(layers - 1 - k) / 2))) for k in range(layers)]
            for k in range(len(ratios) - 2, -1, -1):  # OpenJPEG needs strictly decreasing ratios
                ratios[k] = max(ratios[k], ratios[k + 1] * 1.01)
            kwargs.update(cratios=ratios, irreversible=True)
        with tempfile.TemporaryDirectory(prefix="sagin-j2k-") as tmp:
            path = os.path.join(tmp, "x.j2k")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                glymur.Jp2k(path, data=img, **kwargs)
            with open(path, "rb") as f:
                return f.read()

    def _frame(self, img: np.ndarray, cs_plt: bytes, layers: int) -> bytes:
        """Header (size, layer end offsets and CRCs) + the codestream without COM/PLT, cut at the last layer."""
        _, _, packets = _parse_codestream(cs_plt)
        cs = _strip_markers(cs_plt)
        _, sod_end, _ = _parse_codestream(cs)
        body_len = len(cs) - 2 - sod_end  # without EOC
        n_ch = 1 if img.ndim == 2 else img.shape[2]
        per_layer = len(packets) // layers
        if packets and sum(packets) == body_len and per_layer * layers == len(packets):
            ends = list(sod_end + np.cumsum([sum(packets[k * per_layer : (k + 1) * per_layer]) for k in range(layers)]))
        else:  # no usable PLT: one layer spanning the whole body
            ends = [sod_end + body_len]
        entries, start = [], 0
        for k, end in enumerate(ends):
            entries.append(_LAYER.pack(int(end), zlib.crc32(cs[0 if k == 0 else start : end])))
            start = end
        entries += [_LAYER.pack(0, 0)] * (layers - len(entries))  # header size independent of content
        body = _BODY.pack(img.shape[0], img.shape[1], n_ch, len(ends)) + b"".join(entries)
        return pack_header(self.codec_id, body) + cs[: int(ends[-1])]

    def _payload(self, img: np.ndarray, data: bytes, t0: float, **meta) -> Payload:
        encode_time_s = time.perf_counter() - t0  # the check decode below is not part of encoding
        body, _ = unpack_header(data, self.codec_id)
        n_layers = _BODY.unpack_from(body)[3]
        ends = [_LAYER.unpack_from(body, _BODY.size + k * _LAYER.size)[0] for k in range(n_layers)]
        return Payload(
            codec=self.name, data=data, n_bits=8 * len(data), encode_time_s=encode_time_s,
            metadata={"psnr_db": psnr(img, self.decode(data)), "layers": n_layers, "layer_end_bytes": ends,
                      "bpp": 8 * len(data) / (img.shape[0] * img.shape[1]), **meta},
        )

    @staticmethod
    def _image(image: np.ndarray) -> np.ndarray:
        """The checked image as OpenJPEG takes it (a single-channel HxWx1 as HxW)."""
        img = check_image(image)
        return img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img

    def encode(self, image: np.ndarray, budget: Budget | None = None) -> Payload:
        t0 = time.perf_counter()
        img = self._image(image)
        budget_bits, target_psnr_db = (None, None) if budget is None else (budget.bits, budget.psnr_db)
        if (budget_bits is None) == (target_psnr_db is None):
            raise CodecError(f"JPEG 2000 needs exactly one of Budget(bits=...) or Budget(psnr_db=...); got {budget}")
        if budget_bits is not None:
            return self._payload(img, self._encode_budget(img, int(budget_bits)), t0, budget_bits=int(budget_bits))
        return self._encode_psnr(img, float(target_psnr_db), t0)

    def _encode_budget(self, img: np.ndarray, budget_bits: int) -> bytes:
        budget_bytes = budget_bits // 8
        layers = self._layers_for(budget_bytes)
        target = budget_bytes - self._header_bytes(layers)
        min_bytes = 120 + 16 * layers  # main header (SIZ, COD, QCD) + a few packets
        if target < min_bytes:
            raise CodecError(
                f"Budget(bits={budget_bits}) is too small for JPEG 2000 (needs >= {8 * (min_bytes + self._header_bytes(layers))} bits)"
            )
        goal = target * 0.97
        best = None
        for _ in range(6):  # OpenJPEG's rate control is approximate: rescale until it fits
            data = self._frame(img, self._write(img, goal, layers), layers)
            if len(data) <= budget_bytes:
                best = data if best is None or len(data) > len(best) else best
                if len(data) >= 0.92 * budget_bytes:
                    break
            goal *= min(1.5, max(0.5, (0.96 * budget_bytes) / len(data)))
        if best is None:
            raise CodecError(f"could not fit the image into Budget(bits={budget_bits}); raise the budget")
        return best

    def _encode_psnr(self, img: np.ndarray, target_db: float, t0: float) -> Payload:
        lo, hi = math.log(max(300.0, img.size / 400)), math.log(img.size / 1.5)
        best = None
        for _ in range(9):
            mid = 0.5 * (lo + hi)
            layers = self._layers_for(math.exp(mid))
            data = self._frame(img, self._write(img, math.exp(mid), layers), layers)
            q = psnr(img, self.decode(data))
            if q >= target_db:
                best, hi = data, mid
            else:
                lo = mid
        if best is None:
            best = self._frame(img, self._write(img, None, 1), 1)  # lossless: always meets the target
        return self._payload(img, best, t0, target_psnr_db=target_db)

    # ---- decoding -------------------------------------------------------------------------------------
    def decode(self, data: bytes, **_: object) -> np.ndarray:
        """Decode the longest intact prefix of quality layers; CodecError when none survived."""
        import glymur

        data = bytes(data)
        body, off = unpack_header(data, self.codec_id)
        if len(body) < _BODY.size:
            raise CodecError("JPEG 2000 header body too short")
        h, w, n_ch, n_layers = _BODY.unpack_from(body)
        cs = data[off:]
        good_end, start = 0, 0
        for k in range(min(n_layers, (len(body) - _BODY.size) // _LAYER.size)):
            end, crc = _LAYER.unpack_from(body, _BODY.size + k * _LAYER.size)
            if end > len(cs) or end <= start or zlib.crc32(cs[0 if k == 0 else start : end]) != crc:
                break
            good_end, start = end, end
        if good_end == 0:
            raise CodecError("no intact JPEG 2000 quality layer arrived (truncated or corrupted): erasure")
        sot, _, _ = _parse_codestream(cs[:good_end])
        stream = bytearray(cs[:good_end])
        stream[sot + 6 : sot + 10] = b"\0\0\0\0"  # Psot = 0: the tile-part runs until EOC
        stream += _EOC
        with tempfile.TemporaryDirectory(prefix="sagin-j2k-") as tmp:
            path = os.path.join(tmp, "x.j2k")
            with open(path, "wb") as f:
                f.write(stream)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = glymur.Jp2k(path)[:]
            except Exception as exc:  # OpenJPEG refused the (intact-by-CRC) prefix
                raise CodecError(f"OpenJPEG could not decode the received layers: {exc}") from None
        out = np.asarray(out)
        if out.shape[:2] != (h, w):
            raise CodecError(f"decoded {out.shape[:2]} but the header says {(h, w)}")
        return out.astype(np.uint8) if out.dtype != np.uint8 else out


class Jpeg2000LosslessCodec(Jpeg2000Codec):
    """Lossless JPEG 2000 (reversible 5/3 wavelet): the whole image, bit exact, at whatever size it takes.

    [P000]'s Mode 1 read literally: a large, fixed volume, with no rate adaptation.
    The payload is the same format as :class:`Jpeg2000Codec`'s (one quality layer), so either decodes it.
    """

    name = "jpeg2000-lossless"

    def encode(self, image: np.ndarray, budget: Budget | None = None) -> Payload:
        """Budget.bits, if given, is a ceiling (CodecError when the image needs more); any PSNR target is met."""
        t0 = time.perf_counter()
        img = self._image(image)
        data = self._frame(img, self._write(img, None, 1), 1)
        if budget is not None and budget.bits is not None and 8 * len(data) > budget.bits:
            raise CodecError(f"this image needs {8 * len(data)} bits losslessly, over Budget(bits={budget.bits}); "
                             "use the rate-adaptive 'jpeg2000' codec to fit a budget")
        return self._payload(img, data, t0)
