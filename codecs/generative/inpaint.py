"""Inpainters for SPIFF's decoder: fill the pixels that were not sent.

- :class:`PyramidInpainter` (offline default, no weights): a push-pull fill. The known pixels are averaged
  down an image pyramid (mask-weighted, so only known pixels count), the coarsest level is filled everywhere,
  and each finer level takes the upsampled coarser estimate where it knows nothing; a few Jacobi (harmonic)
  sweeps then smooth the seams. It costs O(pixels), milliseconds at 256 x 256, and fills any hole size
  (scikit-image's biharmonic inpainting solves a sparse system per hole and takes seconds on large masks).
- :class:`DiffusersInpainter`: diffusers' StableDiffusionInpaintPipeline (Stable Diffusion 2 inpainting in
  the paper) from ``<weights-dir>/stable-diffusion-inpainting/``, a folder saved with ``save_pretrained``
  (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/), prompted with the caption.

Both return uint8 images; the SPIFF decoder pastes the received pixels back afterwards (the VAE round trip of
a latent diffusion model changes pixels outside its mask).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from sagin_hil.codecs.generative.segment import _torch_device

__all__ = ["Inpainter", "PyramidInpainter", "DiffusersInpainter", "get_inpainter", "INPAINT_COMPONENT"]


INPAINT_COMPONENT = "stable-diffusion-inpainting"  # <weights-dir>/ folder, the Stable Diffusion layout


class Inpainter(Protocol):
    name: str

    def inpaint(self, image: np.ndarray, known: np.ndarray, caption: str = "", seed: int = 0) -> np.ndarray:
        """image: uint8 HxWx3 (unknown pixels arbitrary); known: bool HxW. Returns uint8 HxWx3."""
        ...


class PyramidInpainter:
    """Push-pull fill plus `smooth_iters` harmonic sweeps over the unknown pixels (see the module doc)."""

    name = "pyramid"

    def __init__(self, smooth_iters: int = 20):
        if smooth_iters < 0:
            raise ValueError(f"smooth_iters = {smooth_iters}; use 0 or more")
        self.smooth_iters = smooth_iters

    @staticmethod
    def _down(v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, wd = v.shape[:2]
        ph, pw = h % 2, wd % 2
        if ph or pw:
            v = np.pad(v, ((0, ph), (0, pw), (0, 0)), mode="edge")
            w = np.pad(w, ((0, ph), (0, pw)))
        vs = (v * w[:, :, None]).reshape(v.shape[0] // 2, 2, v.shape[1] // 2, 2, -1).sum((1, 3))
        ws = w.reshape(w.shape[0] // 2, 2, w.shape[1] // 2, 2).sum((1, 3))
        return np.where(ws[:, :, None] > 0, vs / np.maximum(ws, 1e-12)[:, :, None], 0.0), np.minimum(ws, 1.0)

    def inpaint(self, image: np.ndarray, known: np.ndarray, caption: str = "", seed: int = 0) -> np.ndarray:
        img = np.asarray(image, np.float64)
        grey = img.ndim == 2
        if grey:
            img = img[:, :, None]
        known = np.asarray(known, bool)
        if not known.any():  # nothing to spread: mid grey
            return np.full(np.asarray(image).shape, 128, np.uint8)
        levels = [(img * known[:, :, None], known.astype(np.float64))]
        while min(levels[-1][0].shape[:2]) > 1 and levels[-1][1].min() == 0:
            levels.append(self._down(*levels[-1]))
        est = levels[-1][0]
        for v, w in reversed(levels[:-1]):  # pull: coarse estimate where the finer level knows nothing
            up = np.repeat(np.repeat(est, 2, 0), 2, 1)[: v.shape[0], : v.shape[1]]
            est = w[:, :, None] * v + (1 - w[:, :, None]) * up
        out = np.where(known[:, :, None], img, est)
        hole = ~known
        for _ in range(self.smooth_iters):  # Jacobi sweeps of Laplace's equation inside the holes
            p = np.pad(out, ((1, 1), (1, 1), (0, 0)), mode="edge")
            avg = 0.25 * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:])
            out[hole] = avg[hole]
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out[:, :, 0] if grey else out


class DiffusersInpainter:
    """StableDiffusionInpaintPipeline from a local folder; `steps` denoising steps (the paper: quality is
    insensitive to them beyond a few), guidance_scale as diffusers defines it."""

    name = "stable-diffusion"

    def __init__(self, weights_dir: str | Path, device: str = "auto", steps: int = 25, guidance_scale: float = 7.5):
        from sagin_hil.codecs.generative.weights import LAYOUTS, require

        # an inpainting pipeline (UNet with 9 input channels) saved with save_pretrained, e.g. a local copy of
        # stabilityai/stable-diffusion-2-inpainting (the paper's)
        folder = require(weights_dir, INPAINT_COMPONENT, LAYOUTS["stable-diffusion"], mode="spiff")
        if steps < 1:
            raise ValueError(f"steps = {steps}; use at least 1 denoising step")
        import torch
        from diffusers import StableDiffusionInpaintPipeline

        self.device = _torch_device(device)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.pipe = StableDiffusionInpaintPipeline.from_pretrained(
            folder, local_files_only=True, dtype=dtype, safety_checker=None, requires_safety_checker=False
        ).to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.steps, self.guidance_scale = steps, guidance_scale

    def inpaint(self, image: np.ndarray, known: np.ndarray, caption: str = "", seed: int = 0) -> np.ndarray:
        import torch
        from PIL import Image

        img = np.asarray(image)
        h, w = img.shape[:2]
        ph, pw = -h % 64, -w % 64  # VAE x UNet down-sampling: 64 covers Stable Diffusion's 8 x 8
        padded = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")
        hole = np.pad(~np.asarray(known, bool), ((0, ph), (0, pw)), constant_values=True)
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        out = self.pipe(prompt=caption or "", image=Image.fromarray(padded),
                        mask_image=Image.fromarray((hole * 255).astype(np.uint8)),
                        height=padded.shape[0], width=padded.shape[1], num_inference_steps=self.steps,
                        guidance_scale=self.guidance_scale, generator=gen, output_type="np").images[0]
        return np.clip(np.rint(out[:h, :w] * 255.0), 0, 255).astype(np.uint8)


def get_inpainter(weights_dir: str | Path | None = None, device: str = "auto", steps: int = 25) -> Inpainter:
    """Stable Diffusion inpainting from `<weights_dir>/stable-diffusion-inpainting/` when a weights directory is
    given, else the offline pyramid fill."""
    if weights_dir is None:
        return PyramidInpainter()
    return DiffusersInpainter(weights_dir, device=device, steps=steps)
