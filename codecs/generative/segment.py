"""Semantic segmentation for SPIFF: a label map per pixel, behind one interface, and the relevance map.

Two segmenters:

- :class:`FacePersonSegmenter` (the offline default, nothing to download): scikit-image's LBP frontal-face
  cascade (the OpenCV cascade file shipped inside scikit-image) finds faces; each face is extended to a person
  region by a fixed body-proportion model: a head ellipse plus a torso that widens from the neck to four face
  widths and runs to the bottom of the frame (a portrait framing). It finds frontal people only: a profile
  (scikit-image's "camera") has no detection and so no person. How good it is on the hand-labelled person boxes
  of the package images is measured by :func:`person_box_agreement` (docs/spiff.md).
- :class:`TransformersSegmenter`: a real semantic-segmentation model through transformers
  (SegFormer, MobileViT + DeepLabV3 as in the paper, ...) from ``<weights-dir>/segmentation/``: a Hugging Face
  model folder with ``config.json`` (its ``id2label`` must name a "person" class) and ``model.safetensors``
  (or ``pytorch_model.bin``), plus an optional ``preprocessor_config.json``.

Every segmenter returns labels over :data:`CLASSES` ("other" = 0, "person" = 1); :func:`relevance_map` maps them
to relevance ranks with a configurable table (paper 003's person task: person -> 1 "high", other -> 0 "low").
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np

__all__ = [
    "CLASSES", "DEFAULT_RELEVANCE", "Segmenter", "FacePersonSegmenter", "TransformersSegmenter", "SegmentationWeightsError",
    "relevance_map", "get_segmenter", "SEGMENTATION_LAYOUT", "person_box_agreement", "HAND_PERSON_BOXES",
]

CLASSES: tuple[str, ...] = ("other", "person")
DEFAULT_RELEVANCE: dict[str, int] = {"other": 0, "person": 1}  # paper 003's person-monitoring task, R = 2

# Person boxes (x0, y0, x1, y1) in native pixels, drawn by hand on the package images (whole visible body,
# hair and hat included; the astronaut's held helmet is not the person).
HAND_PERSON_BOXES: dict[str, tuple[int, int, int, int]] = {
    "astronaut": (20, 15, 370, 512),
    "camera": (0, 65, 330, 512),
    "grace_hopper": (15, 20, 512, 600),
}


class SegmentationWeightsError(ValueError):
    """The user's segmentation model does not name a person class."""


class Segmenter(Protocol):
    name: str

    def labels(self, image: np.ndarray) -> np.ndarray:
        """uint8 HxW class indices into CLASSES."""
        ...


def relevance_map(labels: np.ndarray, relevance: Mapping[str, int] | None = None) -> np.ndarray:
    """Relevance rank per pixel (uint8) from class labels; `relevance` maps every name of CLASSES to a rank."""
    table = dict(DEFAULT_RELEVANCE if relevance is None else relevance)
    unknown = set(table) - set(CLASSES)
    if unknown:
        raise ValueError(f"relevance names unknown classes {sorted(unknown)}; the classes are {', '.join(CLASSES)}")
    missing = set(CLASSES) - set(table)
    if missing:
        raise ValueError(f"relevance gives no rank for {sorted(missing)}; give a rank (0 = lowest) for every class")
    ranks = np.array([int(table[c]) for c in CLASSES], dtype=np.int64)
    if ranks.min() < 0 or ranks.max() > 7:
        raise ValueError(f"relevance ranks {table} must lie in 0..7")
    return ranks[np.asarray(labels, dtype=np.int64)].astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# Offline default: face cascade + body-proportion model
# ---------------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _cascade() -> Any:
    from skimage import data
    from skimage.feature import Cascade

    return Cascade(data.lbp_frontal_face_cascade_filename())


class FacePersonSegmenter:
    """Person regions from frontal faces (see the module doc). min_face_frac: smallest face side as a fraction
    of the image's shorter side (smaller detections are texture, e.g. reflections on a helmet)."""

    name = "face-person"

    def __init__(self, min_face_frac: float = 0.08):
        if not 0.0 < min_face_frac < 1.0:
            raise ValueError(f"min_face_frac = {min_face_frac}; use a fraction in (0, 1), e.g. 0.08")
        self.min_face_frac = min_face_frac

    def faces(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Detected faces as (x, y, width, height), small ones dropped, overlapping ones merged to the largest."""
        from skimage.color import rgb2gray

        img = np.asarray(image)
        grey = rgb2gray(img) if img.ndim == 3 else img.astype(float) / 255.0
        side = min(grey.shape)
        lo = max(16, int(self.min_face_frac * side))
        det = _cascade().detect_multi_scale(img=grey, scale_factor=1.2, step_ratio=1, min_size=(lo, lo),
                                            max_size=(side, side))
        boxes = sorted(((d["c"], d["r"], d["width"], d["height"]) for d in det), key=lambda b: -b[2] * b[3])
        kept: list[tuple[int, int, int, int]] = []
        for b in boxes:
            cx, cy = b[0] + b[2] / 2, b[1] + b[3] / 2
            if all(not (k[0] <= cx <= k[0] + k[2] and k[1] <= cy <= k[1] + k[3]) for k in kept):
                kept.append(tuple(int(v) for v in b))  # type: ignore[arg-type]
        return kept

    def labels(self, image: np.ndarray) -> np.ndarray:
        h, w = np.asarray(image).shape[:2]
        out = np.zeros((h, w), np.uint8)
        yy, xx = np.mgrid[0:h, 0:w]
        for x, y, fw, fh in self.faces(image):
            cx, cy = x + fw / 2, y + fh / 2
            head = ((xx - cx) / (0.75 * fw)) ** 2 + ((yy - (cy - 0.1 * fh)) / (0.95 * fh)) ** 2 <= 1.0
            neck_y = y + 1.05 * fh
            # torso half-width grows linearly from 0.8 face widths at the neck to 2 face widths 3 faces lower
            half = np.clip(0.8 * fw + (yy - neck_y) / (3.0 * fh) * 1.2 * fw, 0.8 * fw, 2.0 * fw)
            torso = (yy >= neck_y - 0.2 * fh) & (np.abs(xx - cx) <= half)
            out[head | torso] = CLASSES.index("person")
        return out


# ---------------------------------------------------------------------------------------------------------------
# A real model from the user's weights directory
# ---------------------------------------------------------------------------------------------------------------

SEGMENTATION_LAYOUT: dict[str, tuple[str, ...]] = {
    "config.json": ("config.json",),  # its id2label must name a "person" class
    "weights": ("model.safetensors", "pytorch_model.bin"),
}


def _torch_device(device: str) -> Any:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TransformersSegmenter:
    """A transformers semantic-segmentation model (AutoModelForSemanticSegmentation) whose config names a
    "person" class; every other class is "other"."""

    name = "transformers"

    def __init__(self, weights_dir: str | Path, device: str = "auto"):
        from sagin_hil.codecs.generative.weights import require

        # a semantic-segmentation model saved with save_pretrained, e.g. apple/deeplabv3-mobilevit-small (the
        # paper's) or a SegFormer; preprocessor_config.json is optional
        folder = require(weights_dir, "segmentation", SEGMENTATION_LAYOUT, mode="spiff")
        from transformers import AutoConfig, AutoModelForSemanticSegmentation

        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        names = {int(k): str(v).lower() for k, v in (config.id2label or {}).items()}
        self.person_ids = [i for i, n in names.items() if n == "person" or n.startswith("person")]
        if not self.person_ids:
            raise SegmentationWeightsError(f"{folder}/config.json id2label has no 'person' class "
                                           f"(it has {sorted(set(names.values()))[:12]}...); use a model trained on "
                                           "PASCAL VOC, ADE20K or COCO-Stuff")
        self.device = _torch_device(device)
        self.model = AutoModelForSemanticSegmentation.from_pretrained(folder, local_files_only=True).to(self.device).eval()
        self.mean, self.std, self.size = self._preprocessing(folder)

    @staticmethod
    def _preprocessing(folder: Path) -> tuple[np.ndarray, np.ndarray, int | None]:
        import json

        p = folder / "preprocessor_config.json"
        cfg = json.loads(p.read_text()) if p.is_file() else {}
        mean = np.asarray(cfg.get("image_mean", [0.0, 0.0, 0.0]) if cfg.get("do_normalize", True) else [0.0] * 3, np.float32)
        std = np.asarray(cfg.get("image_std", [1.0, 1.0, 1.0]) if cfg.get("do_normalize", True) else [1.0] * 3, np.float32)
        size = cfg.get("crop_size") or cfg.get("size")
        side = None
        if isinstance(size, dict):
            side = size.get("height") or size.get("shortest_edge")
        elif isinstance(size, int):
            side = size
        return mean, std, (int(side) if side else None)

    def labels(self, image: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        img = np.asarray(image)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        h, w = img.shape[:2]
        x = torch.from_numpy(((img[:, :, :3].astype(np.float32) / 255.0 - self.mean) / self.std).transpose(2, 0, 1))[None]
        if self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        with torch.no_grad():
            logits = self.model(pixel_values=x.to(self.device)).logits
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        cls = logits.argmax(1)[0].cpu().numpy()
        return np.isin(cls, self.person_ids).astype(np.uint8) * CLASSES.index("person")


def get_segmenter(weights_dir: str | Path | None = None, device: str = "auto") -> Segmenter:
    """The user's model from `<weights_dir>/segmentation/` when a weights directory is given, else the offline
    face-person segmenter. A weights directory without that folder is an error naming what to put there."""
    if weights_dir is None:
        return FacePersonSegmenter()
    return TransformersSegmenter(weights_dir, device=device)


def person_box_agreement(segmenter: Segmenter | None = None) -> dict[str, dict[str, float]]:
    """How well `segmenter`'s person region matches the hand-drawn person boxes of the package images:
    per image the IoU of its person bounding box with the hand box and the fraction of its person pixels that
    fall inside the hand box (precision)."""
    from sagin_hil.codecs.images import _load_raw

    seg = segmenter or FacePersonSegmenter()
    out = {}
    for name, (x0, y0, x1, y1) in HAND_PERSON_BOXES.items():
        person = seg.labels(_load_raw(name)) == CLASSES.index("person")
        if not person.any():
            out[name] = {"box_iou": 0.0, "precision": 0.0, "found": 0.0}
            continue
        ys, xs = np.nonzero(person)
        bx0, by0, bx1, by1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        iw, ih = max(0, min(x1, bx1) - max(x0, bx0)), max(0, min(y1, by1) - max(y0, by0))
        inter = iw * ih
        union = (x1 - x0) * (y1 - y0) + (bx1 - bx0) * (by1 - by0) - inter
        inside = person[y0:y1, x0:x1].sum() / person.sum()
        out[name] = {"box_iou": float(inter / union), "precision": float(inside), "found": 1.0}
    return out
