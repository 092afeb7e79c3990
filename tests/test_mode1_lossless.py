"""Mode 1 read literally ([P000]'s Mode 1 has a large volume and does not scale): lossless JPEG 2000 of the
whole image. The codec is bit exact, the mode's table row is what the codec makes, `sagin-hil run` carries
it, and the environment plans with its measured size and an SCC quality term of 1."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from sagin_hil.codecs import get_codec
from sagin_hil.codecs.base import Budget, CodecError
from sagin_hil.codecs.images import load_images


@pytest.fixture(scope="module")
def images():
    return load_images(n=3, size=96, split="eval")


def test_lossless_round_trip_is_bit_exact_and_either_decoder_reads_it(images):
    lossless, j2k = get_codec("jpeg2000-lossless"), get_codec("jpeg2000")
    for _, img in images:
        pay = lossless.encode(img)
        assert np.array_equal(lossless.decode(pay.data), img) and np.array_equal(j2k.decode(pay.data), img)
        assert pay.metadata["psnr_db"] == math.inf
        # smaller than the raw pixels, larger than any lossy budget the rate grid offers (3 bpp)
        assert 3.0 < pay.n_bits / (img.shape[0] * img.shape[1]) < 24.0
        assert lossless.encode(img, Budget(bits=pay.n_bits)).data == pay.data  # a ceiling it meets
        with pytest.raises(CodecError, match=f"needs {pay.n_bits} bits losslessly.*'jpeg2000' codec"):
            lossless.encode(img, Budget(bits=pay.n_bits - 8))


def test_the_mode_table_row_is_the_codecs_median_size_on_the_table_images():
    from sagin_hil.codecs.modes import get_mode, load_mode_table

    spec, table = get_mode("mode1-lossless"), load_mode_table()
    row = spec.row(table)
    assert spec.carrier == "bits" and not spec.rate_adaptive and row["codec"] == "jpeg2000-lossless"
    assert row["psnr_db"] == math.inf and row["ssim"] == 1.0
    codec = get_codec("jpeg2000-lossless")
    imgs = load_images(n=len(table["images"]), size=table["image_size"], split="eval")
    assert row["bits"] == int(np.median([codec.encode(img).n_bits for _, img in imgs]))
    assert spec.bits_per_pixel(table) > 3.0 * 2  # twice the rate grid's top: why the mode choice bites


def test_run_carries_lossless_payloads_bit_exactly(tmp_path):
    from sagin_hil.cli import app

    fg = tmp_path / "lossless.toml"
    fg.write_text('name = "lossless"\n[images]\ncount = 2\nsize_px = 96\n[controller]\nmodes = ["mode1-lossless"]\n')
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp_path / "runs"), "-q", "--json",
                                   str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "s.json").read_text())
    codec = get_codec("jpeg2000-lossless")
    for t, (_, img) in zip(summary["tasks"], load_images(n=2, size=96, split="run")):
        assert t["mode"] == "mode1-lossless" and t["bits"] == codec.encode(img).n_bits
        assert t["bit_exact"] and t["psnr_db"] is None and t["ssim"] == 1.0 and t["met_quality"]
    assert summary["totals"]["bit_exact"] == 2 and summary["totals"]["mean_psnr_db"] is None


def test_the_environment_plans_the_measured_size_with_full_quality():
    from sagin_hil.codecs.modes import get_mode, load_mode_table
    from sagin_hil.controllers.abstraction import SaginWorld

    n_pixels = 1_166_667
    w = SaginWorld(1, modes=("mode1-lossless", "mode3_3"), n_pixels=n_pixels, horizon_s=20.0)
    bpp = get_mode("mode1-lossless").bits_per_pixel(load_mode_table())
    hop_on = np.array([[True, True]])
    pred = w.predictor.predict(np.array([0]), np.array([[20.0, 20.0]]), np.array([[8e6, 8e6]]),
                               np.array([[0.003, 0.0]]), hop_on, np.array([11.0]), np.array([30.0]))
    assert pred["bits_per_pixel"][0] == pytest.approx(bpp) and pred["psnr_db"][0] == math.inf
    se = w.predictor.se[pred["mcs"][0]]
    assert pred["air_s"][0] == pytest.approx(bpp * n_pixels / (8e6 * se))  # the whole file over each hop
    from sagin_hil.controllers.scc import scc_weights

    q_only = scc_weights(np.array([0.0]), pred["psnr_db"], np.array([11.0]), np.array([30.0]), 1.0)
    assert q_only[0] == 1.0  # a lossless copy tops the quality term whatever the floor
