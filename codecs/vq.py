"""VQ semantic codec (Modes 3_1..3_3): image -> latent grid -> codebook indices (bits) -> image.

The encoder downsamples by f (16, 8, 4 for Modes 3_1, 3_2, 3_3) to an h x w grid of D-dim vectors; each is
replaced by the nearest of V codebook entries (EMA-updated during training), so an image costs exactly
h * w * log2(V) bits. The indices travel as bits (through LDPC on the link); bit errors change indices (a
wrong but valid codeword, never a crash), missing indices are filled with the codeword nearest the codebook
mean. Weights: codecs/weights/vq-3_1.safetensors etc., made by `sagin-hil train vq`.
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sagin_hil.codecs.base import Budget, Codec, CodecError, Payload, check_image, pack_header, unpack_header
from sagin_hil.codecs.jscc import WEIGHTS_DIR, _Res, _to_tensor, load_state

__all__ = ["VqConfig", "VqNet", "VectorQuantizer", "VqCodec", "MODE_DOWNSAMPLING"]

MODE_DOWNSAMPLING = {"3_1": 16, "3_2": 8, "3_3": 4}
_BODY = struct.Struct(">HHBB")  # height, width, downsampling, log2(V)


@dataclass(frozen=True)
class VqConfig:
    """Architecture of a VQ codec for one mode."""

    mode: str = "3_2"
    codebook_size: int = 256
    latent_dim: int = 32
    channels: int = 64

    @property
    def downsampling(self) -> int:
        try:
            return MODE_DOWNSAMPLING[self.mode]
        except KeyError:
            raise ValueError(f"unknown VQ mode {self.mode!r}; choose one of {', '.join(MODE_DOWNSAMPLING)}") from None

    @property
    def bits_per_index(self) -> int:
        b = int(math.log2(self.codebook_size))
        if 2**b != self.codebook_size:
            raise ValueError(f"codebook_size={self.codebook_size} must be a power of two")
        return b


class VectorQuantizer(nn.Module):
    """Nearest-codeword quantiser with an exponential-moving-average codebook (van den Oord et al. 2017).

    Input: z (B, D, h, w). Output: (quantised z with straight-through gradient, indices (B, h, w), commit loss).
    """

    def __init__(self, size: int, dim: int, decay: float = 0.99):
        super().__init__()
        self.decay = decay
        embed = torch.randn(size, dim) * 0.1
        self.register_buffer("embed", embed)
        self.register_buffer("ema_count", torch.ones(size))
        self.register_buffer("ema_sum", embed.clone())

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.T + self.embed.pow(2).sum(1)[None]
        return d.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        return self.embed[idx].permute(0, 3, 1, 2)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = self.indices(z)
        q = self.lookup(idx)
        if self.training:
            with torch.no_grad():
                flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
                onehot = F.one_hot(idx.view(-1), self.embed.shape[0]).type_as(flat)
                self.ema_count.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
                self.ema_sum.mul_(self.decay).add_(onehot.T @ flat, alpha=1 - self.decay)
                n = self.ema_count.sum()
                count = (self.ema_count + 1e-5) / (n + self.embed.shape[0] * 1e-5) * n
                self.embed.copy_(self.ema_sum / count[:, None])
                mean_count = self.ema_count.mean()
                dead = self.ema_count < 0.03 * mean_count  # restart starved codewords on random encoder outputs
                if dead.any():
                    pick = flat[torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)]
                    self.embed[dead] = pick
                    self.ema_sum[dead] = pick * mean_count
                    self.ema_count[dead] = mean_count
        commit = F.mse_loss(z, q.detach())
        return z + (q - z).detach(), idx, commit


class VqNet(nn.Module):
    """Encoder (image in [0, 1] -> D x H/f x W/f), quantiser, decoder (-> image in [0, 1])."""

    def __init__(self, cfg: VqConfig):
        super().__init__()
        self.cfg = cfg
        c, n_down = cfg.channels, int(math.log2(cfg.downsampling))
        enc: list[nn.Module] = [nn.Conv2d(3, c, 5, stride=2, padding=2), nn.PReLU(c)]
        for _ in range(n_down - 1):
            enc += [nn.Conv2d(c, c, 3, stride=2, padding=1), nn.PReLU(c)]
        enc += [_Res(c), nn.Conv2d(c, cfg.latent_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.latent_dim)
        dec: list[nn.Module] = [nn.Conv2d(cfg.latent_dim, c, 3, padding=1), nn.PReLU(c), _Res(c)]
        for _ in range(n_down):
            dec += [nn.Conv2d(c, 4 * c, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(c)]
        dec += [nn.Conv2d(c, 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x * 2 - 1)

    def decode_latent(self, q: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(q))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, _, commit = self.quantizer(self.encode(x))
        return self.decode_latent(q), commit


def weights_path(mode: str, weights_dir: Path | None = None) -> Path:
    return (weights_dir or WEIGHTS_DIR) / f"vq-{mode}.safetensors"


class VqCodec(Codec):
    """VQ semantic codec: payload = header + bit-packed indices (h * w * log2 V bits).

    Input (encode): image uint8 HxW or HxWx3 (sides multiples of f are exact; others are reflect-padded).
    Output (encode): :class:`Payload` with metadata {"grid": (h, w), "index_bits", "mode"}.
    Input (decode): payload bytes (possibly with bit errors or truncated). Output: uint8 HxWx3.
    """

    codec_id = 3

    def __init__(self, net: VqNet, device: str | None = None):
        self.net = net.eval()
        self.cfg = net.cfg
        self.name = f"vq-{self.cfg.mode}"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.net.to(self.device)
        emb = self.net.quantizer.embed
        self._fill_index = int((emb - emb.mean(0)).pow(2).sum(1).argmin())

    @classmethod
    def from_config(cls, cfg: VqConfig | None = None, seed: int = 0, **kw) -> "VqCodec":
        torch.manual_seed(seed)
        return cls(VqNet(cfg or VqConfig()), **kw)

    @classmethod
    def pretrained(cls, mode: str = "3_2", weights_dir: str | Path | None = None, **kw) -> "VqCodec":
        cfg, state, _ = load_state(weights_path(mode, Path(weights_dir) if weights_dir else None), VqConfig)
        net = VqNet(cfg)
        net.load_state_dict(state)
        return cls(net, **kw)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        f = self.cfg.downsampling
        return -(-height // f), -(-width // f)

    def index_bits(self, height: int, width: int) -> int:
        """h * w * log2(V): the bits of the indices of one image (the header adds 8 * 16 bits)."""
        h, w = self.grid(height, width)
        return h * w * self.cfg.bits_per_index

    @torch.no_grad()
    def encode(self, image: np.ndarray, budget: Budget | None = None) -> Payload:
        """The latent grid fixes the size; Budget.bits, when given, is a ceiling the payload must fit."""
        t0 = time.perf_counter()
        img = check_image(image)
        if img.ndim == 2 or img.shape[2] == 1:
            img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
        h, w = img.shape[:2]
        f = self.cfg.downsampling
        x, _ = _to_tensor(np.pad(img, ((0, (-h) % f), (0, (-w) % f), (0, 0)), mode="reflect"))
        idx = self.net.quantizer.indices(self.net.encode(x.to(self.device)))[0].cpu().numpy().astype(np.int64)
        bits = ((idx.ravel()[:, None] >> np.arange(self.cfg.bits_per_index)[::-1]) & 1).astype(np.uint8)
        body = _BODY.pack(h, w, f, self.cfg.bits_per_index)
        data = pack_header(self.codec_id, body) + np.packbits(bits.ravel()).tobytes()
        if budget is not None and budget.bits is not None and 8 * len(data) > budget.bits:
            raise CodecError(f"{self.name} needs {8 * len(data)} bits for a {h}x{w} image (its latent grid fixes "
                             f"them); Budget(bits={budget.bits}) is too small: choose a coarser mode (mode3_1)")
        return Payload(self.name, data, 8 * len(data), time.perf_counter() - t0,
                       metadata={"mode": self.cfg.mode, "grid": idx.shape, "index_bits": int(bits.size)})

    @torch.no_grad()
    def decode(self, data: bytes, **_: object) -> np.ndarray:
        q, h, w = self.embedding(data)
        out = self.net.decode_latent(q)
        img = (out[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
        return img[:h, :w]

    @torch.no_grad()
    def embedding(self, data: bytes) -> tuple[torch.Tensor, int, int]:
        """The codebook vectors of the received indices (1, D, h, w) and the image's height and width."""
        body, off = unpack_header(bytes(data), self.codec_id)
        h, w, f, b = _BODY.unpack(body)
        if f != self.cfg.downsampling or b != self.cfg.bits_per_index:
            raise CodecError(f"payload is f={f}, {b} bits/index; this decoder is {self.name} (f={self.cfg.downsampling})")
        gh, gw = self.grid(h, w)
        n = gh * gw
        bits = np.unpackbits(np.frombuffer(bytes(data[off:]), np.uint8))[: n * b]
        idx = np.full(n, self._fill_index, np.int64)
        got = bits.size // b
        if got:
            idx[:got] = bits[: got * b].reshape(got, b).astype(np.int64) @ (1 << np.arange(b)[::-1])
        return self.net.quantizer.lookup(torch.from_numpy(idx.reshape(1, gh, gw)).to(self.device)), h, w
