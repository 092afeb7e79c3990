"""Training of the offline diffusion decoders (`sagin-hil train generative --offline`).

For each mode the shipped VQ codec is frozen (its encoder and indices are the bits, unchanged); patches of
the train split (codecs/images.py; the held-out images are never seen) are VQ-encoded and decoded once
into a cache of CACHE_PATCHES patches as they are first drawn (the frozen VQ decoder costs more than the
UNet's step, so later steps reuse them with random flips), and the UNet learns the residual under the cosine noise schedule
(x0-prediction: MSE_WEIGHT x MSE on the scaled residual plus 1 - MS-SSIM of the image, on 192 px patches,
the smallest that hold MS-SSIM's five scales). Adam, cosine learning-rate decay over the budget.

The budget is compute, not wall time, so a run on a shared machine trains as much as one on idle cores: on
a CPU it is the process's CPU seconds divided by the thread count (the wall time on `threads` idle cores),
on CUDA wall seconds.
A checkpoint (model, optimiser, step, elapsed seconds) is written every CHECKPOINT_S, so a killed run
resumes where it stopped; the final weights go to codecs/weights/gen-<mode>.safetensors in float16.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["train_gen_decoder", "evaluate_gen", "OFFLINE_MINUTES"]

OFFLINE_MINUTES = {"3_1": 10.0, "3_2": 10.0, "3_3": 10.0}  # 30 min in all
MSE_WEIGHT = 0.2
# Share of samples at t = 1 (pure noise in, the prediction from the condition alone): the shipped decoders
# sample in one step from t = 1, and at 0.5 the finer modes' decoders stayed at the plain VQ decoder.
T1_FRACTION = 0.9
CHECKPOINT_S = 60.0
CACHE_PATCHES = 1024


class _PatchCache:
    """Train patches with their plain VQ decoding y0 and index grid, computed once each: the first
    n / batch draws are fresh patches (stored), later draws reuse stored ones with random flips."""

    def __init__(self, vq_net: Any, sampler: Any, n: int, device: str, seed: int):
        self.vq, self.sampler, self.n, self.device = vq_net, sampler, n, device
        self.x: list[torch.Tensor] = []
        self.y0: list[torch.Tensor] = []
        self.idx: list[torch.Tensor] = []
        self.gen = torch.Generator().manual_seed(seed)

    def _fresh(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            x = self.sampler(batch).to(self.device)
            idx = self.vq.quantizer.indices(self.vq.encode(x))
            y0 = self.vq.decode_latent(self.vq.quantizer.lookup(idx))
        self.x += list((x * 255).round().to(torch.uint8).cpu())
        self.y0 += list(y0.half().cpu())
        self.idx += list(idx.cpu())
        return x, y0, idx

    def __call__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if len(self.x) < self.n:
            x, y0, idx = self._fresh(batch)
        else:
            pick = torch.randint(0, len(self.x), (batch,), generator=self.gen).tolist()
            x = torch.stack([self.x[i] for i in pick]).float().to(self.device) / 255
            y0 = torch.stack([self.y0[i] for i in pick]).float().to(self.device)
            idx = torch.stack([self.idx[i] for i in pick]).to(self.device)
            for dim in (1, 2):  # flips of the image, its decoding and its index grid together
                if torch.rand(1, generator=self.gen).item() < 0.5:
                    x, y0, idx = x.flip(dim + 1), y0.flip(dim + 1), idx.flip(dim)
        return x, y0, self.vq.quantizer.lookup(idx)


def train_gen_decoder(mode: str = "3_1", minutes: float | None = None, batch: int = 4, patch: int = 192,
                      lr: float = 5e-4, channels: int = 32, device: str | None = None, threads: int = 2,
                      out_dir: Path | None = None, checkpoint_dir: Path = Path("runs/train-generative"),
                      seed: int = 0, cache_patches: int = CACHE_PATCHES, progress: Callable[[float, float], None] | None = None,
                      log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Train (or resume) the diffusion decoder of `mode` for `minutes` of compute (module doc) and save it.

    progress(elapsed_s, budget_s) is called every step. Output: dict with steps, train_time_s, final_loss,
    resumed (bool), path.
    """
    from sagin_hil.codecs.generative.diffusion import RESIDUAL_SCALE, CondUNet, GenConfig, alpha_bar, ms_ssim_loss
    from sagin_hil.codecs.generative.offline import gen_weights_path
    from sagin_hil.codecs.jscc import save_model
    from sagin_hil.codecs.train import PatchSampler, _device
    from sagin_hil.codecs.vq import VqCodec

    minutes = OFFLINE_MINUTES.get(mode, 8.0) if minutes is None else minutes
    if minutes <= 0:
        raise ValueError(f"minutes={minutes} must be > 0")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = _device(device)
    vq = VqCodec.pretrained(mode, device=dev).net.eval()
    for p in vq.parameters():
        p.requires_grad_(False)
    cfg = GenConfig(mode=mode, latent_dim=vq.cfg.latent_dim, channels=channels)
    net = CondUNet(cfg).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    ckpt = Path(checkpoint_dir) / f"gen-{mode}.ckpt.pt"
    step, done_s, resumed = 0, 0.0, False
    if ckpt.exists():
        state = torch.load(ckpt, map_location=dev)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        step, done_s, resumed = state["step"], state["elapsed_s"], True
        if log:
            log(f"resuming gen-{mode} from {ckpt} at step {step}, {done_s:.0f} s done")
    wall0 = time.perf_counter()
    cache = _PatchCache(vq, PatchSampler(patch, seed + step), cache_patches, dev, seed + step)
    ssim_scales = max(1, min(5, int(math.log2(patch / 11)) + 1))  # 5 from 176 px: the coarsest >= 11 px
    budget_s, last_ckpt, smooth, first = minutes * 60.0, time.perf_counter(), None, step
    clock = (lambda: time.perf_counter()) if dev == "cuda" else (lambda: time.process_time() / threads)
    t0 = clock()
    net.train()

    def save_checkpoint(elapsed: float) -> None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed_s": elapsed}, ckpt)

    while (elapsed := done_s + clock() - t0) < budget_s or step == first:  # >= 1 step a call
        for g in opt.param_groups:
            g["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / budget_s)))
        x, y0, q = cache(batch)
        r = 2 * (x - y0) / RESIDUAL_SCALE
        t = torch.rand(x.shape[0], device=dev)
        t = torch.where(torch.rand_like(t) < T1_FRACTION, torch.ones_like(t), t)  # the first DDIM step's input
        ab = alpha_bar(t)[:, None, None, None]
        x_t = ab.sqrt() * r + (1 - ab).sqrt() * torch.randn_like(r)
        r_hat = net(x_t, t, y0, q)
        img = (y0 + r_hat * RESIDUAL_SCALE / 2).clamp(0, 1)
        loss = MSE_WEIGHT * F.mse_loss(r_hat, r) + ms_ssim_loss(img, x, scales=ssim_scales)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        if progress:
            progress(elapsed, budget_s)
        if log and step % 50 == 0:
            log(f"gen-{mode} step {step}  {elapsed:6.0f} s  loss {smooth:.4f}")
        if time.perf_counter() - last_ckpt > CHECKPOINT_S:
            save_checkpoint(done_s + clock() - t0)
            last_ckpt = time.perf_counter()
    total_s = done_s + clock() - t0
    save_checkpoint(total_s)
    net.eval()
    stats = {"steps": step, "train_time_s": total_s, "wall_time_s": time.perf_counter() - wall0, "final_loss": smooth, "batch": batch, "patch": patch,
             "threads": threads, "device": dev, "resumed": resumed, "seed": seed, "t1_fraction": T1_FRACTION}
    path = gen_weights_path(mode, out_dir)
    save_model(net, cfg, path, {"train": stats})
    return {**stats, "path": str(path), "mode": mode}


def evaluate_gen(mode: str, steps: tuple[int, ...] = (1, 2, 4), n_images: int = 8, size: int = 256,
                 split: str = "eval", weights_dir: Path | None = None) -> dict[str, Any]:
    """Mean PSNR / SSIM / MS-SSIM on `split` of the plain VQ decoder, the diffusion decoder at each of
    `steps`, and JPEG 2000 at the same payload size (bits), per image and in the mean."""
    from sagin_hil.codecs.base import Budget
    from sagin_hil.codecs.generative.offline import GenVqCodec
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.jpeg2000 import Jpeg2000Codec
    from sagin_hil.codecs.metrics import ms_ssim, psnr, ssim

    gen = GenVqCodec.pretrained(mode, weights_dir=weights_dir, device="cpu")
    j2k = Jpeg2000Codec()
    rows: dict[str, list[list[float]]] = {"vq": [], "jpeg2000": [], **{f"gen-{s}": [] for s in steps}}
    bits = 0
    for _, img in load_images(n_images, size, split):
        pay = gen.encode(img)
        bits = pay.n_bits
        recs = {"vq": gen.decode_plain(pay.data), "jpeg2000": j2k.decode(j2k.encode(img, Budget(bits=bits)).data)}
        recs.update({f"gen-{s}": gen.decode(pay.data, steps=s) for s in steps})
        for k, rec in recs.items():
            rows[k].append([psnr(img, rec), ssim(img, rec), ms_ssim(img, rec)])
    out: dict[str, Any] = {"mode": mode, "bits": bits, "bpp": bits / size**2, "split": split, "n_images": n_images}
    for k, v in rows.items():
        a = np.asarray(v)
        out[k] = {"psnr_db": float(a[:, 0].mean()), "ssim": float(a[:, 1].mean()), "ms_ssim": float(a[:, 2].mean()),
                  "ms_ssim_per_image": a[:, 2].round(4).tolist()}
    return out
