"""The offline generative codec of Modes 3_1..3_3: the VQ codec's bits, decoded by the diffusion decoder.

Encoding is exactly the VQ codec's (same header, same h * w * log2 V index bits), so a payload of `vq-3_1`
and of `gen-3_1` are the same bytes; only the receiver differs (codecs/generative/diffusion.py).
Weights: codecs/weights/gen-3_1.safetensors etc. (`sagin-hil train generative --offline`) next to the VQ
weights vq-3_1.safetensors they decode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sagin_hil.codecs.vq import VqCodec

__all__ = ["GenVqCodec", "gen_weights_path"]


def gen_weights_path(mode: str, weights_dir: Path | None = None) -> Path:
    from sagin_hil.codecs.jscc import WEIGHTS_DIR

    return (weights_dir or WEIGHTS_DIR) / f"gen-{mode}.safetensors"


class GenVqCodec(VqCodec):
    """VQ indices as bits; decoder = plain VQ decoder + DDIM-sampled residual (`steps` steps, default 1).

    Input/output as :class:`~sagin_hil.codecs.vq.VqCodec`; decode(data, steps=None) takes the step count.
    """

    def __init__(self, vq: VqCodec, unet: torch.nn.Module, steps: int | None = None, seed: int = 0):
        super().__init__(vq.net, device=vq.device)
        self.unet = unet.eval().to(self.device)
        self.steps = int(unet.cfg.steps if steps is None else steps)
        if self.steps < 1:
            raise ValueError(f"steps={steps} must be >= 1")
        self.seed = seed
        self.name = f"gen-{self.cfg.mode}"

    @classmethod
    def pretrained(cls, mode: str = "3_1", weights_dir: str | Path | None = None, device: str | None = None,
                   steps: int | None = None, **_: object) -> "GenVqCodec":
        """The VQ and diffusion weights of `mode`: each file from `weights_dir` when it is there (a folder
        written by `sagin-hil train generative --offline --out`), else the shipped one."""
        from sagin_hil.codecs.generative.diffusion import CondUNet, GenConfig
        from sagin_hil.codecs.jscc import load_state
        from sagin_hil.codecs.vq import weights_path

        def folder(path_of) -> Path | None:
            return Path(weights_dir) if weights_dir and path_of(mode, Path(weights_dir)).exists() else None

        vq = VqCodec.pretrained(mode, weights_dir=folder(weights_path), device=device)
        cfg, state, _ = load_state(gen_weights_path(mode, folder(gen_weights_path)), GenConfig)
        unet = CondUNet(cfg)
        unet.load_state_dict(state)
        return cls(vq, unet, steps=steps)

    def encode(self, image: np.ndarray, budget=None):
        """The VQ codec's payload; metadata adds caption_bits = 0 (the offline modes send no caption)."""
        pay = super().encode(image, budget)
        pay.metadata["caption_bits"] = 0
        return pay

    @torch.no_grad()
    def decode_plain(self, data: bytes) -> np.ndarray:
        """The plain VQ decoder's image (what this codec improves on)."""
        return super().decode(data)

    @torch.no_grad()
    def decode(self, data: bytes, steps: int | None = None, **_: object) -> np.ndarray:
        from sagin_hil.codecs.generative.diffusion import ddim_sample

        q, h, w = self.embedding(data)
        y0 = self.net.decode_latent(q)
        pad_h, pad_w = (-y0.shape[2]) % 16, (-y0.shape[3]) % 16  # the UNet works down to 1/16 resolution
        if pad_h or pad_w:
            y0 = torch.nn.functional.pad(y0, (0, pad_w, 0, pad_h), mode="replicate")
        out = ddim_sample(self.unet, y0, q, self.steps if steps is None else int(steps), self.seed)
        img = (out[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
        return img[:h, :w]
