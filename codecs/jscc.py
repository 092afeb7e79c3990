"""Deep joint source-channel coding (deep JSCC): image -> complex channel symbols -> image, SNR-adaptive.

The encoder maps an HxWx3 image to k = ratio * 3HW complex symbols (bandwidth ratio k/n, n = 3HW real
source values; 1/12 and 1/6 ship trained), normalised to unit mean power per image. Two architectures:
"adjscc" (GDN/IGDN layers, each with an attention module that turns the features' global mean plus the SNR
and the ratio into channel gains; one network serves both ratios and -2..20 dB) and "film" (the first model:
residual blocks with FiLM on the SNR, one model per ratio). The symbols are analog: the PHY maps them onto
samples with pilots and the receiver hands the equalised symbols and its SNR estimate to :meth:`JsccCodec.decode`. Weights live in
codecs/weights/jscc-1_12.safetensors etc. (config in the safetensors metadata); `sagin-hil train jscc` makes them.
"""

from __future__ import annotations

import json
import math
import struct
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sagin_hil.codecs.base import Budget, Codec, CodecError, Payload, check_image, pack_header, unpack_header
from sagin_hil.codecs.gdn import GDN

__all__ = ["JsccConfig", "JsccNet", "AdJsccNet", "build_net", "JsccCodec", "power_normalize", "awgn", "WEIGHTS_DIR"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
_DOWN = 4  # spatial downsampling of the encoder
_BODY = struct.Struct(">HHHHf")  # height, width, ratio numerator, denominator, encoder snr_db


@dataclass(frozen=True)
class JsccConfig:
    """Architecture of a JSCC model. `ratio` is the bandwidth ratio k/n as "num/den".

    arch "film": the first model (residual blocks with FiLM SNR conditioning, one model per ratio).
    arch "adjscc": GDN/IGDN layers with ADJSCC attention modules fed the SNR and the ratio; one network
    serves every ratio up to `latent_ratio` (it emits that many channels and sends the first ones).
    """

    ratio: str = "1/12"
    channels: int = 64
    snr_min_db: float = -2.0
    snr_max_db: float = 20.0
    arch: str = "film"
    latent_ratio: str = ""  # adjscc: the widest ratio the shared network was built for ("" = ratio)

    def __post_init__(self) -> None:
        if self.arch not in ("film", "adjscc"):
            raise ValueError(f"JSCC arch {self.arch!r}: choose 'film' or 'adjscc'")
        if self.latent_ratio and Fraction(self.latent_ratio) < Fraction(self.ratio):
            raise ValueError(f"ratio {self.ratio} exceeds latent_ratio {self.latent_ratio}; raise latent_ratio")

    @property
    def symbols_per_position(self) -> int:
        """Complex symbols per latent position: 3 * 4 * 4 * ratio."""
        return _symbols_per_position(self.ratio)

    @property
    def latent_symbols_per_position(self) -> int:
        """Complex symbols per position the network's latent holds (the widest ratio it serves)."""
        return _symbols_per_position(self.latent_ratio or self.ratio)


def _symbols_per_position(ratio: str) -> int:
    k = Fraction(ratio) * 3 * _DOWN * _DOWN
    if k.denominator != 1 or k <= 0:
        raise ValueError(f"ratio {ratio} gives {k} symbols per 4x4 block; use a multiple of 1/48")
    return int(k)


class FiLM(nn.Module):
    """Feature-wise affine modulation by the channel SNR: x * (1 + gamma(snr)) + beta(snr)."""

    def __init__(self, channels: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 2 * channels))

    def forward(self, x: torch.Tensor, snr_norm: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.mlp(snr_norm[:, None]).chunk(2, dim=1)
        return x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class _Res(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.PReLU(c), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def power_normalize(z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scale each image's real latent (B, 2k, h, w) so its complex symbols have unit mean power.
    `mask` (B, 2k, 1, 1) of 0/1 marks the channels sent (the others are zeroed and not counted)."""
    if mask is None:
        p = z.pow(2).flatten(1).mean(dim=1) * 2  # mean |symbol|^2 = 2 * mean(real component^2)
        return z / torch.sqrt(p + 1e-12)[:, None, None, None]
    z = z * mask
    p = z.pow(2).flatten(1).sum(dim=1) * 2 / (mask.flatten(1).sum(dim=1) * z.shape[2] * z.shape[3])
    return z / torch.sqrt(p + 1e-12)[:, None, None, None]


def awgn(z: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """Complex AWGN on unit-power symbols stored as real pairs: each component gets variance N0/2.
    This is the training channel (differentiable, batched); measurements outside training use
    sagin_hil.phy.theory.awgn."""
    n0 = 10 ** (-snr_db / 10)
    return z + torch.randn_like(z) * torch.sqrt(n0 / 2)[:, None, None, None]


def awgn_symbols(symbols: np.ndarray, snr_db: float, generator: torch.Generator | None = None) -> np.ndarray:
    """The training channel applied to complex numpy symbols (training-time evaluation)."""
    z = torch.from_numpy(np.stack([symbols.real, symbols.imag]).astype(np.float32))
    n0 = 10 ** (-float(snr_db) / 10)
    y = z + torch.randn(z.shape, generator=generator) * math.sqrt(n0 / 2)
    return (y[0] + 1j * y[1]).numpy().astype(np.complex64)


class JsccNet(nn.Module):
    """Encoder and decoder networks.

    Input (encode): image (B, 3, H, W) in [0, 1], H and W multiples of 4; snr_db (B,)
    Output (encode): latent (B, 2k, H/4, W/4), unit power per image (pairs of channels = I/Q)
    Input/Output (decode): the noisy latent and snr_db -> image (B, 3, H, W) in [0, 1]
    """

    def __init__(self, cfg: JsccConfig):
        super().__init__()
        self.cfg = cfg
        c, out = cfg.channels, 2 * cfg.symbols_per_position
        self.enc_in = nn.Sequential(
            nn.Conv2d(3, c, 5, stride=2, padding=2), nn.PReLU(c), nn.Conv2d(c, c, 3, stride=2, padding=1), nn.PReLU(c)
        )
        self.enc_res1, self.enc_film1 = _Res(c), FiLM(c)
        self.enc_res2, self.enc_film2 = _Res(c), FiLM(c)
        self.enc_out = nn.Conv2d(c, out, 3, padding=1)
        self.dec_in = nn.Sequential(nn.Conv2d(out, c, 3, padding=1), nn.PReLU(c))
        self.dec_res1, self.dec_film1 = _Res(c), FiLM(c)
        self.dec_res2, self.dec_film2 = _Res(c), FiLM(c)
        self.dec_up = nn.Sequential(  # narrow at full resolution: most of the compute would sit there
            nn.Conv2d(c, 4 * 32, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(32),
            nn.Conv2d(32, 4 * 16, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(16),
            nn.Conv2d(16, 3, 3, padding=1),
        )

    def _snr(self, snr_db: torch.Tensor) -> torch.Tensor:
        lo, hi = self.cfg.snr_min_db, self.cfg.snr_max_db
        return (snr_db - lo) / (hi - lo) * 2 - 1

    def encode(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        s = self._snr(snr_db)
        h = self.enc_in(x * 2 - 1)
        h = self.enc_film1(self.enc_res1(h), s)
        h = self.enc_film2(self.enc_res2(h), s)
        return power_normalize(self.enc_out(h))

    def decode(self, z: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        s = self._snr(snr_db)
        h = self.dec_in(z)
        h = self.dec_film1(self.dec_res1(h), s)
        h = self.dec_film2(self.dec_res2(h), s)
        return torch.sigmoid(self.dec_up(h))

    def _own_k(self, k: torch.Tensor) -> None:
        own = self.cfg.symbols_per_position
        if bool((k != own).any()):
            raise ValueError(f"a film JSCC sends {own} symbols per position (ratio {self.cfg.ratio}), asked for "
                             f"{sorted(set(k.tolist()) - {own})}; train one model per ratio")

    def encode_k(self, x: torch.Tensor, snr_db: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The trainer's interface shared with AdJsccNet; k must be this model's own."""
        self._own_k(k)
        return self.encode(x, snr_db)

    def decode_k(self, z: torch.Tensor, snr_db: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        self._own_k(k)
        return self.decode(z, snr_db)

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return self.decode(awgn(self.encode(x, snr_db), snr_db), snr_db)


class AttentionFeature(nn.Module):
    """ADJSCC attention module (Xu et al., "Wireless image transmission using deep source channel coding with
    attention modules"): per-channel gains in (0, 1) from the feature map's global mean and the side
    information (normalised SNR, ratio), so one network rescales its features for every channel state."""

    def __init__(self, channels: int, side: int = 2):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels + side, channels // 2), nn.ReLU(),
                                 nn.Linear(channels // 2, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return x * self.mlp(torch.cat([x.mean(dim=(2, 3)), side], dim=1))[:, :, None, None]


class _GdnLayer(nn.Module):
    """conv -> GDN (IGDN in the decoder) -> attention; residual when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, inverse: bool = False,
                 shuffle: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out * (4 if shuffle else 1), kernel, stride=stride, padding=kernel // 2)
        self.shuffle = nn.PixelShuffle(2) if shuffle else nn.Identity()
        self.gdn = GDN(c_out, inverse=inverse)
        self.af = AttentionFeature(c_out)
        self.residual = c_in == c_out and stride == 1 and not shuffle

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        h = self.af(self.gdn(self.shuffle(self.conv(x))), side)
        return x + h if self.residual else h


class AdJsccNet(nn.Module):
    """SNR- and ratio-adaptive JSCC with GDN and attention modules (arch "adjscc").

    Input (encode): image (B, 3, H, W) in [0, 1], H and W multiples of 4; snr_db (B,)
    Output (encode): latent (B, 2k, H/4, W/4) for the config's ratio, unit power per image
    Input/Output (decode): the noisy latent and snr_db -> image (B, 3, H, W) in [0, 1]
    Training uses :meth:`encode_k` / :meth:`decode_k` with a ratio per image (k complex symbols per position).
    """

    def __init__(self, cfg: JsccConfig):
        super().__init__()
        self.cfg = cfg
        c, self.k_max = cfg.channels, cfg.latent_symbols_per_position
        out = 2 * self.k_max
        self.enc = nn.ModuleList([
            _GdnLayer(3, c // 2, 5, stride=2), _GdnLayer(c // 2, c, 5, stride=2),
            _GdnLayer(c, c, 3), _GdnLayer(c, c, 3),
        ])
        self.enc_out = nn.Conv2d(c, out, 3, padding=1)
        self.dec = nn.ModuleList([
            _GdnLayer(out, c, 3, inverse=True), _GdnLayer(c, c, 3, inverse=True), _GdnLayer(c, c, 3, inverse=True),
            _GdnLayer(c, c // 2, 3, inverse=True, shuffle=True),
        ])
        self.dec_out = nn.Sequential(nn.Conv2d(c // 2, 4 * 3, 5, padding=2), nn.PixelShuffle(2))

    def _side(self, snr_db: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        lo, hi = self.cfg.snr_min_db, self.cfg.snr_max_db
        return torch.stack([(snr_db - lo) / (hi - lo) * 2 - 1, k.float() / self.k_max * 2 - 1], dim=1)

    def _mask(self, k: torch.Tensor) -> torch.Tensor:
        ch = torch.arange(2 * self.k_max, device=k.device)
        return (ch[None, :] < 2 * k[:, None]).float()[:, :, None, None]

    def encode_k(self, x: torch.Tensor, snr_db: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Full-width latent with channels beyond 2k zeroed; the sent ones at unit mean symbol power."""
        side, h = self._side(snr_db, k), x * 2 - 1
        for layer in self.enc:
            h = layer(h, side)
        return power_normalize(self.enc_out(h), self._mask(k))

    def decode_k(self, z: torch.Tensor, snr_db: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        side, h = self._side(snr_db, k), z * self._mask(k)
        for layer in self.dec:
            h = layer(h, side)
        return torch.sigmoid(self.dec_out(h))

    def _k(self, z: torch.Tensor) -> torch.Tensor:
        return torch.full((z.shape[0],), self.cfg.symbols_per_position, device=z.device)

    def encode(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return self.encode_k(x, snr_db, self._k(x))[:, : 2 * self.cfg.symbols_per_position]

    def decode(self, z: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        pad = 2 * self.k_max - z.shape[1]
        full = torch.nn.functional.pad(z, (0, 0, 0, 0, 0, pad)) if pad else z
        return self.decode_k(full, snr_db, self._k(z))

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return self.decode(awgn(self.encode(x, snr_db), snr_db), snr_db)


def build_net(cfg: JsccConfig) -> nn.Module:
    """The network of a config's arch."""
    return AdJsccNet(cfg) if cfg.arch == "adjscc" else JsccNet(cfg)


def save_model(net: nn.Module, cfg: object, path: Path, extra: dict | None = None) -> None:
    """Write weights (float16 to keep the file small) with the config as safetensors metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in net.state_dict().items()}
    meta = {"config": json.dumps(asdict(cfg)), "kind": type(cfg).__name__, **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def load_state(path: Path, cfg_type: type) -> tuple[object, dict[str, torch.Tensor], dict[str, str]]:
    """Read (config, float32 state dict, metadata) from a safetensors file written by :func:`save_model`."""
    from safetensors import safe_open

    if not path.exists():
        raise CodecError(f"no trained weights at {path}; create them with `sagin-hil train` (see docs/codecs.md)")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k).float() for k in f.keys()}
    if meta.get("kind") != cfg_type.__name__:
        raise CodecError(f"{path} holds a {meta.get('kind')!r} model, expected {cfg_type.__name__}")
    return cfg_type(**json.loads(meta["config"])), state, meta


def weights_path(ratio: str, weights_dir: Path | None = None) -> Path:
    return (weights_dir or WEIGHTS_DIR) / f"jscc-{ratio.replace('/', '_')}.safetensors"


def _to_tensor(img: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """uint8 HxWx3 -> (1, 3, H', W') float in [0, 1], reflect-padded to multiples of 4."""
    h, w = img.shape[:2]
    ph, pw = (-h) % _DOWN, (-w) % _DOWN
    x = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else img
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float() / 255.0, (h, w)


class JsccCodec(Codec):
    """Deep JSCC as a codec: an analog payload of complex symbols plus a small digital header.

    Parameters
    ----------
    net : JsccNet
        Trained (or random, for tests) networks; see :meth:`pretrained` and :meth:`from_config`.

    Input (encode)
    --------------
    image : uint8 HxW or HxWx3
    snr_db : float
        Channel SNR the transmitter expects (conditions the encoder), default 10 dB.

    Output (encode)
    ---------------
    :class:`Payload` with symbols (complex64, unit mean power, ratio * 3HW of them) and data = header bytes.

    Input (decode)
    --------------
    data : bytes, the header; symbols : complex array as received (equalised); snr_db : the receiver's estimate.
    """

    kind = "analog"
    codec_id = 2
    weights_file: Path | None = None  # set by pretrained()

    def __init__(self, net: nn.Module, device: str | None = None):
        self.net = net.eval()
        self.cfg = net.cfg
        self.name = f"jscc-{self.cfg.ratio}"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.net.to(self.device)

    @classmethod
    def from_config(cls, cfg: JsccConfig | None = None, seed: int = 0, **kw) -> "JsccCodec":
        """A codec with random weights (tests, or the starting point of training)."""
        torch.manual_seed(seed)
        return cls(build_net(cfg or JsccConfig()), **kw)

    @classmethod
    def pretrained(cls, ratio: str = "1/12", weights_dir: str | Path | None = None, **kw) -> "JsccCodec":
        """The model trained by `sagin-hil train jscc`, read from codecs/weights (never downloaded); the file
        read is `weights_file` (measurements made with it record its digest)."""
        path = weights_path(ratio, Path(weights_dir) if weights_dir else None)
        cfg, state, _ = load_state(path, JsccConfig)
        net = build_net(cfg)
        net.load_state_dict(state)
        codec = cls(net, **kw)
        codec.weights_file = path
        return codec

    def n_symbols(self, height: int, width: int) -> int:
        """Complex channel uses for an image of height x width (after padding to multiples of 4)."""
        return self.cfg.symbols_per_position * (-(-height // _DOWN)) * (-(-width // _DOWN))

    @torch.no_grad()
    def encode(self, image: np.ndarray, budget: Budget | None = None) -> Payload:
        """Budget: snr_db (default 10 dB) conditions the encoder; symbols, when given, must cover the image's
        channel uses (the ratio fixes them); bits are not used (the header rides as side information)."""
        t0 = time.perf_counter()
        img = check_image(image)
        if img.ndim == 2 or img.shape[2] == 1:
            img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
        budget = budget or Budget()
        snr_db = 10.0 if budget.snr_db is None else budget.snr_db
        need = self.n_symbols(*img.shape[:2])
        if budget.symbols is not None and budget.symbols < need:
            raise CodecError(f"{self.name} sends {need} channel symbols for a {img.shape[0]}x{img.shape[1]} image; "
                             f"Budget(symbols={budget.symbols}) is too few: use a lower-ratio JSCC mode or a smaller image")
        x, (h, w) = _to_tensor(img)
        z = self.net.encode(x.to(self.device), torch.tensor([float(snr_db)], device=self.device))[0].cpu().numpy()
        sym = (z[0::2] + 1j * z[1::2]).astype(np.complex64).ravel()  # channel pairs -> I/Q
        frac = Fraction(self.cfg.ratio)
        data = pack_header(self.codec_id, _BODY.pack(h, w, frac.numerator, frac.denominator, float(snr_db)))
        return Payload(self.name, data, 8 * len(data), time.perf_counter() - t0, symbols=sym,
                       metadata={"ratio": self.cfg.ratio, "snr_db": float(snr_db), "shape": (h, w)})

    @torch.no_grad()
    def decode(self, data: bytes, symbols: np.ndarray | None = None, snr_db: float | None = None, **_: object) -> np.ndarray:
        body, _ = unpack_header(bytes(data), self.codec_id)
        h, w, num, den, tx_snr = _BODY.unpack(body)
        if Fraction(num, den) != Fraction(self.cfg.ratio):
            raise CodecError(f"payload has ratio {num}/{den}, this decoder is {self.cfg.ratio}")
        if symbols is None:
            raise CodecError("JSCC decode needs the received symbols: decode(header, symbols=..., snr_db=...)")
        hp, wp = h + (-h) % _DOWN, w + (-w) % _DOWN
        k = self.cfg.symbols_per_position
        sym = np.asarray(symbols).ravel()
        if sym.size != k * (hp // _DOWN) * (wp // _DOWN):
            raise CodecError(f"got {sym.size} symbols, a {h}x{w} image at ratio {self.cfg.ratio} has {self.n_symbols(h, w)}")
        sym = np.nan_to_num(sym.astype(np.complex64)).reshape(k, hp // _DOWN, wp // _DOWN)
        z = np.empty((2 * k, hp // _DOWN, wp // _DOWN), np.float32)
        z[0::2], z[1::2] = sym.real, sym.imag
        snr = float(tx_snr if snr_db is None else snr_db)
        snr = min(max(snr, self.cfg.snr_min_db - 3), self.cfg.snr_max_db + 3)  # FiLM was trained on this range
        out = self.net.decode(torch.from_numpy(z)[None].to(self.device), torch.tensor([snr], device=self.device))
        img = (out[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
        return img[:h, :w]
