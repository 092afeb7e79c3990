"""Generative modes of paper 000: the offline diffusion decoder of Modes 3_x, the caption field of Mode 2,
the weights-layout errors, and the training loop's checkpoint and resume."""

import numpy as np
import pytest
import torch

from sagin_hil.codecs.base import HEADER_OVERHEAD_BYTES


def _random_gen_codec(mode="3_1", seed=0):
    from sagin_hil.codecs.generative.diffusion import CondUNet, GenConfig
    from sagin_hil.codecs.vq import VqCodec

    vq = VqCodec.pretrained(mode, device="cpu")
    torch.manual_seed(seed)
    return vq, CondUNet(GenConfig(mode=mode, latent_dim=vq.cfg.latent_dim))


def test_the_generative_decoder_keeps_the_vq_bits_and_starts_from_the_plain_decoder():
    """Same payload bytes as the VQ codec (the bits do not change); a UNet whose output layer is still zero
    (as initialised) predicts no residual, so DDIM returns exactly the plain VQ decoding at any step count."""
    from sagin_hil.codecs.generative.offline import GenVqCodec
    from sagin_hil.codecs.images import load_images

    vq, unet = _random_gen_codec()
    gen = GenVqCodec(vq, unet, steps=3)
    img = load_images(1, 64, "eval")[0][1]
    pay, ref = gen.encode(img), vq.encode(img)
    assert pay.data == ref.data and pay.n_bits == 8 * (HEADER_OVERHEAD_BYTES + 6) + 4 * 4 * 8
    plain = vq.decode(ref.data)
    for steps in (1, 3):
        assert np.array_equal(gen.decode(pay.data, steps=steps), plain)


def test_a_trained_residual_changes_the_image_deterministically():
    """With a non-zero output layer the decode differs from the plain one, is reproducible (seeded noise),
    and survives a truncated payload (missing indices are filled, never a crash)."""
    from sagin_hil.codecs.generative.offline import GenVqCodec
    from sagin_hil.codecs.images import load_images

    vq, unet = _random_gen_codec()
    torch.nn.init.normal_(unet.out[-1].weight, std=0.05)
    gen = GenVqCodec(vq, unet, steps=2)
    img = load_images(1, 48, "eval")[0][1]
    pay = gen.encode(img)
    a, b = gen.decode(pay.data), gen.decode(pay.data)
    assert np.array_equal(a, b) and not np.array_equal(a, vq.decode(pay.data))
    assert gen.decode(pay.data[:-4]).shape == img.shape
    with pytest.raises(ValueError, match="steps=0"):
        GenVqCodec(vq, unet, steps=0)


def test_the_ssim_loss_is_the_metrics_ssim():
    """The training loss is 1 - the project's MS-SSIM (5 scales, within 2e-3) and at one scale its SSIM
    (Gaussian 11 / 1.5, valid window, within 1e-3)."""
    from sagin_hil.codecs.generative.diffusion import ms_ssim_loss
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import ms_ssim, ssim

    img = load_images(1, 64, "eval")[0][1]
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    assert 1 - ms_ssim_loss(t(img), t(noisy), scales=1).item() == pytest.approx(ssim(img, noisy), abs=1e-3)
    assert ms_ssim_loss(t(img), t(img), scales=3).item() == pytest.approx(0.0, abs=1e-6)
    big = load_images(1, 176, "eval")[0][1]
    blur = np.clip(big.astype(float) * 0.8 + 20 + np.random.default_rng(1).normal(0, 10, big.shape), 0, 255).astype(np.uint8)
    assert 1 - ms_ssim_loss(t(big), t(blur)).item() == pytest.approx(ms_ssim(big, blur), abs=2e-3)


def test_alpha_bar_runs_from_signal_to_noise():
    from sagin_hil.codecs.generative.diffusion import alpha_bar

    ab = alpha_bar(torch.linspace(0, 1, 11))
    assert ab[0] > 0.999 and ab[-1] < 1e-6 and bool(torch.all(ab[1:] < ab[:-1]))


def test_training_checkpoints_and_resumes(tmp_path):
    """A short run writes weights and a checkpoint; a second call with a larger budget resumes from it
    (its step count continues) and the weights load back into the codec."""
    from sagin_hil.codecs.generative.offline import GenVqCodec
    from sagin_hil.codecs.generative.train_offline import train_gen_decoder

    kw = dict(batch=2, patch=64, device="cpu", threads=1, out_dir=tmp_path, checkpoint_dir=tmp_path / "ck",
              cache_patches=16, log=None)
    first = train_gen_decoder("3_1", minutes=0.02, **kw)
    assert not first["resumed"] and first["steps"] >= 1 and (tmp_path / "ck" / "gen-3_1.ckpt.pt").exists()
    second = train_gen_decoder("3_1", minutes=0.04, **kw)
    assert second["resumed"] and second["steps"] > first["steps"]
    codec = GenVqCodec.pretrained("3_1", weights_dir=tmp_path, device="cpu", steps=1)
    assert codec.unet.cfg.mode == "3_1" and codec.steps == 1


def test_caption_field_is_fixed_size_and_robust():
    """Mode 2's caption: UTF-8 cut at a character boundary into exactly CAPTION_BYTES bytes; bit errors read
    as replacement characters, not exceptions; the payload is always 8 * (10 + 4 + 64) = 624 bits."""
    from sagin_hil.codecs.generative.sd import CAPTION_BYTES, CaptionCodec, pack_caption, unpack_caption

    assert unpack_caption(pack_caption("a cat on a rocket")) == "a cat on a rocket"
    long = "é" * 40  # 80 bytes: cut to 32 whole characters, never half of one
    field = pack_caption(long)
    assert len(field) == CAPTION_BYTES and unpack_caption(field) == "é" * 32
    broken = bytes([field[0] ^ 0x40]) + field[1:]
    assert isinstance(unpack_caption(broken), str)
    assert CaptionCodec.n_bits() == 8 * (HEADER_OVERHEAD_BYTES + 4 + CAPTION_BYTES) == 624


def test_missing_weights_name_the_files_and_the_layout(tmp_path):
    from sagin_hil.codecs.generative.weights import GenerativeWeightsError, require
    from sagin_hil.codecs.modes import MODES

    with pytest.raises(GenerativeWeightsError, match=r"no weights directory was given.*\n.*stable-diffusion/model_index"):
        require(None, "stable-diffusion", mode="mode2")
    (tmp_path / "blip").mkdir()
    (tmp_path / "blip" / "config.json").write_text("{}")
    with pytest.raises(GenerativeWeightsError) as exc:
        require(tmp_path, "blip")
    msg = str(exc.value)
    lacking = msg.split(" lacks ")[1].split("; provide")[0].split(", ")
    assert lacking[0] == "model.safetensors or pytorch_model.bin" and "config.json" not in lacking
    assert "blip/tokenizer.json or vocab.txt" in msg
    why = MODES.get("mode2").missing_weights(tmp_path)
    assert why.startswith("mode2 needs a BLIP") and MODES.get("mode1").missing_weights(None) is None


def test_offline_mode3_1_runs_in_the_main_job(tmp_path):
    """Mode 3_1 without weights in `sagin-hil run`: the VQ indices cross the hops as LDPC-coded bits (4 x 4
    indices of 8 bits + the 16-byte header for a 64 px image) and the user sees the diffusion decoder's image."""
    import json

    from typer.testing import CliRunner

    from sagin_hil.cli import app
    from sagin_hil.codecs import get_codec
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import psnr

    fg = tmp_path / "gen.toml"
    fg.write_text('name = "gen"\n[images]\ncount = 1\nsize_px = 64\n[controller]\nmodes = ["mode3_1"]\n')
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp_path / "runs"), "-q", "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    task = json.loads((tmp_path / "s.json").read_text())["tasks"][0]
    codec, img = get_codec("gen-3_1"), load_images(1, 64, "run")[0][1]
    pay = codec.encode(img)
    assert task["mode"] == "mode3_1" and task["bits"] == pay.n_bits == 8 * (HEADER_OVERHEAD_BYTES + 6) + 4 * 4 * 8
    assert pay.metadata["caption_bits"] == 0 and pay.metadata["index_bits"] == 128
    assert task["psnr_db"] == pytest.approx(psnr(img, codec.decode(pay.data)), abs=0.05)


@pytest.mark.parametrize("mode", ["3_1", "3_2", "3_3"])
def test_shipped_diffusion_decoders_beat_what_they_replace_on_held_out_images(mode):
    """The shipped offline decoders, on the 8 held-out images at 256 px: above the plain VQ decoder in
    MS-SSIM at every mode, and at 0.033 bpp (Mode 3_1, the only rate <= 0.05 bpp) above JPEG 2000 at the
    same payload size, on every image."""
    from sagin_hil.codecs.generative.train_offline import evaluate_gen

    res = evaluate_gen(mode, steps=(1,))
    assert res["split"] == "eval" and res["n_images"] == 8
    assert res["gen-1"]["ms_ssim"] > res["vq"]["ms_ssim"]
    if res["bpp"] <= 0.05:
        assert np.all(np.asarray(res["gen-1"]["ms_ssim_per_image"]) > res["jpeg2000"]["ms_ssim_per_image"])
