"""SPIFF's fidelity scores per relevance rank: perceptual (PF) and semantic (SF), in [0, 1], higher is better.

With the user's weights (``<weights-dir>/lpips/`` and ``<weights-dir>/clip/``, see codecs/perceptual.py):

- PF = 1 - LPIPS (AlexNet, v0.1), as paper 003 defines it;
- SF = normalised CLIP score: max(cos, 0) of the CLIP image embeddings of the original and the reconstruction
  (CLIP image-image similarity / 100), so an identical image scores 1.

Offline (no weights given), documented proxies, reported with ``proxy = True`` and never as LPIPS or CLIP:

- PF proxy = MS-SSIM (five scales; 1 - the normalised MS-SSIM distance), a structural perceptual measure;
- SF proxy = cosine similarity of HOG descriptors (8 orientations, 32 px cells): agreement of the edge and shape
  layout, a crude stand-in for "the same things are where they were".

Scores for rank l compare the images with every pixel of the other ranks set to the original's in both, so only
rank l's content can differ, and are then referred to rank l's share a_l of the image:
f_l = 1 - (1 - score) / a_l (clipped to [0, 1]); for a spatially averaged score that is its mean over rank l's
pixels, so a small background is not flattered by the identical rest of the frame. Paper 003 reports f_0 (the
low-relevance rank) against Table III's targets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["FidelityScorer", "rank_view"]


def rank_view(reference: np.ndarray, test: np.ndarray, ranks: np.ndarray, rank: int) -> np.ndarray:
    """`test` with the pixels of ranks other than `rank` replaced by the reference's."""
    keep = (np.asarray(ranks) == rank)
    t = np.asarray(test)
    return np.where(keep[:, :, None] if t.ndim == 3 else keep, t, np.asarray(reference))


def _hog(img: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray
    from skimage.feature import hog

    grey = rgb2gray(img) if img.ndim == 3 else img / 255.0
    return hog(grey, orientations=8, pixels_per_cell=(32, 32), cells_per_block=(1, 1), feature_vector=True)


class FidelityScorer:
    """PF and SF of reconstructions: learned (weights_dir given) or the offline proxies (weights_dir None)."""

    def __init__(self, weights_dir: str | Path | None = None, device: str = "auto"):
        self.proxy = weights_dir is None
        self.names = ("MS-SSIM (PF proxy)", "HOG cosine (SF proxy)") if self.proxy else ("1 - LPIPS", "CLIP image similarity")
        if not self.proxy:
            from sagin_hil.codecs.perceptual import load_perceptual

            m = load_perceptual(weights_dir, ("lpips", "clipscore"), device=device)
            self._lpips, self._clip = m["lpips"], m["clipscore"]

    def pf(self, reference: np.ndarray, test: np.ndarray) -> float:
        if self.proxy:
            from sagin_hil.codecs.metrics import ms_ssim

            return float(np.clip(ms_ssim(reference, test), 0.0, 1.0))
        return float(np.clip(1.0 - self._lpips(reference, test), 0.0, 1.0))

    def sf(self, reference: np.ndarray, test: np.ndarray) -> float:
        if self.proxy:
            a, b = _hog(np.asarray(reference)), _hog(np.asarray(test))
            den = float(np.linalg.norm(a) * np.linalg.norm(b))
            return 1.0 if den == 0 else float(np.clip(a @ b / den, 0.0, 1.0))
        return float(np.clip(self._clip.clip_image_similarity(reference, test) / 100.0, 0.0, 1.0))

    def per_rank(self, reference: np.ndarray, test: np.ndarray, ranks: np.ndarray, n_ranks: int) -> dict[str, list[float]]:
        """{"pf": [f_0, ..., f_{R-1}], "sf": [...]}: the scores of each rank (1.0 for a rank with no pixels)."""
        out: dict[str, list[float]] = {"pf": [], "sf": []}
        for r in range(n_ranks):
            if not (ranks == r).any():
                out["pf"].append(1.0)
                out["sf"].append(1.0)
                continue
            view = rank_view(reference, test, ranks, r)
            share = float((ranks == r).mean())
            out["pf"].append(float(np.clip(1.0 - (1.0 - self.pf(reference, view)) / share, 0.0, 1.0)))
            out["sf"].append(float(np.clip(1.0 - (1.0 - self.sf(reference, view)) / share, 0.0, 1.0)))
        return out
