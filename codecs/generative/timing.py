"""Compute time of the real architectures behind Mode 2 and the latent Modes 3_x, measured, not assumed.

The models are built from the real configurations (random weights: the arithmetic, hence the time, is the
same as with trained ones) and timed on this machine:

- BLIP captioning, base size (ViT-B/16 at 384 px + BERT-base decoder): one caption of CAPTION_TOKENS tokens;
- Stable Diffusion 2 (base, 512 x 512): the OpenCLIP ViT-H text encoder, one UNet step at the 4 x 64 x 64
  latent with classifier-free guidance (batch 2), the VAE encoder and decoder.

A UNet step is timed over `unet_steps` steps after one warm-up step, and 50 and 20 DDIM steps are that mean
step times 50 and 20 (the steps are identical in cost). Wall seconds depend on how busy the machine is, so
each component's process CPU seconds (all threads) and the load average are kept beside them: on `threads`
otherwise idle cores a component takes between cpu_s / threads and cpu_s of wall time. Mode 2 = caption (transmitter) + text encoder +
N steps + VAE decoder (receiver); latent Mode 3_x adds the VAE encoder at the transmitter.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

__all__ = ["sd2_unet_config", "sd2_vae_config", "sd2_text_config", "measure_real_compute_times", "summarise",
           "CAPTION_TOKENS"]

CAPTION_TOKENS = 12  # a typical BLIP caption (~8-10 words); the timing decodes exactly this many tokens


def sd2_unet_config() -> dict[str, Any]:
    """UNet2DConditionModel configuration of Stable Diffusion 2 base (512 px, 865 M parameters)."""
    return dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280, 1280),
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)


def sd2_vae_config() -> dict[str, Any]:
    """AutoencoderKL configuration of Stable Diffusion 2 (8x downsampling, 4 latent channels)."""
    return dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
                block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.18215)


def sd2_text_config() -> dict[str, Any]:
    """CLIPTextModel configuration of Stable Diffusion 2's OpenCLIP ViT-H text tower (23 layers used)."""
    return dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", projection_dim=1024)


_CPU_S: dict[str, float] = {}


def _timed(fn: Callable[[], Any], name: str = "") -> float:
    """Wall seconds of fn(); its process CPU seconds (all threads) go to _CPU_S[name]."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if name:
        _CPU_S[name] = _CPU_S.get(name, 0.0) + time.process_time() - c0
    return time.perf_counter() - t0


def measure_real_compute_times(threads: int = 2, unet_steps: int = 2, image_size: int = 512,
                               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time BLIP-base captioning and the SD 2 parts on CPU (`threads` threads), or CUDA when present.

    Output: component times (s), the 50- and 20-step totals per mode, and how they were obtained.
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import BlipConfig, BlipForConditionalGeneration, CLIPTextConfig, CLIPTextModel

    torch.set_num_threads(threads)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    say = progress or (lambda _s: None)
    torch.manual_seed(0)
    out: dict[str, Any] = {"device": dev, "threads": threads, "machine": platform.processor() or platform.machine(),
                           "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "weights": "random, built from the real configurations", "image_size": image_size}
    with torch.no_grad():
        say("BLIP-base captioning")
        blip = BlipForConditionalGeneration(BlipConfig()).eval().to(dev)
        pixels = torch.randn(1, 3, 384, 384, device=dev)
        gen = lambda: (blip.generate(pixel_values=pixels, max_new_tokens=CAPTION_TOKENS,  # noqa: E731
                                     min_new_tokens=CAPTION_TOKENS, do_sample=False), sync())
        gen()  # warm-up
        out["blip_caption_s"] = _timed(gen, "blip_caption")
        out["caption_tokens"] = CAPTION_TOKENS
        out["blip_parameters"] = sum(p.numel() for p in blip.parameters())
        blip = None  # free it before the next model

        say("SD 2 text encoder")
        text = CLIPTextModel(CLIPTextConfig(**sd2_text_config())).eval().to(dev)
        ids = torch.randint(0, 49408, (2, 77), device=dev)
        text(ids)
        out["clip_text_s"] = _timed(lambda: (text(ids), sync()), "clip_text")
        cond = torch.randn(2, 77, 1024, device=dev)
        text = None

        say("SD 2 VAE")
        vae = AutoencoderKL(**sd2_vae_config()).eval().to(dev)
        side = image_size // 8
        out["vae_encode_s"] = _timed(lambda: (vae.encode(torch.randn(1, 3, image_size, image_size, device=dev)),
                                              sync()), "vae_encode")
        out["vae_decode_s"] = _timed(lambda: (vae.decode(torch.randn(1, 4, side, side, device=dev)), sync()),
                                     "vae_decode")
        vae = None

        say("SD 2 UNet")
        unet = UNet2DConditionModel(**sd2_unet_config()).eval().to(dev)
        out["unet_parameters"] = sum(p.numel() for p in unet.parameters())
        lat = torch.randn(2, 4, side, side, device=dev)
        step = lambda: (unet(lat, torch.tensor([500], device=dev), encoder_hidden_states=cond), sync())  # noqa: E731
        step()  # warm-up
        times = [_timed(step, "unet_step_cfg") for _ in range(unet_steps)]
        unet = None
    out["unet_step_cfg_s"] = sum(times) / len(times)
    out["unet_steps_timed"] = len(times)
    out["unet_step_times_s"] = times
    out["cpu_s"] = {k: v / (unet_steps if k == "unet_step_cfg" else 1) for k, v in _CPU_S.items()}
    out["load_average_1min"] = os.getloadavg()[0]
    return summarise(out)


def summarise(out: dict[str, Any]) -> dict[str, Any]:
    """Add per-mode totals: "wall" as measured (at the load it was measured under) and "idle" = CPU seconds
    / threads, the wall time on `threads` idle cores if the threads scaled perfectly (a lower bound; the
    CPU seconds themselves are the single-core time). Mode 2: encode = caption, decode = text encoder +
    N UNet steps + VAE decoder; latent Mode 3_x: encode adds the VAE encoder."""
    cpu, n_thr = out["cpu_s"], out["threads"]
    parts = {"wall": {k: out[f"{k}_s"] for k in cpu}, "idle": {k: v / n_thr for k, v in cpu.items()}}
    for kind, t in parts.items():
        for n in (50, 20):
            out[f"mode2_decode_{n}_steps_{kind}_s"] = t["clip_text"] + t["vae_decode"] + n * t["unet_step_cfg"]
        out[f"mode2_encode_{kind}_s"] = t["blip_caption"]
        out[f"mode3_encode_{kind}_s"] = t["blip_caption"] + t["vae_encode"]
    return out
