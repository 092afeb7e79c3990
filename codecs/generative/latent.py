"""Paper 000's Modes 3_1..3_3 on the user's Stable Diffusion: caption + VQ indices of the VAE latent.

Transmitter: BLIP caption (sd.py) and the VAE latent of the image at the VAE's native size (SD 2 base:
512 x 512 -> 4 x 64 x 64); the VQ encoder (conv, residual and gated-attention blocks, a stride-2 conv per
halving: Sec. III-A, Fig. 4) maps it to an h x w grid of D-dim vectors (64 / LATENT_DOWNSAMPLING: 16 x 16,
32 x 32, 64 x 64 for Modes 3_1, 3_2, 3_3), each sent as its index in a V = 256 codebook: h w log2 V bits
after the caption's CAPTION_BYTES field.

Receiver: DDIM sampling of Stable Diffusion's UNet with the VQ embedding (upsampled to the latent grid)
concatenated to the noisy latent as extra input channels of the UNet's first convolution, the caption's
CLIP text embedding by cross-attention, classifier-free guidance at `guidance_scale` (Eq. 11-13). The
extra channels' share of that first convolution is added to its output by a forward hook, which is the
same linear map as a wider conv_in, and leaves the loaded UNet untouched for Mode 2.

`sagin-hil train generative --weights-dir DIR --images FILES` (:func:`finetune_latent_vq`) trains the VQ
encoder, codebook and the extra conv_in channels on the user's images (VAE, CLIP and UNet frozen; the
caption dropped in 10 % of steps) and writes DIR/sagin-latent-vq/latent-<mode>.safetensors.
"""

from __future__ import annotations

import math
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sagin_hil.codecs.base import Budget, Codec, CodecError, Payload, pack_header, unpack_header
from sagin_hil.codecs.generative.sd import (
    CAPTION_BYTES, _as_rgb, _resize, caption_image, load_stable_diffusion, pack_caption, resolve_device,
    unpack_caption,
)
from sagin_hil.codecs.generative.weights import GenerativeWeightsError, require

__all__ = ["LATENT_DOWNSAMPLING", "LatentVqConfig", "LatentVq", "LatentVqCodec", "finetune_latent_vq",
           "latent_weights_path"]

LATENT_DOWNSAMPLING = {"3_1": 4, "3_2": 2, "3_3": 1}
CAPTION_DROP = 0.1  # classifier-free guidance training: the caption is dropped in 10 % of steps (paper 000)
_BODY = struct.Struct(">HHBB")  # original height, width, latent downsampling, log2(V)


@dataclass(frozen=True)
class LatentVqConfig:
    """The trained parts of one latent mode: VQ encoder width, embedding dim D, codebook size V, and the
    UNet's conv_in width they feed."""

    mode: str = "3_1"
    latent_channels: int = 4
    channels: int = 64
    embed_dim: int = 8
    codebook_size: int = 256
    unet_channels: int = 320

    @property
    def downsampling(self) -> int:
        if self.mode not in LATENT_DOWNSAMPLING:
            raise ValueError(f"unknown latent mode {self.mode!r}; choose one of {', '.join(LATENT_DOWNSAMPLING)}")
        return LATENT_DOWNSAMPLING[self.mode]


class _Gate(nn.Module):
    """Gated attention: a learned sigmoid gate amplifies or suppresses each feature (Fig. 4)."""

    def __init__(self, c: int):
        super().__init__()
        self.gate = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.gate(x))


class LatentVq(nn.Module):
    """VQ encoder (latent -> D x h x w), codebook, and the extra conv_in channels of the UNet (zero-initialised)."""

    def __init__(self, cfg: LatentVqConfig):
        super().__init__()
        from sagin_hil.codecs.jscc import _Res
        from sagin_hil.codecs.vq import VectorQuantizer

        self.cfg = cfg
        c = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, c, 3, padding=1), nn.SiLU()]
        for _ in range(max(1, int(math.log2(cfg.downsampling)))):
            step = nn.Conv2d(c, c, 3, stride=2, padding=1) if cfg.downsampling > 1 else nn.Conv2d(c, c, 1)
            layers += [step, nn.SiLU(), _Res(c), _Gate(c)]
        layers.append(nn.Conv2d(c, cfg.embed_dim, 1))
        self.encoder = nn.Sequential(*layers)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.embed_dim)
        self.conv_in_extra = nn.Conv2d(cfg.embed_dim, cfg.unet_channels, 3, padding=1)
        nn.init.zeros_(self.conv_in_extra.weight)
        nn.init.zeros_(self.conv_in_extra.bias)

    @property
    def bits_per_index(self) -> int:
        return int(math.log2(self.cfg.codebook_size))

    def condition(self, q: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
        """The VQ embedding's contribution to the UNet's first convolution at the latent's size."""
        return self.conv_in_extra(F.interpolate(q, size=latent_hw, mode="nearest"))


@contextmanager
def _concatenated(unet: Any, extra: torch.Tensor):
    """While active, the UNet's conv_in sees `extra` as if concatenated input channels (added to its output)."""
    handle = unet.conv_in.register_forward_hook(lambda _m, _i, out: out + extra.to(out.dtype))
    try:
        yield
    finally:
        handle.remove()


def latent_weights_path(weights_dir: str | Path, mode: str) -> Path:
    return Path(weights_dir).expanduser() / "sagin-latent-vq" / f"latent-{mode}.safetensors"


def _text_embeddings(pipe: Any, texts: list[str], device: str) -> torch.Tensor:
    tok = pipe.tokenizer(texts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt")
    with torch.no_grad():
        return pipe.text_encoder(tok.input_ids.to(device))[0]


def _vae_latent(pipe: Any, img: np.ndarray, device: str) -> torch.Tensor:
    """Scaled VAE latent mean of a uint8 HxWx3 image already at the VAE's size."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1.0
    with torch.no_grad():
        return pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor


class LatentVqCodec(Codec):
    """Modes 3_x on Stable Diffusion: header + (h, w, downsampling, log2 V) + caption field + indices.

    Bits: 8 * (10 + 6 + CAPTION_BYTES) + h_l * w_l * log2 V (h_l = latent side / downsampling, rounded up
    to whole bytes). decode(data, steps=None, guidance_scale=None) samples the image; encode's metadata
    holds "caption", "caption_bits" and "index_bits".
    """

    codec_id = 5

    def __init__(self, weights_dir: str | Path | None, mode: str = "3_1", device: str | None = "auto",
                 steps: int = 20, guidance_scale: float = 7.5, seed: int = 0, **_: object):
        from sagin_hil.codecs.jscc import load_state

        who = f"mode{mode}"
        require(weights_dir, "blip", mode=who)
        require(weights_dir, "stable-diffusion", mode=who)
        path = latent_weights_path(weights_dir, mode)
        if not path.is_file():
            raise GenerativeWeightsError(
                f"{who} with Stable Diffusion needs its trained VQ encoder {path}; make it with "
                f"`sagin-hil train generative --weights-dir {weights_dir} --modes {mode} --images FILE...`")
        if steps < 1:
            raise ValueError(f"steps={steps} must be >= 1")
        self.weights_dir, self.device = str(weights_dir), resolve_device(device)
        self.steps, self.guidance_scale, self.seed = int(steps), float(guidance_scale), seed
        cfg, state, _ = load_state(path, LatentVqConfig)
        self.vq = LatentVq(cfg)
        self.vq.load_state_dict(state)
        self.vq.eval().to(self.device)
        self.cfg, self.name = cfg, f"latent-vq-{mode}"

    def _pipe(self) -> Any:
        return load_stable_diffusion(self.weights_dir, self.device)

    def grid(self, pipe: Any) -> tuple[int, int, int]:
        """(latent side, grid side, VAE downsampling) at the VAE's native image size."""
        size = int(pipe.vae.config.sample_size)
        f_vae = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        side = size // f_vae
        return side, -(-side // self.cfg.downsampling), f_vae

    @torch.no_grad()
    def encode(self, image: np.ndarray, budget: Budget | None = None) -> Payload:
        t0 = time.perf_counter()
        img = _as_rgb(image)
        pipe = self._pipe()
        size = int(pipe.vae.config.sample_size)
        text = caption_image(self.weights_dir, self.device, img)
        latent = _vae_latent(pipe, _resize(img, size, size), self.device)
        idx = self.vq.quantizer.indices(self.vq.encoder(latent))[0].cpu().numpy().astype(np.int64)
        b = self.vq.bits_per_index
        bits = ((idx.ravel()[:, None] >> np.arange(b)[::-1]) & 1).astype(np.uint8)
        body = _BODY.pack(img.shape[0], img.shape[1], self.cfg.downsampling, b)
        data = pack_header(self.codec_id, body) + pack_caption(text) + np.packbits(bits.ravel()).tobytes()
        if budget is not None and budget.bits is not None and 8 * len(data) > budget.bits:
            raise CodecError(f"{self.name} needs {8 * len(data)} bits; Budget(bits={budget.bits}) is too small: "
                             "choose a coarser mode (mode3_1)")
        return Payload(self.name, data, 8 * len(data), time.perf_counter() - t0,
                       metadata={"mode": self.cfg.mode, "caption": unpack_caption(pack_caption(text)),
                                 "caption_bits": 8 * CAPTION_BYTES, "index_bits": int(bits.size), "grid": idx.shape})

    @torch.no_grad()
    def decode(self, data: bytes, steps: int | None = None, guidance_scale: float | None = None,
               **_: object) -> np.ndarray:
        from diffusers import DDIMScheduler

        body, off = unpack_header(bytes(data), self.codec_id)
        h, w, f, b = _BODY.unpack(body)
        if f != self.cfg.downsampling or b != self.vq.bits_per_index:
            raise CodecError(f"payload is downsampling {f}, {b} bits/index; this decoder is {self.name}")
        text = unpack_caption(bytes(data[off:off + CAPTION_BYTES]))
        pipe = self._pipe()
        side, g, _ = self.grid(pipe)
        n = g * g
        bits = np.unpackbits(np.frombuffer(bytes(data[off + CAPTION_BYTES:]), np.uint8))[: n * b]
        idx = np.zeros(n, np.int64)  # missing indices (a truncated payload) read as codeword 0
        got = bits.size // b
        if got:
            idx[:got] = bits[: got * b].reshape(got, b).astype(np.int64) @ (1 << np.arange(b)[::-1])
        q = self.vq.quantizer.lookup(torch.from_numpy(idx.reshape(1, g, g)).to(self.device))
        scale = self.guidance_scale if guidance_scale is None else float(guidance_scale)
        guided = scale > 1.0
        texts = ["", text] if guided else [text]
        emb = _text_embeddings(pipe, texts, self.device)
        extra = self.vq.condition(q, (side, side)).expand(len(texts), -1, -1, -1)
        sched = DDIMScheduler.from_config(pipe.scheduler.config)
        sched.set_timesteps(int(steps or self.steps), device=self.device)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        lat = torch.randn((1, pipe.unet.config.in_channels, side, side), generator=gen).to(self.device)
        lat = lat * sched.init_noise_sigma
        with _concatenated(pipe.unet, extra):
            for t in sched.timesteps:
                inp = sched.scale_model_input(torch.cat([lat] * len(texts)), t)
                out = pipe.unet(inp, t, encoder_hidden_states=emb).sample
                if guided:
                    out = out[:1] + scale * (out[1:] - out[:1])
                lat = sched.step(out, t, lat).prev_sample
        img = pipe.vae.decode(lat / pipe.vae.config.scaling_factor).sample[0]
        img = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        return _resize(img, h, w)


def finetune_latent_vq(weights_dir: str | Path, mode: str, images: list[str | Path], steps: int = 200,
                       batch: int = 2, lr: float = 1e-3, beta: float = 0.25, channels: int = 64,
                       embed_dim: int = 8, codebook_size: int = 256, device: str | None = "auto", threads: int = 2,
                       seed: int = 0, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the VQ encoder, codebook and extra conv_in channels of `mode` on `images` (Eq. 3 + Eq. 13).

    Loss: the UNet's noise (or v) prediction MSE with the VQ embedding concatenated and the caption
    (dropped with probability CAPTION_DROP) by cross-attention, plus beta x the VQ commitment loss; the
    codebook follows the encoder by EMA. Output: dict with steps, final_loss, path, device.
    """
    from sagin_hil.codecs.images import load_image_files
    from sagin_hil.codecs.jscc import save_model

    if not images:
        raise ValueError("fine-tuning needs your images: give --images FILE... (PNG, JPEG, TIFF, ...)")
    if mode not in LATENT_DOWNSAMPLING:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(LATENT_DOWNSAMPLING)}")
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = resolve_device(device)
    require(weights_dir, "blip", mode=f"mode{mode}")
    pipe = load_stable_diffusion(str(weights_dir), dev)
    size = int(pipe.vae.config.sample_size)
    pics = [img for _, img in load_image_files(list(images), size=size)]
    pics = [np.repeat(p[:, :, None], 3, axis=2) if p.ndim == 2 else p for p in pics]
    latents = torch.cat([_vae_latent(pipe, p, dev) for p in pics])
    captions = [caption_image(str(weights_dir), dev, p) for p in pics]
    emb_text, emb_empty = _text_embeddings(pipe, captions, dev), _text_embeddings(pipe, [""], dev)
    cfg = LatentVqConfig(mode=mode, latent_channels=latents.shape[1], channels=channels, embed_dim=embed_dim,
                         codebook_size=codebook_size, unet_channels=pipe.unet.conv_in.out_channels)
    vq = LatentVq(cfg).to(dev).train()
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
    opt = torch.optim.Adam(vq.parameters(), lr=lr)
    sched = pipe.scheduler
    gen = torch.Generator(device="cpu").manual_seed(seed)
    smooth = None
    for step in range(steps):
        pick = torch.randint(0, len(pics), (batch,), generator=gen)
        lat = latents[pick]
        q, _, commit = vq.quantizer(vq.encoder(lat))
        noise = torch.randn(lat.shape, generator=gen).to(dev)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,), generator=gen).to(dev)
        noisy = sched.add_noise(lat, noise, t)
        drop = (torch.rand(batch, generator=gen) < CAPTION_DROP).to(dev)[:, None, None]
        text = torch.where(drop, emb_empty.expand(batch, -1, -1), emb_text[pick.to(dev)])
        target = sched.get_velocity(lat, noise, t) if sched.config.prediction_type == "v_prediction" else noise
        with _concatenated(pipe.unet, vq.condition(q, lat.shape[-2:])):
            pred = pipe.unet(noisy, t, encoder_hidden_states=text).sample
        loss = F.mse_loss(pred, target) + beta * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
        if log and (step + 1) % 20 == 0:
            log(f"latent-vq-{mode} step {step + 1}/{steps} loss {smooth:.4f}")
    vq.eval()
    path = latent_weights_path(weights_dir, mode)
    stats = {"steps": steps, "final_loss": smooth, "images": len(pics), "device": dev}
    save_model(vq, cfg, path, {"train": stats})
    return {**stats, "path": str(path), "mode": mode}
