"""Learned image metrics from weights the user supplies: LPIPS (AlexNet, v0.1) and CLIP scores.

Nothing is downloaded. Weights live under one folder the user names (``--weights-dir DIR``):

- ``DIR/lpips/alex.pth``: the LPIPS v0.1 linear layers (keys ``lin0.model.1.weight`` .. ``lin4.model.1.weight``,
  shapes (1, C, 1, 1)), as shipped inside the ``lpips`` package (``lpips/weights/v0.1/alex.pth``).
- ``DIR/lpips/alexnet-owt-7be5be79.pth``: torchvision's ImageNet AlexNet (keys ``features.0.weight`` ...); any
  other ``*.pth`` / ``*.safetensors`` file in that folder with the same keys is accepted instead.
- ``DIR/clip/``: a Hugging Face CLIP model folder (``config.json``, ``model.safetensors``, ``tokenizer.json`` or
  ``vocab.json`` + ``merges.txt``, optionally ``preprocessor_config.json``), e.g. a local copy of
  openai/clip-vit-base-patch32.

LPIPS is our own plain-torch implementation of the published network (Zhang et al. 2018, "The Unreasonable
Effectiveness of Deep Features as a Perceptual Metric", v0.1 weights). CLIP scores follow the torchmetrics
convention ``100 * max(cos, 0)`` (Hessel et al. 2021 CLIP-S uses ``2.5 * max(cos, 0)``: divide ours by 40).

torch loads only when a metric is built; ``transformers`` only when a CLIP scorer is built. Checkpoints are read
with ``torch.load(..., weights_only=True)`` or safetensors, never by unpickling arbitrary objects.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only, torch stays unimported at run time
    import torch

__all__ = [
    "MetricWeightsError", "perceptual_metrics", "load_perceptual", "Lpips", "ClipScorer", "ClipPreprocess",
    "lpips_distance", "clip_score", "clip_image_similarity", "load_present", "learned_scores",
    "LPIPS_LIN_FILE", "ALEXNET_FILE", "LPIPS_MIN_SIDE_PX",
]


class MetricWeightsError(RuntimeError):
    """A learned metric (LPIPS, CLIPScore) lacks the weights the user must supply, or they are not the right ones."""


# ----------------------------------------------------------------------------------------------------------------
# Locating the weights
# ----------------------------------------------------------------------------------------------------------------

LPIPS_LIN_FILE = "alex.pth"  # name the lpips package ships its v0.1 AlexNet linear layers under
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet_Weights.IMAGENET1K_V1 file name

_PERCEPTUAL_FILES = {
    "lpips": (f"put {LPIPS_LIN_FILE} (LPIPS v0.1 linear layers) and {ALEXNET_FILE} (AlexNet) in <weights-dir>/lpips/",
              "alex.pth ships inside the lpips package (lpips/weights/v0.1/), the AlexNet file is torchvision's "
              "IMAGENET1K_V1 checkpoint"),
    "clipscore": ("put a Hugging Face CLIP model folder (config.json, model.safetensors, "
                  "tokenizer files), e.g. openai/clip-vit-base-patch32, as <weights-dir>/clip/",
                  "download it on a machine with network access"),
}
_SUBDIR = {"lpips": "lpips", "clipscore": "clip"}


def perceptual_metrics(weights_dir: str | Path | None, names: tuple[str, ...] = ("lpips", "clipscore")) -> dict:
    """Locate the user-supplied weight folders for LPIPS / CLIPScore (a quick check; nothing is loaded).

    Parameters
    ----------
    weights_dir : the folder given as ``--weights-dir`` (None when none was given).
    names : metrics to look for, from ``"lpips"``, ``"clipscore"``.

    Output
    ------
    ``{name: folder}`` of the non-empty weight folders found. Raises MetricWeightsError saying what to put where
    for every metric whose folder is missing or empty. Nothing is downloaded.
    """
    found: dict[str, Path] = {}
    missing = []
    root = Path(weights_dir) if weights_dir is not None else None
    for name in names:
        if name not in _PERCEPTUAL_FILES:
            raise ValueError(f"unknown perceptual metric {name!r}; choose from {', '.join(_PERCEPTUAL_FILES)}")
        sub = root / _SUBDIR[name] if root is not None else None
        if sub is not None and sub.is_dir() and any(sub.iterdir()):
            found[name] = sub
        else:
            missing.append(name)
    if missing:
        lines = [f"{n}: {_PERCEPTUAL_FILES[n][0]} ({_PERCEPTUAL_FILES[n][1]})" for n in missing]
        where = f"--weights-dir {root}" if root is not None else "no --weights-dir was given"
        head = f"{', '.join(missing)} need weights the user supplies ({where}); nothing is downloaded."
        raise MetricWeightsError("\n".join([head, *lines]))
    return found


def load_perceptual(weights_dir: str | Path | None, names: tuple[str, ...] = ("lpips", "clipscore"),
                    device: str = "auto") -> dict[str, Any]:
    """Build the scorers for `names` from `weights_dir`: ``{"lpips": Lpips, "clipscore": ClipScorer}``.

    Raises MetricWeightsError (what to put where, or which file / key is wrong) before loading anything heavy
    when a folder is missing.
    """
    folders = perceptual_metrics(weights_dir, names)
    builders = {"lpips": Lpips.from_dir, "clipscore": ClipScorer.from_dir}
    return {name: builders[name](folders[name], device=device) for name in names}


def load_present(weights_dir: str | Path | None, device: str = "auto") -> dict[str, Any]:
    """The scorers (as load_perceptual) of the metrics whose folder (lpips/, clip/) `weights_dir` holds; {} when
    it holds neither or is None. A folder with the wrong files still raises MetricWeightsError naming them."""
    if weights_dir is None:
        return {}
    names = tuple(n for n, sub in _SUBDIR.items() if (Path(weights_dir).expanduser() / sub).is_dir())
    return load_perceptual(weights_dir, names, device=device) if names else {}


def learned_scores(scorers: dict[str, Any], ref: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """{"lpips", "clip_i"} of `test` against `ref` for the scorers present (as load_perceptual builds them):
    LPIPS distance and CLIP image similarity (0-100)."""
    out = {}
    if "lpips" in scorers:
        out["lpips"] = scorers["lpips"](ref, test)
    if "clipscore" in scorers:
        out["clip_i"] = scorers["clipscore"].clip_image_similarity(ref, test)
    return out


def _metric_folder(weights_dir: str | Path, sub: str) -> Path:
    """`<weights_dir>/<sub>`, or `weights_dir` itself when the caller already named the metric's folder."""
    root = Path(weights_dir)
    if not (root / sub).is_dir() and root.name == sub:
        return root
    return root / sub


def _torch_device(device: str) -> "torch.device":
    """'auto' -> CUDA when present, else CPU; anything else is passed to torch.device."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 (or HxW grey, repeated to 3 channels; HxWx4 loses alpha) float32 array with values 0..255."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {img.shape}")
    return np.ascontiguousarray(img[:, :, :3], dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Reading checkpoints
# ----------------------------------------------------------------------------------------------------------------

def _read_tensors(path: Path) -> dict[str, "torch.Tensor"]:
    """Name -> tensor of a .safetensors file or a .pth state dict (torch.load with weights_only=True)."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated file, a pickle of arbitrary objects, not a checkpoint at all
        raise MetricWeightsError(f"{path} is not a readable tensor checkpoint "
                                 f"(read with torch.load(weights_only=True) / safetensors): {exc}") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]  # some training scripts wrap the state dict
    if not isinstance(obj, Mapping):
        raise MetricWeightsError(f"{path} holds a {type(obj).__name__}, not a state dict of named tensors")
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _check_tensors(path: Path, tensors: Mapping[str, "torch.Tensor"], expected: Mapping[str, tuple[int, ...]]) -> None:
    """Raise MetricWeightsError naming `path` and the first expected key that is missing or has another shape."""
    for key, shape in expected.items():
        if key not in tensors:
            held = ", ".join(list(tensors)[:4]) or "no tensors"
            raise MetricWeightsError(f"{path}: first bad key {key!r} is missing (expected shape {shape}); "
                                     f"the file holds {held}{' ...' if len(tensors) > 4 else ''}")
        if tuple(tensors[key].shape) != shape:
            raise MetricWeightsError(f"{path}: first bad key {key!r} has shape {tuple(tensors[key].shape)}, "
                                     f"expected {shape}")


# ----------------------------------------------------------------------------------------------------------------
# LPIPS
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _AlexConv:
    """One conv layer of torchvision's AlexNet `features`, tapped after its ReLU by LPIPS."""

    index: int  # position in `features` (checkpoint keys features.<index>.weight / .bias)
    out_ch: int
    in_ch: int
    kernel: int
    stride: int
    padding: int
    pool_before: bool  # a 3x3 stride-2 max-pool precedes this conv


_ALEX_CONVS = (
    _AlexConv(0, 64, 3, 11, 4, 2, False),
    _AlexConv(3, 192, 64, 5, 1, 2, True),
    _AlexConv(6, 384, 192, 3, 1, 1, True),
    _AlexConv(8, 256, 384, 3, 1, 1, False),
    _AlexConv(10, 256, 256, 3, 1, 1, False),
)
# LPIPS rescales [-1, 1] inputs towards the ImageNet statistics the backbone was trained on: (x - shift) / scale.
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
_LPIPS_EPS = 1e-10  # added to the channel norm before dividing (keeps all-zero activations finite)
# Smallest side with a non-empty 5th tap: conv1 (k11 s4 p2) must give >= 7 px so that two 3x3/2 pools leave 1 px.
LPIPS_MIN_SIDE_PX = 31


def _alexnet_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for c in _ALEX_CONVS:
        shapes[f"features.{c.index}.weight"] = (c.out_ch, c.in_ch, c.kernel, c.kernel)
        shapes[f"features.{c.index}.bias"] = (c.out_ch,)
    return shapes


def _lin_shapes() -> dict[str, tuple[int, ...]]:
    return {f"lin{k}.model.1.weight": (1, c.out_ch, 1, 1) for k, c in enumerate(_ALEX_CONVS)}


def _find_backbone(folder: Path) -> tuple[Path, dict[str, "torch.Tensor"]]:
    """The AlexNet checkpoint in `folder`: ALEXNET_FILE if present, else the first *.pth/*.safetensors with its keys."""
    candidates = sorted(p for p in folder.iterdir()
                        if p.suffix in (".pth", ".safetensors") and p.name != LPIPS_LIN_FILE and p.is_file())
    if not candidates:
        raise MetricWeightsError(
            f"missing the AlexNet backbone in {folder}: put {ALEXNET_FILE} (torchvision's AlexNet IMAGENET1K_V1 "
            "weights, keys features.0.weight ...) there, or any .pth / .safetensors file with those keys; "
            "nothing is downloaded")
    preferred = folder / ALEXNET_FILE
    if preferred in candidates:
        return preferred, _read_tensors(preferred)
    first: tuple[Path, dict] | None = None
    for path in candidates:
        tensors = _read_tensors(path)
        if "features.0.weight" in tensors:
            return path, tensors
        first = first or (path, tensors)
    assert first is not None
    return first  # has no AlexNet keys: the shape check names the file and the key


class Lpips:
    """LPIPS distance (AlexNet backbone, v0.1 linear layers): 0 for identical images, larger = less similar.

    Per image pair: inputs scaled to [-1, 1] then (x - shift) / scale; the 5 ReLU outputs of AlexNet's conv
    layers are unit-normalised over channels at every pixel; the squared difference of the two images' features
    is weighted per channel by a 1x1 linear layer, averaged over space and summed over the 5 layers.

    Build with :meth:`from_dir`; call ``lpips(ref, test) -> float`` or :meth:`distances` for many pairs.
    """

    def __init__(self, backbone: Mapping[str, "torch.Tensor"], lins: Sequence["torch.Tensor"], device: str = "auto"):
        """
        Parameters
        ----------
        backbone : torchvision AlexNet state dict (``features.<i>.weight`` / ``.bias``; other keys ignored).
        lins : the 5 linear-layer weights, shapes (1, C, 1, 1) with C = 64, 192, 384, 256, 256.
        device : "auto" (CUDA when present), "cpu", "cuda", ...
        """
        import torch

        self.device = _torch_device(device)
        f32 = dict(device=self.device, dtype=torch.float32)
        self._convs = [(backbone[f"features.{c.index}.weight"].to(**f32),
                        backbone[f"features.{c.index}.bias"].to(**f32)) for c in _ALEX_CONVS]
        self._lins = [w.to(**f32) for w in lins]
        self._shift = torch.tensor(_LPIPS_SHIFT, **f32).view(1, 3, 1, 1)
        self._scale = torch.tensor(_LPIPS_SCALE, **f32).view(1, 3, 1, 1)

    @classmethod
    def from_dir(cls, weights_dir: str | Path, device: str = "auto") -> "Lpips":
        """Load from ``<weights_dir>/lpips/`` (or `weights_dir` itself if it is that folder) onto `device`.

        Reads ``alex.pth`` (linear layers) and the AlexNet checkpoint (``alexnet-owt-7be5be79.pth``, else any
        ``*.pth`` / ``*.safetensors`` there with its keys). Raises MetricWeightsError naming the missing file and where to put it, or the file and first bad key.
        """
        folder = _metric_folder(weights_dir, "lpips")
        if not folder.is_dir():
            raise MetricWeightsError(
                f"LPIPS weights folder {folder} does not exist: create it and put {LPIPS_LIN_FILE} (LPIPS v0.1 "
                f"linear layers, shipped inside the lpips package as lpips/weights/v0.1/alex.pth) and {ALEXNET_FILE} "
                "(torchvision's AlexNet IMAGENET1K_V1 weights) in it; nothing is downloaded")
        lin_path = folder / LPIPS_LIN_FILE
        if not lin_path.is_file():
            raise MetricWeightsError(
                f"missing {lin_path}: put the LPIPS v0.1 AlexNet linear layers there (the lpips package ships them "
                "as lpips/weights/v0.1/alex.pth); nothing is downloaded")
        lin_tensors = _read_tensors(lin_path)
        _check_tensors(lin_path, lin_tensors, _lin_shapes())
        alex_path, alex_tensors = _find_backbone(folder)
        _check_tensors(alex_path, alex_tensors, _alexnet_shapes())
        return cls(alex_tensors, [lin_tensors[k] for k in _lin_shapes()], device=device)

    def _features(self, x: "torch.Tensor") -> list["torch.Tensor"]:
        """The 5 channel-normalised ReLU taps of a (N, 3, H, W) batch with values 0..255."""
        import torch
        import torch.nn.functional as F

        h = (x / 127.5 - 1.0 - self._shift) / self._scale
        taps = []
        for spec, (w, b) in zip(_ALEX_CONVS, self._convs):
            if spec.pool_before:
                h = F.max_pool2d(h, kernel_size=3, stride=2)
            h = F.relu(F.conv2d(h, w, b, stride=spec.stride, padding=spec.padding))
            norm = torch.sqrt(torch.sum(h * h, dim=1, keepdim=True))
            taps.append(h / (norm + _LPIPS_EPS))
        return taps

    def _batch(self, refs: np.ndarray, tests: np.ndarray) -> np.ndarray:
        """Distances of N same-size pairs, (N, H, W, 3) arrays 0..255 -> (N,) float64; one forward pass."""
        import torch

        n = refs.shape[0]
        x = torch.from_numpy(np.concatenate([refs, tests])).to(self.device).permute(0, 3, 1, 2)
        with torch.inference_mode():
            total = torch.zeros(n, device=self.device, dtype=torch.float32)
            for feat, lin in zip(self._features(x), self._lins):
                diff = (feat[:n] - feat[n:]) ** 2
                total += torch.sum(diff * lin, dim=1).mean(dim=(1, 2))  # 1x1 conv without bias, spatial mean
        return total.double().cpu().numpy()

    def distances(self, refs: Sequence[np.ndarray], tests: Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
        """LPIPS of each pair (refs[i], tests[i]).

        Input
        -----
        refs, tests : equal-length sequences of uint8 (or 0..255 float) HxWx3 / HxW images; each pair has equal
            shape, both sides at least LPIPS_MIN_SIDE_PX px. Consecutive pairs of one size share a forward pass
            of up to `batch_size` pairs.

        Output
        ------
        (N,) float64 distances, >= 0.
        """
        if len(refs) != len(tests):
            raise ValueError(f"{len(refs)} reference images but {len(tests)} test images")
        out = np.zeros(len(refs))
        start = 0
        while start < len(refs):
            shape = np.shape(refs[start])
            stop = start + 1
            while stop < len(refs) and stop - start < batch_size and np.shape(refs[stop]) == shape:
                stop += 1
            pairs = [self._checked(refs[i], tests[i]) for i in range(start, stop)]
            out[start:stop] = self._batch(np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs]))
            start = stop
        return out

    @staticmethod
    def _checked(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both images as float32 HxWx3, after checking equal shapes and the minimum size."""
        a, b = _as_rgb(ref), _as_rgb(test)
        if a.shape != b.shape:
            raise ValueError(f"image shapes differ: reference {a.shape} vs test {b.shape}; compare equal sizes")
        if min(a.shape[:2]) < LPIPS_MIN_SIDE_PX:
            raise ValueError(f"LPIPS (AlexNet) needs images of at least {LPIPS_MIN_SIDE_PX} px a side, "
                             f"got {a.shape[:2]}")
        return a, b

    def __call__(self, ref: np.ndarray, test: np.ndarray) -> float:
        """LPIPS distance of one pair of uint8 HxWx3 (or HxW) images of equal shape; 0 when identical."""
        return float(self.distances([ref], [test])[0])


# ----------------------------------------------------------------------------------------------------------------
# CLIP
# ----------------------------------------------------------------------------------------------------------------

# OpenAI CLIP's published image normalisation (used when the folder has no preprocessor_config.json).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_PIL_BICUBIC = 3  # PIL.Image.Resampling.BICUBIC; HF image processors store `resample` as this enum value
_CLIP_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                      "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class ClipPreprocess:
    """CLIP image preprocessing: resize (shortest side, PIL resampling), centre crop, scale to 0..1, normalise."""

    shortest_edge_px: int | None  # resize so the shorter side has this many px (aspect kept) ...
    resize_hw_px: tuple[int, int] | None  # ... or to exactly this (height, width) when the config says so
    crop_hw_px: tuple[int, int] | None  # centre crop (None: no crop)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: int = _PIL_BICUBIC

    @classmethod
    def from_folder(cls, folder: Path, image_size_px: int) -> "ClipPreprocess":
        """From ``preprocessor_config.json`` in `folder` if present, else CLIP's defaults at `image_size_px`."""
        cfg_path = folder / "preprocessor_config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        size = cfg.get("size", image_size_px)
        shortest, resize_hw = None, None
        if isinstance(size, int):
            shortest = size
        elif "shortest_edge" in size:
            shortest = int(size["shortest_edge"])
        else:
            resize_hw = (int(size["height"]), int(size["width"]))
        crop = cfg.get("crop_size", image_size_px)
        crop_hw = (crop, crop) if isinstance(crop, int) else (int(crop["height"]), int(crop["width"]))
        return cls(
            shortest_edge_px=shortest if cfg.get("do_resize", True) else None,
            resize_hw_px=resize_hw if cfg.get("do_resize", True) else None,
            crop_hw_px=crop_hw if cfg.get("do_center_crop", True) else None,
            mean=tuple(cfg.get("image_mean", CLIP_MEAN)),
            std=tuple(cfg.get("image_std", CLIP_STD)),
            resample=int(cfg.get("resample", _PIL_BICUBIC)),
        )

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 (or HxW) image -> float32 (3, crop_h, crop_w) model input."""
        from PIL import Image

        img = np.clip(np.rint(_as_rgb(image)), 0, 255).astype(np.uint8)
        h, w = img.shape[:2]
        size_hw = self.resize_hw_px
        if self.shortest_edge_px is not None:
            s = self.shortest_edge_px  # the longer side is truncated, as the HF processors do
            size_hw = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
        if size_hw is not None and size_hw != (h, w):
            img = np.asarray(Image.fromarray(img).resize((size_hw[1], size_hw[0]), resample=self.resample))
        if self.crop_hw_px is not None:
            img = _centre_crop(img, self.crop_hw_px)
        x = img.astype(np.float32) / 255.0
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))


def _centre_crop(img: np.ndarray, crop_hw: tuple[int, int]) -> np.ndarray:
    """Centre crop to crop_hw, zero-padding first where the image is smaller."""
    ch, cw = crop_hw
    h, w = img.shape[:2]
    if h < ch or w < cw:
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        img = np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
        h, w = img.shape[:2]
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[top : top + ch, left : left + cw]


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and load reports while we load (we raise our own errors)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _pooled(out: Any) -> "torch.Tensor":
    """Projected embedding from get_*_features: a tensor (transformers 4) or a ModelOutput (transformers 5)."""
    import torch

    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ClipScorer:
    """CLIP image-text and image-image scores, ``100 * max(cos(emb_a, emb_b), 0)`` (the torchmetrics scale).

    :meth:`clip_score` is CLIPScore (Hessel et al. 2021, at torchmetrics' scale 100 instead of w = 2.5) of an
    image and a caption; :meth:`clip_image_similarity` is the same on two images' embeddings, what a semantic
    codec without captions is judged by (100 for identical images). Build with :meth:`from_dir`.
    """

    def __init__(self, model: Any, preprocess: ClipPreprocess, folder: Path, device: str = "auto"):
        """
        Parameters
        ----------
        model : a transformers CLIPModel (moved to `device`, put in eval mode here).
        preprocess : image preprocessing matching the model.
        folder : the model folder (the tokenizer loads from it on the first caption).
        device : "auto" (CUDA when present), "cpu", "cuda", ...
        """
        self.device = _torch_device(device)
        self.model = model.to(self.device).eval()
        self.preprocess = preprocess
        self.folder = folder
        self.max_text_tokens = int(model.config.text_config.max_position_embeddings)

    @classmethod
    def from_dir(cls, weights_dir: str | Path, device: str = "auto") -> "ClipScorer":
        """Load the CLIP model folder ``<weights_dir>/clip/`` (or `weights_dir` itself if it is that folder).

        Only local files are read (``local_files_only=True``). Raises MetricWeightsError naming the missing file,
        or the weights file and its first missing / mis-shaped key.
        """
        folder = _metric_folder(weights_dir, "clip")
        model = _load_clip_model(folder)
        preprocess = ClipPreprocess.from_folder(folder, int(model.config.vision_config.image_size))
        return cls(model, preprocess, folder, device=device)

    @functools.cached_property
    def tokenizer(self) -> Any:
        """The folder's tokenizer, loaded on first use (image-image similarity does not need one)."""
        if not (self.folder / "tokenizer.json").is_file() and not (
            (self.folder / "vocab.json").is_file() and (self.folder / "merges.txt").is_file()
        ):
            raise MetricWeightsError(
                f"missing {self.folder / 'tokenizer.json'} (or vocab.json + merges.txt): CLIPScore needs the "
                "tokenizer files of the CLIP model in the same folder")
        from transformers import AutoTokenizer

        with _quiet_transformers():
            return AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)

    def image_embeddings(self, images: Sequence[np.ndarray], batch_size: int = 16) -> "torch.Tensor":
        """Unit-norm image embeddings (N, D) of uint8 HxWx3 / HxW images (any sizes)."""
        import torch

        out = []
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.stack([self.preprocess(im) for im in images[i : i + batch_size]]))
            with torch.inference_mode():
                emb = _pooled(self.model.get_image_features(pixel_values=x.to(self.device)))
            out.append(torch.nn.functional.normalize(emb.float(), dim=-1))
        return torch.cat(out)

    def text_embeddings(self, captions: Sequence[str]) -> "torch.Tensor":
        """Unit-norm text embeddings (N, D); captions longer than the model's context are truncated."""
        import torch

        tok = self.tokenizer(list(captions), padding=True, truncation=True, max_length=self.max_text_tokens,
                             return_tensors="pt")
        with torch.inference_mode():
            emb = _pooled(self.model.get_text_features(input_ids=tok["input_ids"].to(self.device),
                                                       attention_mask=tok["attention_mask"].to(self.device)))
        return torch.nn.functional.normalize(emb.float(), dim=-1)

    @staticmethod
    def _score(a: "torch.Tensor", b: "torch.Tensor") -> np.ndarray:
        """100 * max(cos, 0) of row-paired unit vectors."""
        return (100.0 * (a * b).sum(dim=-1).clamp_min(0.0)).double().cpu().numpy()

    def clip_scores(self, images: Sequence[np.ndarray], captions: Sequence[str]) -> np.ndarray:
        """CLIPScore of each (images[i], captions[i]) pair, in [0, 100]."""
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        return self._score(self.image_embeddings(images), self.text_embeddings(captions))

    def clip_score(self, image: np.ndarray, caption: str) -> float:
        """CLIPScore = 100 * max(cos(image_emb, text_emb), 0) of one uint8 image and one caption, in [0, 100]."""
        return float(self.clip_scores([image], [caption])[0])

    def image_similarities(self, refs: Sequence[np.ndarray], tests: Sequence[np.ndarray]) -> np.ndarray:
        """100 * max(cos, 0) of the CLIP image embeddings of each (refs[i], tests[i]) pair, in [0, 100]."""
        if len(refs) != len(tests):
            raise ValueError(f"{len(refs)} reference images but {len(tests)} test images")
        emb = self.image_embeddings(list(refs) + list(tests))
        return self._score(emb[: len(refs)], emb[len(refs) :])

    def clip_image_similarity(self, ref: np.ndarray, test: np.ndarray) -> float:
        """CLIP image-image similarity 100 * max(cos, 0) of two uint8 images; 100 when identical."""
        return float(self.image_similarities([ref], [test])[0])


def _load_clip_model(folder: Path) -> Any:
    """transformers CLIPModel from `folder` (local files only, float32), checked for missing / mis-shaped keys."""
    if not folder.is_dir():
        raise MetricWeightsError(
            f"CLIP folder {folder} does not exist: put a Hugging Face CLIP model folder there (config.json, "
            "model.safetensors, tokenizer.json or vocab.json + merges.txt, preprocessor_config.json), e.g. a copy "
            "of openai/clip-vit-base-patch32 made on a machine with network access; nothing is downloaded")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise MetricWeightsError(f"missing {config_path}: the CLIP folder needs the model's config.json")
    weights = [folder / name for name in _CLIP_WEIGHT_FILES if (folder / name).is_file()]
    if not weights:
        raise MetricWeightsError(f"missing {folder / 'model.safetensors'}: the CLIP folder needs the model weights "
                                 "(model.safetensors or pytorch_model.bin)")
    model_type = json.loads(config_path.read_text()).get("model_type")
    if model_type != "clip":
        raise MetricWeightsError(f"{config_path}: first bad key 'model_type' is {model_type!r}, expected 'clip'")
    import torch
    from transformers import CLIPModel

    with _quiet_transformers():
        model, info = CLIPModel.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32,
                                                output_loading_info=True, ignore_mismatched_sizes=True)
    bad = sorted(info.get("missing_keys", ())) + sorted(str(m[0] if isinstance(m, tuple) else m)
                                                        for m in info.get("mismatched_keys", ()))
    if bad:
        kind = "is missing" if info.get("missing_keys") else "has the wrong shape"
        raise MetricWeightsError(f"{weights[0]}: first bad key {bad[0]!r} {kind} "
                                 f"({len(bad)} bad keys); is this a CLIP checkpoint matching {config_path}?")
    return model


# ----------------------------------------------------------------------------------------------------------------
# One-call helpers (models cached per folder and device)
# ----------------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _cached_lpips(weights_dir: str, device: str) -> Lpips:
    return Lpips.from_dir(weights_dir, device=device)


@functools.lru_cache(maxsize=2)
def _cached_clip(weights_dir: str, device: str) -> ClipScorer:
    return ClipScorer.from_dir(weights_dir, device=device)


def lpips_distance(ref: np.ndarray, test: np.ndarray, weights_dir: str | Path, device: str = "auto") -> float:
    """LPIPS (AlexNet, v0.1) of two uint8 images with the weights in ``<weights_dir>/lpips/``; lower = more similar."""
    return _cached_lpips(str(weights_dir), device)(ref, test)


def clip_score(image: np.ndarray, caption: str, weights_dir: str | Path, device: str = "auto") -> float:
    """CLIPScore 100 * max(cos, 0) of an image and a caption with the CLIP folder ``<weights_dir>/clip/``."""
    return _cached_clip(str(weights_dir), device).clip_score(image, caption)


def clip_image_similarity(ref: np.ndarray, test: np.ndarray, weights_dir: str | Path, device: str = "auto") -> float:
    """CLIP image-image similarity 100 * max(cos, 0) with the CLIP folder ``<weights_dir>/clip/``; 100 if identical."""
    return _cached_clip(str(weights_dir), device).clip_image_similarity(ref, test)
