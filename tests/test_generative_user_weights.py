"""The user-weights path of the generative modes, end to end through `sagin-hil run`, on tiny random-weight
BLIP, CLIP text encoder, VAE and UNet saved with save_pretrained in the real formats (codecs/generative/tiny.py).
The images they draw are noise; what is checked is the plumbing and the exact bit accounting."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sagin_hil.cli import app
from sagin_hil.codecs.base import HEADER_OVERHEAD_BYTES


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """Tiny blip/ + stable-diffusion/ folders, and the latent VQ of Mode 3_1 fine-tuned for 2 steps on two
    images through `sagin-hil train generative --weights-dir`."""
    from skimage.io import imsave

    from sagin_hil.codecs.generative.tiny import build_tiny_weights
    from sagin_hil.codecs.images import load_images

    root = build_tiny_weights(tmp_path_factory.mktemp("weights"))
    files = []
    for name, img in load_images(2, 40, "train"):
        files.append(root / f"{name}.png")
        imsave(files[-1], img)
    args = ["train", "generative", "--weights-dir", str(root), "--modes", "3_1", "--steps", "2", "--threads", "1",
            "--device", "cpu"] + [a for f in files for a in ("--images", str(f))]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (root / "sagin-latent-vq" / "latent-3_1.safetensors").exists()
    return root


def _run(tmp_path, modes, weights_dir=None, count=1):
    fg = tmp_path / "gen.toml"
    codecs = f'[codecs]\nweights_dir = "{weights_dir}"\ndevice = "cpu"\n' if weights_dir else ""
    fg.write_text(f'name = "gen"\n[images]\ncount = {count}\nsize_px = 64\n[tasks]\nquality_profile = false\n'
                  f'[controller]\nmodes = {json.dumps(modes)}\n{codecs}')
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp_path / "runs"), "-q",
                                   "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    return json.loads((tmp_path / "s.json").read_text())


def test_mode2_captions_and_draws_through_the_run(tiny_weights, tmp_path):
    """Mode 2 crosses the hops as 624 bits (header + size + 64-byte caption) and the receiver draws an image."""
    from sagin_hil.codecs.generative.sd import CAPTION_BYTES

    summary = _run(tmp_path, ["mode2"], tiny_weights)
    task = summary["tasks"][0]
    assert task["mode"] == "mode2" and task["bits"] == 8 * (HEADER_OVERHEAD_BYTES + 4 + CAPTION_BYTES)
    assert np.isfinite(task["psnr_db"]) and not summary.get("modes_left_out")


def test_latent_mode3_sends_caption_and_indices_through_the_run(tiny_weights, tmp_path):
    """Mode 3_1 on Stable Diffusion: header + 6-byte body + caption + 4 x 4 indices of 8 bits (the tiny VAE's
    16 x 16 latent at downsampling 4); the run's bits are exactly the codec's."""
    from sagin_hil.codecs.generative.latent import LatentVqCodec
    from sagin_hil.codecs.generative.sd import CAPTION_BYTES
    from sagin_hil.codecs.images import load_images

    summary = _run(tmp_path, ["mode3_1"], tiny_weights)
    task = summary["tasks"][0]
    codec = LatentVqCodec(tiny_weights, "3_1", device="cpu", steps=2)
    pay = codec.encode(load_images(1, 64, "run")[0][1])
    assert pay.metadata["index_bits"] == 4 * 4 * 8 and pay.metadata["caption_bits"] == 8 * CAPTION_BYTES
    assert task["mode"] == "mode3_1" and task["bits"] == pay.n_bits == 8 * (HEADER_OVERHEAD_BYTES + 6 + CAPTION_BYTES) + 128
    assert codec.decode(pay.data, guidance_scale=1.0).shape == (64, 64, 3)


def test_without_weights_mode2_is_left_out_with_the_files_to_provide(tmp_path):
    summary = _run(tmp_path, ["mode1", "mode2"])
    why = summary["modes_left_out"]["mode2"]
    assert "no weights directory was given" in why and "stable-diffusion/unet/config.json" in why
    assert all(t["mode"] == "mode1" for t in summary["tasks"])
    html = next((tmp_path / "runs").glob("*/index.html")).read_text()
    assert "mode2 left out" in html


def test_a_half_copied_stable_diffusion_folder_leaves_mode3_out_naming_its_files(tmp_path):
    """A stable-diffusion/ folder selects the pretrained path of Modes 3_x; one without its UNet is named
    in the report and the mode left out, instead of failing mid-run or silently falling back offline."""
    sd = tmp_path / "w" / "stable-diffusion"
    (sd / "vae").mkdir(parents=True)
    (sd / "model_index.json").write_text("{}")
    summary = _run(tmp_path, ["mode1", "mode3_1"], tmp_path / "w")
    why = summary["modes_left_out"]["mode3_1"]
    assert "unet/config.json" in why and "model_index.json" not in why.split("lacks")[1].split(";")[0]
    assert "blip/config.json" in why  # the caption model the latent path also needs
    assert all(t["mode"] == "mode1" for t in summary["tasks"])
