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


def test_colour_offset_is_the_mean_colour_cast_and_its_mse_share():
    from sagin_hil.codecs.metrics import colour_offset, psnr

    rng = np.random.default_rng(1)
    ref = rng.integers(20, 230, (32, 40, 3)).astype(np.uint8)
    cast = ref.astype(int) + np.array([3, -7, 0])
    np.testing.assert_allclose(colour_offset(ref, cast.astype(np.uint8)), [3.0, -7.0, 0.0])
    # a pure cast d costs exactly MSE = mean(d^2) = 58/3
    assert psnr(ref, cast.astype(np.uint8)) == pytest.approx(10 * np.log10(255**2 / (58 / 3)))
    assert colour_offset(ref[..., 0], ref[..., 0] + 2).shape == (1,)


def test_cli_eval_reads_candidate_weights_and_prints_the_colour_cast(tmp_path):
    """`train eval jscc-1/12 --codec-weights DIR` evaluates the file in DIR (here a tiny random network: a PSNR
    no trained JSCC has, and a cast of tens of levels); a codec without weights refuses the option."""
    from typer.testing import CliRunner

    from sagin_hil.cli import app
    from sagin_hil.codecs.jscc import JsccCodec, JsccConfig, save_model, weights_path

    codec = JsccCodec.from_config(JsccConfig(ratio="1/12", channels=8), device="cpu")
    save_model(codec.net, codec.cfg, weights_path("1/12", tmp_path))
    res = CliRunner().invoke(app, ["train", "eval", "jscc-1/12", "--images", "2", "--size", "64",
                                   "--codec-weights", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if "cast" in line]
    assert len(rows) == 3 and rows[-1].startswith("mean")
    casts = [[float(v) for v in row.split("cast")[1].split("/")] for row in rows[:2]]
    assert all(len(c) == 3 for c in casts) and max(abs(v) for c in casts for v in c) > 10.0
    assert float(rows[-1].split("PSNR")[1].split()[0]) < 18.0  # the shipped 1/12 gives about 28 dB here
    bad = CliRunner().invoke(app, ["train", "eval", "jpeg2000", "--codec-weights", str(tmp_path)])
    assert bad.exit_code == 2 and "jpeg2000 has no trained weights; drop --codec-weights" in bad.output
