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


@pytest.fixture(scope="module")
def person_and_scene(tmp_path_factory):
    """A held-out person image (a crop of grace_hopper in which the configurations differ) and a scene without a
    person, as image files a flowgraph names."""
    from PIL import Image
    from skimage import data

    from sagin_hil.codecs.generative.spiff_images import person_images

    folder = tmp_path_factory.mktemp("images")
    Image.fromarray(dict(person_images("eval"))["grace_hopper@0.85:0.5,0.0"]).save(folder / "hopper.png")
    Image.fromarray(data.coffee()).save(folder / "coffee.png")
    return [folder / "hopper.png", folder / "coffee.png"]


def test_the_trained_engine_configures_spiff_per_task_in_a_run(tmp_path, person_and_scene):
    """[codecs.spiff] engine = "spiff": each task's trail holds the engine's decision for its image and route;
    the payload sent is exactly SPIFF's in that configuration, the user sees exactly its decoding, and the
    image without a person keeps the mode's fixed configuration."""
    from sagin_hil.codecs import get_codec
    from sagin_hil.codecs.images import load_image_files
    from sagin_hil.codecs.metrics import psnr
    from sagin_hil.controllers.spiff.policy import SpiffPolicy, route_rate_bps
    from sagin_hil.flowgraphs.config import PhyConfig
    from sagin_hil.phy.mcs import get_mcs

    fg = tmp_path / "spiff-engine.toml"
    fg.write_text(f'name = "spiff-engine"\n[images]\ncount = 2\npaths = {[str(p) for p in person_and_scene]}\n'
                  '[controller]\nmodes = ["spiff"]\n[codecs.spiff]\nengine = "spiff"\ntarget = "strict"\nseed = 2\n')
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp_path / "runs"), "-q", "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    tasks = json.loads((tmp_path / "s.json").read_text())["tasks"]
    codec, policy = get_codec("spiff"), SpiffPolicy("spiff", "strict", seed=2)
    symbol_rate = PhyConfig().symbol_rate_hz
    for t, (_, img), kind in zip(tasks, load_image_files(person_and_scene, 256), ("engine", "fixed")):
        d = t["trail"]["spiff"]
        assert (d["engine"], d["seed"], d["target"], d["configuration"]) == ("spiff", 2, "strict", kind)
        hop_rates = [symbol_rate * get_mcs(m).spectral_efficiency for m in t["mcs"].split(" / ")]
        assert d["rate_bps"] == pytest.approx(route_rate_bps(hop_rates), rel=1e-4)
        rgb, _, ranks = codec.segment(img)
        want = policy.decide(rgb, ranks, d["rate_bps"], t["deadline_s"], (0.25, 0.2, False))
        assert (d["beta"], d["keep"], d["caption"]) == (pytest.approx(want.beta, abs=1e-4), want.keep, want.caption)
        configured = codec.with_config(beta=want.beta, keep=(want.keep,), caption=want.caption)
        pay = configured.encode(img)
        assert t["bits"] == pay.n_bits
        assert (t["bits"] != codec.encode(img).n_bits) == (kind == "engine")  # the engine's choice is not the fixed one
        assert t["psnr_db"] == pytest.approx(psnr(img, configured.decode(pay.data)))
    assert tasks[0]["trail"]["spiff"]["person_share"] > 0.15 and tasks[1]["trail"]["spiff"]["person_share"] == 0.0


def test_engine_settings_are_checked_before_the_run(tmp_path):
    from sagin_hil.flowgraphs.config import FlowgraphError, load_flowgraph

    fg = tmp_path / "bad.toml"
    fg.write_text('[controller]\nmodes = ["mode1"]\n[codecs.spiff]\nengine = "ncb"\n')
    with pytest.raises(FlowgraphError, match=r'codecs.spiff.engine = "ncb" configures mode spiff, which controller.modes'):
        load_flowgraph(fg)
    fg.write_text('[images]\ncount = 1\n[controller]\nmodes = ["spiff"]\n[codecs.spiff]\nengine = "ncb"\n'
                  f'actors = "{tmp_path / "missing.safetensors"}"\n')
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp_path / "runs"), "-q"])
    assert res.exit_code != 0 and "codecs.spiff: no SPIFF actors at" in res.output
