"""Training of the project's own codecs (deep JSCC, VQ) on patches of the shipped "train" images.

Patches are cut at random from the train split at three scales (1, 1/2, 1/4 of native resolution, so the
content scale matches the 256 px evaluation crops) with random flips; the "eval" split is never seen.
Each trainer runs for a wall-clock budget (minutes), with Adam and a cosine learning-rate decay over that
budget, then measures PSNR on the held-out images and writes float16 safetensors to codecs/weights/.
CPU threads default to 2 (torch.set_num_threads); CUDA is used when present.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sagin_hil.codecs.base import Budget

__all__ = ["PatchSampler", "train_jscc", "train_vq", "evaluate_jscc", "evaluate_vq"]


class PatchSampler:
    """Random size x size patches (float tensors in [0, 1], NCHW) from the train images at 3 scales."""

    def __init__(self, size: int = 64, seed: int = 0, split: str = "train"):
        from skimage.transform import rescale

        from sagin_hil.codecs.images import load_full

        self.size = size
        self.rng = np.random.default_rng(seed)
        self.pool: list[np.ndarray] = []
        for _, img in load_full(split):
            for s in (1.0, 0.5, 0.25):
                im = img if s == 1.0 else (rescale(img, s, channel_axis=2, anti_aliasing=True) * 255).astype(np.uint8)
                if min(im.shape[:2]) >= size:
                    self.pool.append(im)
        if not self.pool:
            raise ValueError(f"no training image is at least {size} px")

    def __call__(self, batch: int) -> torch.Tensor:
        out = np.empty((batch, self.size, self.size, 3), np.uint8)
        for i in range(batch):
            im = self.pool[self.rng.integers(len(self.pool))]
            y = self.rng.integers(0, im.shape[0] - self.size + 1)
            x = self.rng.integers(0, im.shape[1] - self.size + 1)
            p = im[y : y + self.size, x : x + self.size]
            if self.rng.random() < 0.5:
                p = p[:, ::-1]
            if self.rng.random() < 0.5:
                p = p[::-1]
            out[i] = p
        return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0


def _device(device: str | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device; use device='cpu' or 'auto'")
    return device


def _fit(net: torch.nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor], sampler: PatchSampler,
         minutes: float, batch: int, lr: float, device: str, log: Callable[[str], None] | None) -> dict[str, Any]:
    """Adam with cosine decay over a wall-clock budget; returns steps, time and the final smoothed loss."""
    net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    budget_s, t0, step, smooth = minutes * 60.0, time.perf_counter(), 0, None
    while (elapsed := time.perf_counter() - t0) < budget_s:
        for g in opt.param_groups:
            g["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / budget_s)))
        loss = loss_fn(sampler(batch).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        if log and step % 100 == 0:
            log(f"step {step}  {elapsed:6.0f} s  loss {smooth:.5f}")
    net.eval()
    return {"steps": step, "train_time_s": time.perf_counter() - t0, "final_loss": smooth, "batch": batch,
            "patch": sampler.size}


def evaluate_jscc(codec: Any, snrs_db: tuple[float, ...] = (-2.0, 0.0, 5.0, 10.0, 20.0), n_images: int = 8,
                  size: int = 256, seed: int = 0) -> dict[str, float]:
    """Mean PSNR on held-out images through AWGN at each SNR (symbols as the codec emits them)."""
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import psnr

    from sagin_hil.codecs.jscc import awgn_symbols

    gen = torch.Generator().manual_seed(seed)
    imgs = load_images(n_images, size, "eval")
    out = {}
    for snr in snrs_db:
        vals = []
        for _, img in imgs:
            pay = codec.encode(img, Budget(snr_db=snr))
            rx = awgn_symbols(pay.symbols, snr, gen)
            vals.append(psnr(img, codec.decode(pay.data, symbols=rx, snr_db=snr)))
        out[f"{snr:g}"] = float(np.mean(vals))
    return out


def evaluate_vq(codec: Any, n_images: int = 8, size: int = 256) -> dict[str, float]:
    """Mean PSNR and bits on held-out images."""
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import psnr

    imgs = load_images(n_images, size, "eval")
    pays = [codec.encode(img) for _, img in imgs]
    return {"psnr_db": float(np.mean([psnr(img, codec.decode(p.data)) for (_, img), p in zip(imgs, pays)])),
            "bits": int(pays[0].n_bits)}


def train_jscc(ratio: str = "1/12", minutes: float = 12.0, batch: int = 16, patch: int = 64, lr: float = 1e-3,
               device: str | None = None, threads: int = 2, out_dir: Path | None = None, warm_start: Path | None = None,
               seed: int = 0, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Train one JSCC model (SNR drawn uniformly from its range per image) and save its weights.

    Parameters
    ----------
    ratio : bandwidth ratio "1/12" or "1/6" (any multiple of 1/48)
    minutes : wall-clock training budget
    warm_start : a JSCC safetensors file whose same-shaped tensors initialise this model (e.g. 1/6 from 1/12)

    Output
    ------
    dict: steps, train_time_s, final_loss, eval PSNR per SNR on held-out images, path, threads, device
    """
    from sagin_hil.codecs.jscc import JsccCodec, JsccConfig, JsccNet, awgn, load_state, save_model, weights_path

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = _device(device)
    cfg = JsccConfig(ratio=ratio)
    net = JsccNet(cfg)
    if warm_start is not None and Path(warm_start).exists():
        _, state, _ = load_state(Path(warm_start), JsccConfig)
        own = net.state_dict()
        net.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    sampler = PatchSampler(patch, seed)

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        snr = torch.empty(x.shape[0], device=x.device).uniform_(cfg.snr_min_db, cfg.snr_max_db)
        return torch.mean((net.decode(awgn(net.encode(x, snr), snr), snr) - x) ** 2)

    stats = _fit(net, loss_fn, sampler, minutes, batch, lr, dev, log)
    path = weights_path(ratio, out_dir)
    codec = JsccCodec(net.cpu(), device="cpu")
    stats["eval_psnr_db"] = evaluate_jscc(codec)
    save_model(net, cfg, path, {"train": {k: v for k, v in stats.items()}})
    return {**stats, "path": str(path), "threads": threads, "device": dev, "ratio": ratio}


def train_vq(mode: str = "3_2", minutes: float = 8.0, batch: int | None = None, patch: int | None = None,
             lr: float = 1e-3, beta: float = 0.25, device: str | None = None, threads: int = 2,
             out_dir: Path | None = None, seed: int = 0, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Train one VQ model (MSE + beta * commitment, EMA codebook with dead-code restarts) and save it."""
    from sagin_hil.codecs.jscc import save_model
    from sagin_hil.codecs.vq import VqCodec, VqConfig, VqNet, weights_path

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = _device(device)
    cfg = VqConfig(mode=mode)
    net = VqNet(cfg)
    patch = patch or max(64, 8 * cfg.downsampling)  # >= 8x8 latent positions per patch
    batch = batch or max(4, 16 * 64 * 64 // (patch * patch))
    sampler = PatchSampler(patch, seed)

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        y, commit = net(x)
        return torch.mean((y - x) ** 2) + beta * commit

    stats = _fit(net, loss_fn, sampler, minutes, batch, lr, dev, log)
    path = weights_path(mode, out_dir)
    codec = VqCodec(net.cpu(), device="cpu")
    stats["eval"] = evaluate_vq(codec)
    save_model(net, cfg, path, {"train": stats})
    return {**stats, "path": str(path), "threads": threads, "device": dev, "mode": mode}
