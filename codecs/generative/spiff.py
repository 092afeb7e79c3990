"""SPIFF (paper 003): keep the relevant content at full fidelity, send a sample of the rest, inpaint the gaps.

Encoder (per image, configuration x = (beta, p, caption)):

1. segment the image into classes (segment.py) and map them to relevance ranks 0..R-1 (person = R-1 = high);
2. bounding box around the highest-rank pixels, grown by beta toward the image edges (beta = 0: the segment's
   own box; 1: the whole image), snapped outward to the patch grid;
3. outside the box, every patch_px x patch_px patch takes the highest rank among its pixels; a fraction p(l)
   of the patches of rank l is kept, chosen at random (seeded);
4. the box crop and the "patch grid" (kept patches tiled side by side in raster order) are coded with the
   project's JPEG 2000 at `kept_bpp` bits per kept pixel;
5. the mask (one bit per patch of the grid, outside the box) is packed and deflated when that is shorter;
6. an optional caption (UTF-8) for a text-guided inpainter.

Payload (every part counted in ``Payload.metadata["bits"]``; the parts sum exactly to ``n_bits``)::

    SG header (codec id 15): height u16 | width u16 | channels u8 | patch_px u8 | flags u8 |
                             box x0 y0 x1 y1 u16 x 4 | mask bytes u32 | crop bytes u32 | grid bytes u32 |
                             caption bytes u16
    mask | crop (JPEG 2000 payload) | patch grid (JPEG 2000 payload) | caption

Decoder: recompose the crop and patches, inpaint the rest (inpaint.py), then paste every received pixel back,
so the kept pixels are exactly the JPEG 2000-decoded ones (a latent diffusion model's VAE alters them).
"""

from __future__ import annotations

import math
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sagin_hil.codecs.base import Budget, Codec, CodecError, Payload, check_image, pack_header, unpack_header

__all__ = ["SpiffCodec", "SpiffConfig", "SpiffParts", "template_caption"]

_BODY = struct.Struct(">HHBBB4HIIIH")
_FLAG_MASK_DEFLATED, _FLAG_CAPTION = 1, 2
MIN_PART_BITS = 1400  # JPEG 2000's main header and one layer need about this much


@dataclass(frozen=True)
class SpiffConfig:
    """SPIFF's run-time configuration.

    beta: bounding-box growth in [0, 1]; keep: p(l), the fraction of patches kept for each rank below the
    highest (rank 0 first; R - 1 values); caption: send a caption; patch_px: patch side (8..64);
    kept_bpp: JPEG 2000 bits per kept pixel; seed: patch sampling seed.
    """

    beta: float = 0.25
    keep: tuple[float, ...] = (0.2,)
    caption: bool = False
    patch_px: int = 16
    kept_bpp: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise CodecError(f"SPIFF beta = {self.beta}; use a value in [0, 1] (0: the segment's box, 1: whole image)")
        keep = tuple(float(k) for k in (self.keep if isinstance(self.keep, (tuple, list)) else (self.keep,)))
        if not keep or any(not 0.0 <= k <= 1.0 for k in keep):
            raise CodecError(f"SPIFF keep = {self.keep}; give one fraction in [0, 1] per lower-relevance rank")
        object.__setattr__(self, "keep", keep)
        if not 8 <= self.patch_px <= 64:
            raise CodecError(f"SPIFF patch_px = {self.patch_px}; use 8..64 pixels")
        if not 0.05 <= self.kept_bpp <= 24.0:
            raise CodecError(f"SPIFF kept_bpp = {self.kept_bpp}; use 0.05..24 bits per kept pixel")


@dataclass
class SpiffParts:
    """A demultiplexed SPIFF payload: header fields and the raw bytes of each part."""

    height: int
    width: int
    channels: int
    patch_px: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive); all zero when no box was sent
    kept_cells: np.ndarray  # bool (grid rows, grid cols): patches sent outside the box
    crop: bytes
    grid: bytes
    caption: str
    bits: dict[str, int] = field(default_factory=dict)


def template_caption(ranks: np.ndarray, labels: np.ndarray) -> str:
    """The offline caption: which classes the segmenter saw (no captioning model runs here)."""
    from sagin_hil.codecs.generative.segment import CLASSES

    present = [CLASSES[i] for i in np.unique(labels) if CLASSES[i] != "other"]
    return "a photo of " + (" and ".join(f"a {c}" for c in present) if present else "a scene")


def _grid_shape(h: int, w: int, p: int) -> tuple[int, int]:
    return math.ceil(h / p), math.ceil(w / p)


class SpiffCodec(Codec):
    """SPIFF with a segmenter and an inpainter: the offline ones, or the user's models from `weights_dir`
    (``segmentation/`` and ``stable-diffusion-inpainting/``, see segment.py and inpaint.py).

    Input (encode): uint8 HxW or HxWx3 image; Budget(bits=...) is a ceiling (CodecError above it), other
    fields are ignored. Output: Payload with metadata "bits" (per part), "box", "kept_pixel_fraction",
    "high_fraction" (pixels of the highest rank), "caption".
    """

    name = "spiff"
    codec_id = 15

    def __init__(self, config: SpiffConfig | None = None, relevance: Mapping[str, int] | None = None,
                 weights_dir: str | Path | None = None, device: str = "auto", inpaint_steps: int = 25,
                 segmenter: Any = None, inpainter: Any = None, **config_kwargs: Any):
        from sagin_hil.codecs.generative.segment import DEFAULT_RELEVANCE, relevance_map

        self.config = config or SpiffConfig(**config_kwargs)
        self.relevance = dict(DEFAULT_RELEVANCE if relevance is None else relevance)
        relevance_map(np.zeros((1, 1), np.uint8), self.relevance)  # validate the table now
        self.n_ranks = max(self.relevance.values()) + 1
        if len(self.config.keep) != self.n_ranks - 1:
            raise CodecError(f"SPIFF keep = {self.config.keep} gives {len(self.config.keep)} fractions but the "
                             f"relevance table has {self.n_ranks - 1} lower rank(s); give one per rank below the top")
        self.weights_dir, self.device, self.inpaint_steps = weights_dir, device, inpaint_steps
        self._segmenter, self._inpainter = segmenter, inpainter
        self._seg_cache: dict[str, Any] = {}

    # the models load on first use, so building the codec (and `sagin-hil run` validation) stays cheap
    @property
    def segmenter(self) -> Any:
        if self._segmenter is None:
            from sagin_hil.codecs.generative.segment import get_segmenter

            self._segmenter = get_segmenter(self.weights_dir, self.device)
        return self._segmenter

    @property
    def inpainter(self) -> Any:
        if self._inpainter is None:
            from sagin_hil.codecs.generative.inpaint import get_inpainter

            self._inpainter = get_inpainter(self.weights_dir, self.device, self.inpaint_steps)
        return self._inpainter

    def with_config(self, **changes: Any) -> SpiffCodec:
        """The same codec (sharing its loaded models) with some configuration fields changed."""
        from dataclasses import replace

        out = SpiffCodec(replace(self.config, **changes), self.relevance, self.weights_dir, self.device,
                         self.inpaint_steps, self.segmenter, self._inpainter)
        out._seg_cache = self._seg_cache
        return out

    # ---- encoding ---------------------------------------------------------------------------------------
    def ranks(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class labels, relevance ranks) of an image."""
        from sagin_hil.codecs.generative.segment import relevance_map

        key = (image.shape, hash(image.tobytes()))  # re-encoding one image with other configurations segments once
        if self._seg_cache.get("key") != key:
            self._seg_cache.update(key=key, labels=self.segmenter.labels(image))
        labels = self._seg_cache["labels"]
        return labels, relevance_map(labels, self.relevance)

    def segment(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the RGB image SPIFF codes, its class labels, its relevance ranks); a grey image is coded as RGB."""
        img = check_image(image)
        grey = img.ndim == 2 or img.shape[2] == 1
        rgb = np.repeat(img.reshape(img.shape[0], img.shape[1], -1)[:, :, :1], 3, 2) if grey else img
        return (rgb, *self.ranks(rgb))

    def _box(self, high: np.ndarray) -> tuple[int, int, int, int]:
        """The segment's bounding box grown by beta toward the edges, snapped outward to the patch grid."""
        if not high.any():
            return (0, 0, 0, 0)
        h, w = high.shape
        ys, xs = np.nonzero(high)
        b, p = self.config.beta, self.config.patch_px
        x0, y0 = xs.min() * (1 - b), ys.min() * (1 - b)
        x1, y1 = xs.max() + 1 + b * (w - xs.max() - 1), ys.max() + 1 + b * (h - ys.max() - 1)
        return (int(x0 // p * p), int(y0 // p * p), min(w, int(math.ceil(x1 / p) * p)), min(h, int(math.ceil(y1 / p) * p)))

    def _kept_cells(self, ranks: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        h, w = ranks.shape
        p = self.config.patch_px
        gh, gw = _grid_shape(h, w, p)
        padded = np.pad(ranks, ((0, gh * p - h), (0, gw * p - w)), mode="edge")
        cell_rank = padded.reshape(gh, p, gw, p).max(axis=(1, 3))
        in_box = np.zeros((gh, gw), bool)
        x0, y0, x1, y1 = box
        if x1 > x0:
            in_box[y0 // p : math.ceil(y1 / p), x0 // p : math.ceil(x1 / p)] = True
        kept = np.zeros((gh, gw), bool)
        rng = np.random.default_rng(self.config.seed)
        for rank, frac in enumerate(self.config.keep):
            # the box holds every top-rank pixel, so the cells outside it are of lower ranks
            cells = np.flatnonzero((cell_rank.ravel() == rank) & ~in_box.ravel())
            n = int(round(frac * cells.size))
            kept.ravel()[rng.permutation(cells)[:n]] = True
        return kept

    def _j2k(self, img: np.ndarray) -> bytes:
        from sagin_hil.codecs.jpeg2000 import Jpeg2000Codec

        bits = max(MIN_PART_BITS, int(self.config.kept_bpp * img.shape[0] * img.shape[1]))
        return Jpeg2000Codec(n_layers=1).encode(img, Budget(bits=bits)).data

    def encode(self, image: np.ndarray, budget: Budget | None = None) -> Payload:
        t0 = time.perf_counter()
        rgb, labels, ranks = self.segment(image)
        channels = 1 if np.ndim(image) == 2 or np.shape(image)[2] == 1 else 3
        h, w = rgb.shape[:2]
        p = self.config.patch_px
        top = self.n_ranks - 1
        box = self._box(ranks == top)
        kept = self._kept_cells(ranks, box)
        x0, y0, x1, y1 = box
        crop = self._j2k(rgb[y0:y1, x0:x1]) if x1 > x0 else b""
        grid_img = self._tile(rgb, kept)
        grid = self._j2k(grid_img) if grid_img is not None else b""
        packed = np.packbits(kept.ravel()).tobytes()
        deflated = zlib.compress(packed, 9)
        flags = _FLAG_MASK_DEFLATED if len(deflated) < len(packed) else 0
        mask = deflated if flags else packed
        caption = template_caption(ranks, labels).encode() if self.config.caption else b""
        if caption:
            flags |= _FLAG_CAPTION
        body = _BODY.pack(h, w, channels, p, flags, x0, y0, x1, y1, len(mask), len(crop), len(grid), len(caption))
        head = pack_header(self.codec_id, body)
        data = head + mask + crop + grid + caption
        n_bits = 8 * len(data)
        if budget is not None and budget.bits is not None and n_bits > budget.bits:
            raise CodecError(f"SPIFF payload of {n_bits} bits exceeds Budget(bits={budget.bits}); lower keep, beta "
                             "or kept_bpp, or raise the budget")
        known = self._known(h, w, p, box, kept)
        return Payload(
            codec=self.name, data=data, n_bits=n_bits, encode_time_s=time.perf_counter() - t0,
            metadata={
                "bits": {"header": 8 * len(head), "mask": 8 * len(mask), "crop": 8 * len(crop), "grid": 8 * len(grid),
                         "caption": 8 * len(caption)},
                "box": box, "kept_patches": int(kept.sum()), "kept_pixel_fraction": float(known.mean()),
                "high_fraction": float((ranks == top).mean()), "caption": caption.decode(),
                "bpp": n_bits / (h * w), "beta": self.config.beta, "keep": list(self.config.keep),
            },
        )

    def _tile(self, rgb: np.ndarray, kept: np.ndarray) -> np.ndarray | None:
        """The kept patches side by side in raster order, ceil(sqrt(n)) columns; unused slots take the mean."""
        n = int(kept.sum())
        if n == 0:
            return None
        p = self.config.patch_px
        h, w = rgb.shape[:2]
        gh, gw = kept.shape
        padded = np.pad(rgb, ((0, gh * p - h), (0, gw * p - w), (0, 0)), mode="edge")
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        patches = padded.reshape(gh, p, gw, p, 3).transpose(0, 2, 1, 3, 4)[kept]
        fill = np.broadcast_to(patches.mean(axis=(0, 1, 2)).astype(np.uint8), (rows * cols - n, p, p, 3))
        allp = np.concatenate([patches, fill]) if rows * cols > n else patches
        return np.ascontiguousarray(allp.reshape(rows, cols, p, p, 3).transpose(0, 2, 1, 3, 4).reshape(rows * p, cols * p, 3))

    @staticmethod
    def _known(h: int, w: int, p: int, box: tuple[int, int, int, int], kept: np.ndarray) -> np.ndarray:
        known = np.repeat(np.repeat(kept, p, 0), p, 1)[:h, :w].copy()
        x0, y0, x1, y1 = box
        known[y0:y1, x0:x1] = True
        return known

    # ---- decoding ---------------------------------------------------------------------------------------
    def demux(self, data: bytes) -> SpiffParts:
        """Split a payload into its parts (CodecError when the header is bad or a part is cut short)."""
        data = bytes(data)
        body, off = unpack_header(data, self.codec_id)
        if len(body) != _BODY.size:
            raise CodecError(f"SPIFF header body is {len(body)} bytes, expected {_BODY.size}")
        h, w, ch, p, flags, x0, y0, x1, y1, n_mask, n_crop, n_grid, n_cap = _BODY.unpack(body)
        if len(data) < off + n_mask + n_crop + n_grid + n_cap:
            raise CodecError(f"SPIFF payload truncated: {len(data)} bytes of {off + n_mask + n_crop + n_grid + n_cap}")
        if p == 0 or not (0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h):
            raise CodecError(f"SPIFF header is inconsistent (patch {p} px, box {(x0, y0, x1, y1)} in {w} x {h})")
        parts, pos = [], off
        for n in (n_mask, n_crop, n_grid, n_cap):
            parts.append(data[pos : pos + n])
            pos += n
        mask, crop, grid, cap = parts
        gh, gw = _grid_shape(h, w, p)
        try:
            packed = zlib.decompress(mask) if flags & _FLAG_MASK_DEFLATED else mask
        except zlib.error as exc:
            raise CodecError(f"SPIFF mask does not inflate: {exc}") from None
        bits = np.unpackbits(np.frombuffer(packed, np.uint8))
        if bits.size < gh * gw:
            raise CodecError(f"SPIFF mask has {bits.size} bits for a {gh} x {gw} patch grid")
        return SpiffParts(h, w, ch, p, (x0, y0, x1, y1), bits[: gh * gw].reshape(gh, gw).astype(bool), crop, grid,
                          cap.decode("utf-8", errors="replace"),
                          {"header": 8 * off, "mask": 8 * n_mask, "crop": 8 * n_crop, "grid": 8 * n_grid, "caption": 8 * n_cap})

    def recompose(self, parts: SpiffParts) -> tuple[np.ndarray, np.ndarray]:
        """(image with the received pixels, bool mask of them) from demultiplexed parts."""
        from sagin_hil.codecs.jpeg2000 import Jpeg2000Codec

        j2k = Jpeg2000Codec()
        h, w, p = parts.height, parts.width, parts.patch_px
        gh, gw = parts.kept_cells.shape
        canvas = np.zeros((gh * p, gw * p, 3), np.uint8)
        n = int(parts.kept_cells.sum())
        if n:
            if not parts.grid:
                raise CodecError(f"SPIFF mask names {n} patches but no patch grid arrived")
            tiles = self._as_rgb(j2k.decode(parts.grid))
            cols = math.ceil(math.sqrt(n))
            rows = math.ceil(n / cols)
            if tiles.shape[:2] != (rows * p, cols * p):
                raise CodecError(f"SPIFF patch grid is {tiles.shape[:2]}, expected {(rows * p, cols * p)}")
            patches = tiles.reshape(rows, p, cols, p, 3).transpose(0, 2, 1, 3, 4).reshape(-1, p, p, 3)[:n]
            view = canvas.reshape(gh, p, gw, p, 3).transpose(0, 2, 1, 3, 4)
            view[parts.kept_cells] = patches
        x0, y0, x1, y1 = parts.box
        if x1 > x0:
            crop = self._as_rgb(j2k.decode(parts.crop))
            if crop.shape[:2] != (y1 - y0, x1 - x0):
                raise CodecError(f"SPIFF crop is {crop.shape[:2]}, the box is {(y1 - y0, x1 - x0)}")
            canvas[y0:y1, x0:x1] = crop
        return canvas[:h, :w], self._known(h, w, p, parts.box, parts.kept_cells)

    @staticmethod
    def _as_rgb(img: np.ndarray) -> np.ndarray:
        return np.repeat(img[:, :, None], 3, 2) if img.ndim == 2 else img[:, :, :3]

    def decode(self, data: bytes, seed: int = 0, **_: Any) -> np.ndarray:
        """Recompose, inpaint the missing pixels, paste the received ones back."""
        parts = self.demux(data)
        canvas, known = self.recompose(parts)
        out = canvas.copy() if known.all() else np.asarray(self.inpainter.inpaint(canvas, known, parts.caption, seed=seed))
        if out.shape != canvas.shape:
            raise CodecError(f"the inpainter returned {out.shape}, expected {canvas.shape}")
        out = np.where(known[:, :, None], canvas, out).astype(np.uint8)  # received pixels exactly as decoded
        return out[:, :, 0] if parts.channels == 1 else out
