"""SPIFF as a transmission mode: its mode-table row, and `sagin-hil run` carrying its payload as LDPC-coded bits."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sagin_hil.cli import app


def test_the_mode_table_row_is_measured():
    from sagin_hil.codecs.modes import get_mode, load_mode_table

    spec = get_mode("spiff")
    row = spec.row(load_mode_table())
    assert spec.carrier == "bits" and spec.user_weights and not spec.rate_adaptive
    assert row["bits"] > 0 and 5 < row["psnr_db"] < 60 and 0 < row["ssim"] <= 1 and 0 < row["ms_ssim"] <= 1
    assert row["compute_time_s"] == pytest.approx(row["encode_time_s"] + row["decode_time_s"])


def test_run_carries_spiff_payloads_bit_exactly(tmp_path):
    """Mode spiff forced on the reference pass (~20 dB per hop, no block lost after ARQ): each task sends exactly
    the SPIFF payload of its image, and the user sees exactly what the SPIFF decoder makes of it."""
    from sagin_hil.codecs import get_codec
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import psnr

    fg = tmp_path / "spiff.toml"
    fg.write_text('name = "spiff"\n[images]\ncount = 2\nsize_px = 128\n[controller]\nmodes = ["spiff"]\n')
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp_path / "runs"), "-q", "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    tasks = json.loads((tmp_path / "s.json").read_text())["tasks"]
    codec = get_codec("spiff")
    for t, (_, img) in zip(tasks, load_images(n=2, size=128, split="run")):
        pay = codec.encode(img)
        assert t["mode"] == "spiff" and t["bits"] == pay.n_bits
        assert t["psnr_db"] == pytest.approx(psnr(img, codec.decode(pay.data)))
