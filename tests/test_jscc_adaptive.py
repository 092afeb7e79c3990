"""The SNR- and ratio-adaptive JSCC (arch "adjscc"): GDN, attention, the shared network serving two ratios,
the weights round trip and the resumable training."""

import json
import math

import numpy as np
import pytest
import torch

from sagin_hil.codecs import Budget, CodecError
from sagin_hil.codecs.gdn import GDN
from sagin_hil.codecs.jscc import AdJsccNet, JsccCodec, JsccConfig, save_model


def _cfg(ratio: str = "1/12", channels: int = 8) -> JsccConfig:
    return JsccConfig(ratio=ratio, channels=channels, arch="adjscc", latent_ratio="1/6")


def test_gdn_matches_its_formula_and_igdn_multiplies():
    torch.manual_seed(0)
    g = GDN(4)
    with torch.no_grad():
        g.beta_root.copy_(torch.tensor([1.0, -0.5, 2.0, 0.3]))  # signs do not matter: the roots are squared
        g.gamma_root.copy_(torch.randn(4, 4))
    x = torch.randn(2, 4, 3, 5)
    beta = g.beta_root.detach() ** 2 + 1e-6
    gamma = g.gamma_root.detach() ** 2
    norm = torch.sqrt(beta[None, :, None, None] + torch.einsum("ij,bjhw->bihw", gamma, x * x))
    torch.testing.assert_close(g(x), x / norm)
    ig = GDN(4, inverse=True)
    ig.load_state_dict(g.state_dict())
    torch.testing.assert_close(ig(x), x * norm)
    # at its initialisation (beta 1, gamma 0.1 I) GDN is x / sqrt(1 + 0.1 x^2)
    torch.testing.assert_close(GDN(4)(x), x / torch.sqrt(1 + 0.1 * x * x))


@pytest.mark.parametrize("ratio,k", [("1/12", 4), ("1/6", 8)])
def test_adjscc_codec_symbol_count_and_unit_power(ratio, k):
    codec = JsccCodec.from_config(_cfg(ratio), device="cpu")
    img = np.random.default_rng(1).integers(0, 256, (36, 52, 3), dtype=np.uint8)
    pay = codec.encode(img, Budget(snr_db=3.0))
    assert pay.symbols.size == codec.n_symbols(36, 52) == k * 9 * 13
    assert np.mean(np.abs(pay.symbols) ** 2) == pytest.approx(1.0, rel=1e-4)
    rec = codec.decode(pay.data, symbols=pay.symbols, snr_db=3.0)
    assert rec.shape == img.shape and rec.dtype == np.uint8
    with pytest.raises(CodecError, match="symbols"):
        codec.decode(pay.data, symbols=pay.symbols[:-1], snr_db=3.0)


def test_one_network_serves_both_ratios_and_listens_to_the_snr():
    """The 1/12 codec sends the first 8 latent channels of the shared network (renormalised); decoding
    zero-fills the rest. The attention modules make the latent depend on the SNR."""
    torch.manual_seed(0)
    net12 = AdJsccNet(_cfg("1/12"))
    net6 = AdJsccNet(_cfg("1/6"))
    net6.load_state_dict(net12.state_dict())
    x, snr = torch.rand(1, 3, 16, 16), torch.tensor([4.0])
    z12, z6 = net12.encode(x, snr), net6.encode(x, snr)
    assert z12.shape[1] == 8 and z6.shape[1] == 16
    full = net12.encode_k(x, snr, torch.tensor([4]))
    assert torch.all(full[:, 8:] == 0)
    torch.testing.assert_close(full[:, :8], z12)
    assert (z12.pow(2).mean() * 2).item() == pytest.approx(1.0, rel=1e-5)
    assert not torch.allclose(net12.encode(x, torch.tensor([-2.0])), net12.encode(x, torch.tensor([18.0])))
    torch.testing.assert_close(net12.decode(z12, snr), net12.decode_k(full, snr, torch.tensor([4])))


def test_adjscc_weights_round_trip_through_safetensors(tmp_path):
    codec = JsccCodec.from_config(_cfg("1/6"), seed=4, device="cpu")
    save_model(codec.net, codec.cfg, tmp_path / "jscc-1_6.safetensors", {"train": {"steps": 1}})
    back = JsccCodec.pretrained("1/6", weights_dir=tmp_path, device="cpu")
    assert back.cfg == codec.cfg and back.cfg.arch == "adjscc"
    img = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    a, b = codec.encode(img, Budget(snr_db=5.0)), back.encode(img, Budget(snr_db=5.0))
    np.testing.assert_allclose(a.symbols, b.symbols, atol=2e-2)  # float16 storage
    with pytest.raises(CodecError, match="jscc-1_12.safetensors"):
        JsccCodec.pretrained("1/12", weights_dir=tmp_path)


def test_config_rejects_a_ratio_wider_than_the_latent():
    with pytest.raises(ValueError, match="latent_ratio"):
        JsccConfig(ratio="1/6", arch="adjscc", latent_ratio="1/12")
    with pytest.raises(ValueError, match="arch"):
        JsccConfig(arch="transformer")


def test_train_jscc_quick_cli_writes_weights_curve_and_resumes(tmp_path):
    """`sagin-hil train jscc --quick` on a tiny network: weights for both ratios, the curve files, and a
    second call continues from the checkpoint (its step count grows); other settings are refused."""
    from typer.testing import CliRunner

    from sagin_hil.cli import app

    args = ["train", "jscc", "--quick", "--arch", "adjscc", "--minutes", "0.02", "--channels", "8", "--threads", "1",
            "--out", str(tmp_path / "w"), "--checkpoint-dir", str(tmp_path / "ck"), "--eval-images", "1"]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    for name in ("jscc-1_12.safetensors", "jscc-1_6.safetensors"):
        assert (tmp_path / "w" / name).exists()
    assert f"bench codec --codec-weights {tmp_path / 'w'}" in " ".join(run.output.split())  # how to compare it
    curve = json.loads((tmp_path / "ck" / "curve.json").read_text())
    assert (tmp_path / "ck" / "curve.png").exists() and (tmp_path / "ck" / "curve.csv").exists()
    steps = curve[-1]["step"]
    assert steps >= 1 and all(math.isfinite(curve[-1][f"psnr_k{k}_{s}db"]) for k in (4, 8) for s in (0, 5, 10))
    run = CliRunner().invoke(app, args[:6] + ["0.04"] + args[7:])
    assert run.exit_code == 0, run.output
    assert "resumed" in run.output
    assert json.loads((tmp_path / "ck" / "curve.json").read_text())[-1]["step"] > steps
    codec = JsccCodec.pretrained("1/12", weights_dir=tmp_path / "w", device="cpu")
    assert codec.cfg.latent_ratio == "1/6" and codec.cfg.channels == 8
    bad = CliRunner().invoke(app, args[:8] + ["16"] + args[9:])
    assert bad.exit_code == 2 and "--fresh" in bad.output
    # --quick trains the shipped recipe's colour images; --no-colour is another run, refused with the same hint
    saved = torch.load(tmp_path / "ck" / "checkpoint.pt", map_location="cpu", weights_only=False)["settings"]
    assert saved["split"] == "train+colour" and saved["permute_p"] == 0.5
    plain = CliRunner().invoke(app, args + ["--no-colour"])
    assert plain.exit_code == 2 and "'permute_p': 0.5" in plain.output and "--fresh" in plain.output


def test_train_jscc_film_cli_trains_one_resumable_network_per_ratio(tmp_path):
    """`--arch film`: one FiLM network per ratio, trained side by side in processes of their own, each
    checkpointed in its own folder and resumed on the next call; the written files load as film models of
    their own ratio."""
    from typer.testing import CliRunner

    from sagin_hil.cli import app

    args = ["train", "jscc", "--arch", "film", "--minutes", "0.01", "--channels", "8", "--threads", "1",
            "--out", str(tmp_path / "w"), "--checkpoint-dir", str(tmp_path / "ck"), "--eval-images", "1"]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    steps = {}
    for ratio, k in (("1/12", 4), ("1/6", 8)):
        codec = JsccCodec.pretrained(ratio, weights_dir=tmp_path / "w", device="cpu")
        assert codec.cfg.arch == "film" and codec.cfg.ratio == ratio and codec.cfg.channels == 8
        curve = json.loads((tmp_path / "ck" / ratio.replace("/", "_") / "curve.json").read_text())
        assert all(math.isfinite(curve[-1][f"psnr_k{k}_{s}db"]) for s in (0, 5, 10))
        steps[ratio] = curve[-1]["step"]
    run = CliRunner().invoke(app, args[:5] + ["0.02"] + args[6:])
    assert run.exit_code == 0, run.output
    assert run.output.count("resumed") == 2
    for ratio in steps:
        assert json.loads((tmp_path / "ck" / ratio.replace("/", "_") / "curve.json").read_text())[-1]["step"] > steps[ratio]
    # each network runs in a process of its own; a job that fails is named, with its error
    bad = CliRunner().invoke(app, args[:7] + ["16"] + args[8:])
    assert bad.exit_code == 2
    assert "ratios 1/12: ValueError" in bad.output and "ratios 1/6: ValueError" in bad.output and "--fresh" in bad.output


def test_a_film_network_refuses_a_ratio_other_than_its_own():
    from sagin_hil.codecs.jscc import JsccNet
    from sagin_hil.codecs.train import train_jscc

    net = JsccNet(JsccConfig(ratio="1/12", channels=8))
    x, snr = torch.rand(2, 3, 8, 8), torch.tensor([0.0, 5.0])
    torch.testing.assert_close(net.encode_k(x, snr, torch.tensor([4, 4])), net.encode(x, snr))
    with pytest.raises(ValueError, match=r"sends 4 symbols per position .*asked for \[8\]"):
        net.encode_k(x, snr, torch.tensor([4, 8]))
    with pytest.raises(ValueError, match="one ratio"):
        train_jscc(("1/12", "1/6"), 0.01, arch="film")


@pytest.mark.slow
def test_shipped_weights_reproduce_their_recorded_held_out_psnr():
    """The shipped JSCC files' metadata records held-out PSNR by SNR; measuring again (same images, same
    noise seed) gives the same values, and quality rises with the SNR."""
    from safetensors import safe_open

    from sagin_hil.codecs.jscc import weights_path
    from sagin_hil.codecs.train import evaluate_jscc

    for ratio in ("1/12", "1/6"):
        with safe_open(str(weights_path(ratio)), framework="pt") as f:
            recorded = json.loads(f.metadata()["train"])["eval_psnr_db"]
        got = evaluate_jscc(JsccCodec.pretrained(ratio, device="cpu"))
        for snr, v in recorded.items():
            assert got[snr] == pytest.approx(v, abs=0.1)  # older files were measured before float16 storage
        vals = [got[k] for k in sorted(got, key=float)]
        assert all(b > a for a, b in zip(vals, vals[1:]))


def test_colour_permutation_balances_the_channels_of_the_training_patches():
    """The train images are grey or warm (red above blue on average); with every patch's channels shuffled
    the three channel means agree to within their sampling spread, and with none they keep the pool's tilt.
    A probability outside [0, 1] is refused by name."""
    from sagin_hil.codecs.train import PatchSampler

    plain = PatchSampler(32, seed=4)(1500).mean(dim=(2, 3))  # per patch and channel
    mixed = PatchSampler(32, seed=4, permute_p=1.0)(1500).mean(dim=(2, 3))
    spread = float(plain.std(dim=0).max()) / math.sqrt(len(plain))  # standard error of a channel mean
    tilt = plain.mean(dim=0)
    assert float(tilt[0] - tilt[2]) > 6 * spread  # the pool: more red than blue
    balanced = mixed.mean(dim=0)
    assert float(balanced.max() - balanced.min()) < 4 * spread
    with pytest.raises(ValueError, match=r"permute_p = 1.5: a probability, in \[0, 1\]"):
        PatchSampler(32, permute_p=1.5)
