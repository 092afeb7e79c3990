"""Quality metrics against known values and the scikit-image reference."""

import numpy as np
import pytest

from sagin_hil.codecs.images import load_images
from sagin_hil.codecs.metrics import MetricWeightsError, ms_ssim, perceptual_metrics, psnr, ssim


@pytest.fixture(scope="module")
def pair():
    img = load_images(n=1, size=192, split="eval")[0][1]
    rng = np.random.default_rng(3)
    noisy = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    return img, noisy


def test_identical_images(pair):
    img, _ = pair
    assert psnr(img, img) == float("inf")
    assert ssim(img, img) == pytest.approx(1.0)
    assert ms_ssim(img, img) == pytest.approx(1.0)


def test_psnr_known_value():
    a = np.full((32, 32, 3), 100, np.uint8)
    assert psnr(a, a + 1) == pytest.approx(10 * np.log10(255**2), abs=1e-9)  # MSE 1: 48.13 dB
    assert psnr(a, a + 10) == pytest.approx(10 * np.log10(255**2 / 100), abs=1e-9)


def test_ssim_matches_scikit_image_gaussian(pair):
    from skimage.metrics import structural_similarity

    img, noisy = pair
    ref = structural_similarity(img, noisy, data_range=255, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, channel_axis=-1)
    assert ssim(img, noisy) == pytest.approx(ref, abs=1e-12)
    assert 0.3 < ssim(img, noisy) < 0.99


def test_ms_ssim_single_scale_equals_ssim(pair):
    img, noisy = pair  # our independent Gaussian-filter implementation vs scikit-image
    assert ms_ssim(img, noisy, weights=(1.0,)) == pytest.approx(ssim(img, noisy), abs=1e-9)


def test_ms_ssim_orders_distortions(pair):
    img, noisy = pair
    rng = np.random.default_rng(4)
    worse = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    assert 1.0 > ms_ssim(img, noisy) > ms_ssim(img, worse) > 0.0
    with pytest.raises(ValueError, match="160 px"):
        ms_ssim(img[:100, :100], noisy[:100, :100])
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(img, noisy[:10])


def test_perceptual_metrics_say_what_to_supply(tmp_path):
    from sagin_hil.codecs import perceptual

    assert MetricWeightsError is perceptual.MetricWeightsError  # metrics.py re-exports the locator and its error
    with pytest.raises(MetricWeightsError, match="no --weights-dir") as exc:
        perceptual_metrics(None)
    assert "alex.pth" in str(exc.value) and "clip" in str(exc.value)
    (tmp_path / "lpips").mkdir()
    (tmp_path / "lpips" / "alex.pth").write_bytes(b"x")
    assert perceptual_metrics(tmp_path, ("lpips",))["lpips"] == tmp_path / "lpips"
    with pytest.raises(MetricWeightsError, match="clipscore"):
        perceptual_metrics(tmp_path)


def test_cli_perceptual_without_weights_says_where(tmp_path):
    from typer.testing import CliRunner

    from sagin_hil.cli import app

    res = CliRunner().invoke(app, ["train", "eval", "jpeg2000", "--perceptual", "--weights-dir", str(tmp_path)])
    assert res.exit_code == 2
    out = res.output  # click mixes stderr into output
    assert "lpips" in out and f"{tmp_path}" in out and "nothing is downloaded" in out
