"""The user's pretrained models (BLIP, Stable Diffusion) and paper 000's Mode 2: a caption as bits.

Mode 2 (Sec. III-A): the transmitter captions the image with BLIP (transformers BlipForConditionalGeneration
from <weights-dir>/blip/), sends the caption's UTF-8 bytes in a fixed CAPTION_BYTES field (cut at a
character boundary, zero-padded, so the mode's size is exact and known in advance), and the receiver draws
an image from the caption with Stable Diffusion (diffusers StableDiffusionPipeline from
<weights-dir>/stable-diffusion/) at the VAE's native size, resized to the original image's size.

Models load once per (folder, device) and are shared by every codec that needs them (Mode 2 and the latent
Modes 3_x of latent.py). Devices: "auto" picks CUDA when present.
"""

from __future__ import annotations

import functools
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from sagin_hil.codecs.base import Budget, Codec, CodecError, Payload, check_image, pack_header, unpack_header
from sagin_hil.codecs.generative.weights import require

__all__ = ["CAPTION_BYTES", "CaptionCodec", "load_blip", "load_stable_diffusion", "caption_image",
           "pack_caption", "unpack_caption", "resolve_device"]

CAPTION_BYTES = 64  # BLIP captions are ~5-12 words; 64 bytes hold them with room and fix the mode's bit count
MAX_CAPTION_TOKENS = 30
_BODY = struct.Struct(">HH")  # original height, width


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CodecError("device='cuda' but torch sees no CUDA device; use device = 'cpu' or 'auto'")
    return device


@functools.lru_cache(maxsize=2)
def load_blip(weights_dir: str, device: str) -> tuple[Any, Any]:
    """(BlipProcessor, BlipForConditionalGeneration) from <weights_dir>/blip/."""
    folder = require(weights_dir, "blip")
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model = BlipForConditionalGeneration.from_pretrained(folder).to(device).eval()
    return BlipProcessor.from_pretrained(folder), model


@functools.lru_cache(maxsize=2)
def load_stable_diffusion(weights_dir: str, device: str) -> Any:
    """A diffusers StableDiffusionPipeline from <weights_dir>/stable-diffusion/ (no safety checker: the images
    are the sender's own, regenerated)."""
    folder = require(weights_dir, "stable-diffusion")
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def caption_image(weights_dir: str, device: str, image: np.ndarray) -> str:
    """BLIP's caption of a uint8 HxWx3 image (greedy decoding, at most MAX_CAPTION_TOKENS tokens)."""
    import torch

    processor, model = load_blip(weights_dir, device)
    inputs = processor(images=image, return_tensors="pt").to(device)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=MAX_CAPTION_TOKENS, do_sample=False)
    return processor.decode(out[0], skip_special_tokens=True).strip()


def pack_caption(text: str) -> bytes:
    """UTF-8 bytes of `text` in a CAPTION_BYTES field: cut at a character boundary, zero-padded."""
    raw = text.encode("utf-8")[:CAPTION_BYTES]
    return raw.decode("utf-8", errors="ignore").encode("utf-8").ljust(CAPTION_BYTES, b"\0")


def unpack_caption(field: bytes) -> str:
    """The caption of a received field; bit errors give replacement characters, never an exception."""
    return bytes(field).rstrip(b"\0").decode("utf-8", errors="replace").replace("\0", " ").strip()


def _as_rgb(image: np.ndarray) -> np.ndarray:
    img = check_image(image)
    if img.ndim == 2 or img.shape[2] == 1:
        img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
    return img


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    from skimage.transform import resize

    if img.shape[:2] == (h, w):
        return img
    out = resize(img, (h, w), order=1, anti_aliasing=img.shape[0] > h, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class CaptionCodec(Codec):
    """Mode 2: payload = header + (height, width) + the caption in CAPTION_BYTES bytes; exactly
    8 * (10 + 4 + CAPTION_BYTES) = 624 bits for any image.

    Parameters: weights_dir (holding blip/ and stable-diffusion/), device ("auto", "cpu", "cuda"),
    steps (DDIM steps of the text-to-image), guidance_scale (classifier-free guidance), seed.
    decode(data, steps=None) draws the image; metadata of encode: {"caption", "caption_bits": 8 * CAPTION_BYTES}.
    """

    codec_id = 4
    name = "caption-t2i"

    def __init__(self, weights_dir: str | Path | None = None, device: str | None = "auto", steps: int = 20,
                 guidance_scale: float = 7.5, seed: int = 0, **_: object):
        require(weights_dir, "blip", mode="mode2")
        require(weights_dir, "stable-diffusion", mode="mode2")
        if steps < 1:
            raise ValueError(f"steps={steps} must be >= 1")
        self.weights_dir, self.device = str(weights_dir), resolve_device(device)
        self.steps, self.guidance_scale, self.seed = int(steps), float(guidance_scale), seed

    @staticmethod
    def n_bits() -> int:
        from sagin_hil.codecs.base import HEADER_OVERHEAD_BYTES

        return 8 * (HEADER_OVERHEAD_BYTES + _BODY.size + CAPTION_BYTES)

    def encode(self, image: np.ndarray, budget: Budget | None = None) -> Payload:
        t0 = time.perf_counter()
        img = _as_rgb(image)
        text = caption_image(self.weights_dir, self.device, img)
        data = pack_header(self.codec_id, _BODY.pack(*img.shape[:2])) + pack_caption(text)
        if budget is not None and budget.bits is not None and 8 * len(data) > budget.bits:
            raise CodecError(f"mode2 needs {8 * len(data)} bits (a {CAPTION_BYTES}-byte caption); "
                             f"Budget(bits={budget.bits}) is too small")
        return Payload(self.name, data, 8 * len(data), time.perf_counter() - t0,
                       metadata={"caption": unpack_caption(pack_caption(text)), "caption_bits": 8 * CAPTION_BYTES,
                                 "index_bits": 0})

    def decode(self, data: bytes, steps: int | None = None, **_: object) -> np.ndarray:
        import torch

        body, off = unpack_header(bytes(data), self.codec_id)
        h, w = _BODY.unpack(body)
        text = unpack_caption(bytes(data[off:off + CAPTION_BYTES]))
        pipe = load_stable_diffusion(self.weights_dir, self.device)
        size = int(pipe.vae.config.sample_size)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        out = pipe(text, num_inference_steps=int(steps or self.steps), guidance_scale=self.guidance_scale,
                   height=size, width=size, generator=gen, output_type="np").images[0]
        return _resize(np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8), h, w)
