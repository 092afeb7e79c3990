"""Images with people for SPIFF, from packages installed here (nothing downloaded).

Three photographs with a person ship inside installed packages: scikit-image's "astronaut" and "camera"
(the cameraman) and matplotlib's "grace_hopper". Following the project's split (codecs/images.py), astronaut
and camera are training images and grace_hopper is held out: SPIFF's engine is trained on variants of the first
two and evaluated on variants of grace_hopper only.

Variants: square crops of 60-100 % of the shorter side at the left / centre / right (top / centre / bottom) of
the frame, each also mirrored, resized to `size` px. Paper 003 evaluates on images whose person covers 20-60 %
of the frame; the crops vary that fraction (the face-person segmenter measures it per variant).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["PERSON_TRAIN", "PERSON_HELD_OUT", "person_images"]

PERSON_TRAIN: tuple[str, ...] = ("astronaut", "camera")
PERSON_HELD_OUT: tuple[str, ...] = ("grace_hopper",)
_SCALES = (1.0, 0.85, 0.7)
_ANCHORS = (0.0, 0.5, 1.0)


@functools.lru_cache(maxsize=8)
def _variants(name: str, size: int) -> tuple[tuple[str, np.ndarray], ...]:
    from skimage.transform import resize

    from sagin_hil.codecs.images import _load_raw

    img = _load_raw(name)
    h, w = img.shape[:2]
    out = []
    for scale in _SCALES:
        s = int(round(scale * min(h, w)))
        for ay in (_ANCHORS if h - s > 8 else (0.0,)):
            for ax in (_ANCHORS if w - s > 8 else (0.0,)):
                if scale < 1.0 and ay == 1.0 and name != "camera":
                    continue  # bottom crops of a portrait cut the face off: no person to find
                top, left = int(round(ay * (h - s))), int(round(ax * (w - s)))
                crop = img[top : top + s, left : left + s]
                small = np.clip(np.rint(resize(crop, (size, size), order=1, anti_aliasing=True, preserve_range=True)),
                                0, 255).astype(np.uint8)
                tag = f"{name}@{scale:.2f}:{ay:.1f},{ax:.1f}"
                out.append((tag, small))
                out.append((tag + ":flip", np.ascontiguousarray(small[:, ::-1])))
    return tuple(out)


def person_images(split: str = "train", size: int = 256) -> list[tuple[str, np.ndarray]]:
    """(tag, uint8 size x size x 3) variants of the person photographs of `split` ("train" or "eval")."""
    names = {"train": PERSON_TRAIN, "eval": PERSON_HELD_OUT}.get(split)
    if names is None:
        raise ValueError(f"unknown split {split!r}; use 'train' (astronaut, camera) or 'eval' (grace_hopper, held out)")
    if size < 64:
        raise ValueError(f"size = {size} px; use at least 64 (the segmenter needs a face of >= 16 px)")
    return [v for n in names for v in _variants(n, size)]
