"""Image quality metrics: PSNR, SSIM, MS-SSIM; LPIPS and CLIP scores (perceptual.py) from user-supplied weights.

SSIM follows the convention that matches pytorch-msssim (docs/references.md): Gaussian window sigma 1.5
(11 taps), population covariances, K1 = 0.01, K2 = 0.03, computed per channel and averaged.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

# The learned metrics live in perceptual.py (torch / transformers load only when one is built); the weight
# locator and its error are re-exported here so existing callers keep working.
from sagin_hil.codecs.perceptual import MetricWeightsError, perceptual_metrics

__all__ = ["psnr", "ssim", "ms_ssim", "colour_offset", "MS_SSIM_WEIGHTS", "MetricWeightsError", "perceptual_metrics"]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli, Bovik 2003
_SIGMA = 1.5
_WIN = 11


def _check_pair(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, test = np.asarray(ref), np.asarray(test)
    if ref.shape != test.shape:
        raise ValueError(f"image shapes differ: reference {ref.shape} vs test {test.shape}; compare equal sizes")
    if ref.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC image, got shape {ref.shape}")
    return ref.astype(np.float64), test.astype(np.float64)


def psnr(ref: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    a, b = _check_pair(ref, test)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(data_range**2 / mse))


def colour_offset(ref: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Mean of test - ref per channel (levels; shape (C,), (1,) for a grey image): a decoder's colour cast.
    An offset d costs the PSNR as an MSE of mean(d^2) would, whatever the rest of the error."""
    a, b = _check_pair(ref, test)
    return (b - a).reshape(-1, a.shape[2] if a.ndim == 3 else 1).mean(axis=0)


def ssim(ref: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> float:
    """Mean structural similarity (scikit-image, Gaussian sigma 1.5, population covariance), channels averaged."""
    from skimage.metrics import structural_similarity

    a, b = _check_pair(ref, test)
    return float(
        structural_similarity(
            a, b, data_range=data_range, gaussian_weights=True, sigma=_SIGMA, use_sample_covariance=False,
            channel_axis=-1 if a.ndim == 3 else None,
        )
    )


def _gauss_window() -> np.ndarray:
    x = np.arange(_WIN) - _WIN // 2
    g = np.exp(-(x**2) / (2 * _SIGMA**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter over the two image axes, keeping only fully covered ('valid') pixels."""
    y = correlate1d(correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")
    r = _WIN // 2
    return y[r : y.shape[0] - r, r : y.shape[1] - r]


def _ssim_cs(a: np.ndarray, b: np.ndarray, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean SSIM and contrast-structure term of HxWxC float images."""
    g = _gauss_window()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    s_aa = _filter_valid(a * a, g) - mu_a**2
    s_bb = _filter_valid(b * b, g) - mu_b**2
    s_ab = _filter_valid(a * b, g) - mu_a * mu_b
    cs = (2 * s_ab + c2) / (s_aa + s_bb + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return (lum * cs).mean(axis=(0, 1)), cs.mean(axis=(0, 1))


def _downsample2(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling (odd sizes padded by edge replication, as pytorch-msssim pads)."""
    h, w = x.shape[:2]
    x = np.pad(x, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim(ref: np.ndarray, test: np.ndarray, data_range: float = 255.0,
            weights: tuple[float, ...] = MS_SSIM_WEIGHTS) -> float:
    """Multi-scale SSIM (Wang et al. 2003): contrast-structure at the fine scales, full SSIM at the coarsest.

    The image side must exceed (11 - 1) * 2**(len(weights) - 1) px (160 px for the standard five scales).
    """
    a, b = _check_pair(ref, test)
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    need = (_WIN - 1) * 2 ** (len(weights) - 1)
    if min(a.shape[:2]) <= need:
        raise ValueError(
            f"MS-SSIM with {len(weights)} scales needs images larger than {need} px, got {a.shape[:2]}; "
            "use ssim() or fewer scales"
        )
    w = np.asarray(weights, dtype=np.float64)
    vals = []
    for level in range(len(w)):
        s, cs = _ssim_cs(a, b, data_range)
        vals.append(np.maximum(s if level == len(w) - 1 else cs, 0.0))
        if level < len(w) - 1:
            a, b = _downsample2(a), _downsample2(b)
    per_channel = np.prod(np.stack(vals) ** w[:, None], axis=0)
    return float(per_channel.mean())
