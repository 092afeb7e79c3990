"""Generalized divisive normalization (GDN) and its inverse, the nonlinearity of learned image transforms.

GDN (Balle, Laparra and Simoncelli, "Density modeling of images using a generalized normalization
transformation"): y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2). The inverse (IGDN) multiplies by the same
root, so a decoder can undo the encoder's normalisation. beta > 0 and gamma >= 0 are kept by storing their
square roots; beta's floor keeps the division finite.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["GDN"]

_BETA_MIN = 1e-6


class GDN(nn.Module):
    """GDN over the channels of a (B, C, H, W) tensor; `inverse=True` gives IGDN.

    Initialised as in the paper's practice: beta = 1, gamma = 0.1 I (close to a scaled identity).
    """

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_root = nn.Parameter(torch.ones(channels))
        self.gamma_root = nn.Parameter(torch.eye(channels) * gamma_init ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta_root ** 2 + _BETA_MIN
        gamma = self.gamma_root ** 2
        norm = torch.sqrt(F.conv2d(x * x, gamma[:, :, None, None], beta))
        return x * norm if self.inverse else x / norm
