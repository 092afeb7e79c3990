"""Offline diffusion decoder of Modes 3_1..3_3: a small conditional UNet, trained here, no downloaded weights.

Paper 000 (Sec. III-A, Eq. 11-13) decodes the VQ indices with a conditional diffusion UNet that sees the VQ
embedding concatenated to its noisy input. This is that structure at pixel scale, small enough to train on
2 CPU cores: the transmitter and its bits are the VQ codec's (codecs/vq.py, unchanged), and the receiver

1. looks the received indices up in the VQ codebook (D x h x w) and runs the plain VQ decoder -> y0;
2. denoises a residual r = x - y0 (in [-1, 1] units, scaled by 1 / RESIDUAL_SCALE) from Gaussian noise by
   deterministic DDIM (eta = 0) over `steps` steps of a cosine schedule, the UNet predicting r (x0-prediction)
   from [noisy residual, y0, VQ embedding upsampled] concatenated on the channel axis, at 1/4 resolution
   (pixel-unshuffle by 4, so a 256 px image is a 64 x 64 x 48 tensor) with a sinusoidal time embedding;
3. outputs y0 + r.

The starting noise comes from a fixed seed, so a decode is reproducible. Training
(:mod:`sagin_hil.codecs.generative.train_offline`) minimises MSE on r plus a multi-scale SSIM term on y0 + r.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GenConfig", "CondUNet", "alpha_bar", "ddim_sample", "ms_ssim_loss", "RESIDUAL_SCALE"]

RESIDUAL_SCALE = 0.25  # std of the VQ decoder's residual in [-1, 1] units is ~0.2: scale it to ~unit variance
_UNSHUFFLE = 4


@dataclass(frozen=True)
class GenConfig:
    """Architecture of one mode's diffusion decoder: its VQ mode, base channels, default sampling steps."""

    mode: str = "3_1"
    latent_dim: int = 32  # the VQ embedding's D (conditioning channels)
    channels: int = 32
    steps: int = 1  # chosen on the train split: 1 step beat 2 and 4 in MS-SSIM for every mode

    def __post_init__(self) -> None:
        if self.channels < 8 or self.channels % 8:
            raise ValueError(f"channels={self.channels} must be a positive multiple of 8")
        if self.steps < 1:
            raise ValueError(f"steps={self.steps} must be >= 1")


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021): signal fraction at continuous time t in [0, 1]; 1 at t=0, 0 at t=1."""
    s = 0.008
    return torch.cos((t + s) / (1 + s) * math.pi / 2).pow(2).clamp(0.0, 1.0)


def _time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding added as a per-channel shift in between."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.t = nn.Linear(t_dim, c_out)
        self.n2, self.c2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x))) + self.t(temb)[:, :, None, None]
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


class CondUNet(nn.Module):
    """Three-level UNet at 1/4 resolution (1/4, 1/8, 1/16 of the image) predicting the scaled residual r.

    forward(x_t (B, 3, H, W), t (B,), y0 (B, 3, H, W) in [0, 1], q (B, D, h, w)) -> r_hat (B, 3, H, W);
    H and W multiples of 16.
    """

    def __init__(self, cfg: GenConfig):
        super().__init__()
        self.cfg = cfg
        c, t_dim = cfg.channels, 4 * cfg.channels
        k = 3 * _UNSHUFFLE**2
        self.t_mlp = nn.Sequential(nn.Linear(c, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.inp = nn.Conv2d(2 * k + cfg.latent_dim, c, 3, padding=1)
        self.d0 = _ResBlock(c, c, t_dim)
        self.d1 = _ResBlock(c, 2 * c, t_dim)
        self.mid = _ResBlock(2 * c, 2 * c, t_dim)
        self.u1 = _ResBlock(4 * c, 2 * c, t_dim)
        self.u0 = _ResBlock(3 * c, c, t_dim)
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, k, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y0: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        temb = self.t_mlp(_time_embedding(t, self.cfg.channels))
        xs, ys = F.pixel_unshuffle(x_t, _UNSHUFFLE), F.pixel_unshuffle(y0 * 2 - 1, _UNSHUFFLE)
        qs = F.interpolate(q, size=xs.shape[-2:], mode="nearest")
        h0 = self.d0(self.inp(torch.cat([xs, ys, qs], 1)), temb)
        h1 = self.d1(F.avg_pool2d(h0, 2), temb)
        m = self.mid(F.avg_pool2d(h1, 2), temb)
        u1 = self.u1(torch.cat([F.interpolate(m, scale_factor=2.0, mode="nearest"), h1], 1), temb)
        u0 = self.u0(torch.cat([F.interpolate(u1, scale_factor=2.0, mode="nearest"), h0], 1), temb)
        return F.pixel_shuffle(self.out(u0), _UNSHUFFLE)


@torch.no_grad()
def ddim_sample(net: CondUNet, y0: torch.Tensor, q: torch.Tensor, steps: int, seed: int = 0) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from seeded noise over `steps` equal steps of t from 1 to 0.

    Returns the decoded image (B, 3, H, W) in [0, 1]: y0 + RESIDUAL_SCALE * r / 2.
    """
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(y0.shape, generator=gen).to(y0.device)
    ts = torch.linspace(1.0, 0.0, steps + 1, device=y0.device)
    for i in range(steps):
        t = ts[i].expand(y0.shape[0])
        r_hat = net(x, t, y0, q)
        if i == steps - 1:  # the last step lands on t = 0: the prediction itself
            x = r_hat
            break
        ab, ab_next = alpha_bar(ts[i]), alpha_bar(ts[i + 1])
        eps = (x - ab.sqrt() * r_hat) / (1 - ab).sqrt().clamp_min(1e-4)
        x = ab_next.sqrt() * r_hat + (1 - ab_next).sqrt() * eps
    return (y0 + x * RESIDUAL_SCALE / 2).clamp(0.0, 1.0)


def _gauss_taps(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The 11-tap, sigma 1.5 Gaussian window as vertical and horizontal kernels for 15 grouped channels (the
    window is separable: two 11-tap passes cost a fifth of one 11 x 11 pass)."""
    x = torch.arange(11, device=device, dtype=torch.float32) - 5
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    g = g / g.sum()
    return g.view(1, 1, 11, 1).expand(15, 1, 11, 1), g.view(1, 1, 1, 11).expand(15, 1, 1, 11)


def ms_ssim_loss(a: torch.Tensor, b: torch.Tensor, scales: int = 5) -> torch.Tensor:
    """1 - MS-SSIM (Wang et al. 2003, as codecs.metrics.ms_ssim: Gaussian window 11 / 1.5, contrast-structure
    at the fine scales, full SSIM at the coarsest, weights MS_SSIM_WEIGHTS renormalised to `scales`), mean over
    images and channels. Images (B, 3, H, W) in [0, 1], sides > 10 * 2**(scales - 1) px."""
    from sagin_hil.codecs.metrics import MS_SSIM_WEIGHTS

    w = torch.tensor(MS_SSIM_WEIGHTS[:scales], device=a.device)
    w = w / w.sum()
    (gv, gh), c1, c2, vals = _gauss_taps(a.device), 0.01**2, 0.03**2, []
    for level in range(scales):
        if level:
            a, b = F.avg_pool2d(a, 2, ceil_mode=True), F.avg_pool2d(b, 2, ceil_mode=True)
        moments = torch.cat([a, b, a * a, b * b, a * b], 1)  # the five local means in one grouped pass
        mu_a, mu_b, e_aa, e_bb, e_ab = F.conv2d(F.conv2d(moments, gv, groups=15), gh, groups=15).split(3, 1)
        saa, sbb, sab = e_aa - mu_a**2, e_bb - mu_b**2, e_ab - mu_a * mu_b
        cs = (2 * sab + c2) / (saa + sbb + c2)
        if level == scales - 1:
            cs = cs * (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
        vals.append(cs.mean(dim=(2, 3)).clamp_min(1e-6))  # (B, 3)
    return 1 - torch.prod(torch.stack(vals) ** w[:, None, None], dim=0).mean()
