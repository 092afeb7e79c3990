"""The codec benchmark's links: pilot equalisation, J2K over LDPC, the JSCC path and the result schema."""

import numpy as np
import pytest

from sagin_hil.codecs import Budget, CodecError, get_codec
from sagin_hil.codecs.images import load_images
from sagin_hil.codecs.metrics import psnr
from sagin_hil.flowgraphs.codec_bench import DigitalImageLink, PilotChannel


@pytest.fixture(scope="module")
def image():
    return load_images(n=1, size=128, split="eval")[0][1]


@pytest.mark.parametrize("channel", ["awgn", "rician"])
def test_pilot_equalisation_recovers_symbols(channel):
    rng = np.random.default_rng(0)
    x = (np.exp(2j * np.pi * rng.random(8192)) ).astype(np.complex64)
    y, nv, snr_est = PilotChannel(channel, 25.0, seed=1)(x)
    err = np.median(np.abs(y - x) ** 2)  # median: robust to the ZF noise boost in a deep fade
    assert err < 10 ** (-25 / 10) * 2
    # AWGN: the pilot estimate is unbiased; Rician: one frame sees a few fades, its mean |h|^2 varies
    assert abs(snr_est - 25.0) < (1.0 if channel == "awgn" else 3.0)
    assert nv.shape == x.shape and np.all(nv > 0)
    y0, _, est0 = PilotChannel("awgn", 0.0, seed=2)(x)
    assert abs(est0 - 0.0) < 1.0
    assert np.mean(np.abs(y0 - x) ** 2) == pytest.approx(1.0, rel=0.15)  # N0 = 1 at 0 dB


def test_static_channel_is_estimated_from_every_pilot_and_fading_block_by_block():
    """AWGN: "auto" tracking fits one gain to all B pilot blocks, so zero-forcing leaves about N0 of error;
    per-block estimates (L = 16 symbols), interpolated, have variance s2 = (2/3) N0 / L on average and leave about
    N0 (1 + 2 s2), 1.08 at 0 dB. Rician: the blocks disagree, so "auto" follows them block by block, exactly
    as "block" does."""
    rng = np.random.default_rng(0)
    x = np.exp(2j * np.pi * rng.random(32768)).astype(np.complex64)  # 86 pilot blocks
    err = {tr: np.mean([np.mean(np.abs(PilotChannel("awgn", 0.0, seed=s, tracking=tr)(x)[0] - x) ** 2)
                        for s in range(4)]) for tr in ("auto", "block")}
    assert err["auto"] == pytest.approx(1.0, abs=0.05)  # N0 = 1 at 0 dB
    assert 0.04 < err["block"] - err["auto"] < 0.16  # 2 s2 = 0.083; 4 x 86 block estimates: sd about 0.015
    auto, block = PilotChannel("rician", 10.0, seed=5)(x), PilotChannel("rician", 10.0, seed=5, tracking="block")(x)
    assert np.array_equal(auto[0], block[0]) and auto[2] == block[2]
    with pytest.raises(ValueError, match="tracking 'poly'"):
        PilotChannel("awgn", 0.0, tracking="poly")


def test_j2k_over_ldpc_round_trip_and_cliff(image):
    j2k = get_codec("jpeg2000")
    link = DigitalImageLink("qpsk-1/2", 4096)
    assert link.info_bits <= 4096 * 2 * 0.5
    pay = j2k.encode(image, Budget(bits=link.info_bits))
    sym = link.transmit(pay.data)
    assert sym.size == 4096
    y, nv, _ = PilotChannel("awgn", 8.0, seed=3)(sym)
    assert link.receive(y, nv, len(pay.data)) == pay.data  # well above the QPSK 1/2 threshold
    y, nv, _ = PilotChannel("awgn", -6.0, seed=4)(sym)
    got = link.receive(y, nv, len(pay.data))
    assert len(got) < len(pay.data)  # far below: blocks fail and the stream is cut there
    try:
        assert j2k.decode(got).shape == image.shape
    except CodecError:
        pass  # nothing intact arrived: a clean erasure
    with pytest.raises(ValueError, match="exceeds"):
        link.transmit(bytes(link.info_bits // 8 + 1))


def test_jscc_through_pilots_and_channel(image):
    from sagin_hil.codecs.jscc import JsccCodec, JsccConfig

    codec = JsccCodec.from_config(JsccConfig(channels=8), device="cpu")
    pay = codec.encode(image, Budget(snr_db=10))
    y, _, snr_est = PilotChannel("rician", 10.0, seed=5)(pay.symbols, mmse=True)
    rec = codec.decode(pay.data, symbols=y, snr_db=snr_est)
    assert rec.shape == image.shape
    assert np.mean(np.abs(y - pay.symbols) ** 2) < 0.5


def test_packet_phy_channel_carries_symbols_and_side_information():
    """The bench's real-PHY path: unit-power symbols come back with noise of variance 1/(Es/N0) (within
    0.3 dB over 8192 symbols) and the codec header as side information. The SNR estimate rests on the
    ~600 preamble and pilot symbols only: its standard deviation is ~0.18 dB, so 0.6 dB is 3 sigma."""
    from sagin_hil.flowgraphs.codec_bench import PacketPhyChannel

    rng = np.random.default_rng(2)
    x = ((rng.standard_normal(8192) + 1j * rng.standard_normal(8192)) / np.sqrt(2)).astype(np.complex64)
    y, side, snr_est = PacketPhyChannel(8.0, seed=3)(x, b"SG header bytes")
    assert side == b"SG header bytes" and snr_est == pytest.approx(8.0, abs=0.6)
    assert 10 * np.log10(np.mean(np.abs(y - x) ** 2)) == pytest.approx(-8.0, abs=0.3)


def test_capacity_curve_is_j2k_at_the_capacity_budget():
    from sagin_hil.flowgraphs.codec_bench import _capacity_curve

    j2k = get_codec("jpeg2000")
    imgs = load_images(1, 96, "eval")
    n_sym = 96 * 96 * 3 // 12
    curve = _capacity_curve(j2k, imgs, n_sym, [0.0, 10.0])
    # 0 dB: 1 bit per channel use; 10 dB: log2(11) = 3.46 bits
    direct = psnr(imgs[0][1], j2k.decode(j2k.encode(imgs[0][1], Budget(bits=n_sym)).data))
    assert curve["psnr"][0] == pytest.approx(direct) and curve["psnr"][1] > curve["psnr"][0] + 3.0


@pytest.mark.slow
def test_bench_codec_quick_schema():
    from sagin_hil.benchmarks import validate_results
    from sagin_hil.flowgraphs.codec_bench import bench_codec

    res = validate_results(bench_codec(quick=True))
    names = {c["codec"] for c in res["curves"]}
    assert {"jscc-1/12", "j2k-ldpc-1/12", "jscc-phy-1/12", "j2k-capacity-1/12"} <= names
    env = next(c for c in res["curves"] if c["codec"] == "j2k-ldpc-1/12")
    assert len(env["psnr_db"]) == len(env["snr_db"]) == len(env["ssim"])
    assert env["psnr_db"][-1] > env["psnr_db"][0]  # more SNR, a higher-rate MCS, better image


def test_bench_codec_scores_candidate_weights_from_the_command_line(tmp_path):
    """`bench codec --codec-weights DIR` scores DIR's JSCC instead of the package's (the quick run: 1/12 only):
    a network whose weights are drowned in noise falls apart, where the shipped one stays above 23 dB even at
    -2 dB; the digital curves do not read the JSCC weights."""
    import json

    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from typer.testing import CliRunner

    from sagin_hil.cli import app
    from sagin_hil.codecs.jscc import WEIGHTS_DIR

    with safe_open(str(WEIGHTS_DIR / "jscc-1_12.safetensors"), framework="pt") as f:
        meta, gen = f.metadata(), torch.Generator().manual_seed(0)
        state = {k: (f.get_tensor(k).float() + torch.randn(f.get_tensor(k).shape, generator=gen)).half()
                 for k in f.keys()}
    save_file(state, str(tmp_path / "jscc-1_12.safetensors"), metadata=meta)
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "codec", "--quick", "--codec-weights", str(tmp_path), "--json", str(out)])
    assert res.exit_code == 0, res.output
    curves = {(c["codec"], c["channel"]): c["psnr_db"] for c in json.loads(out.read_text())["curves"]}
    assert max(curves[("jscc-1/12", "awgn")]) < 15
    assert curves[("j2k-capacity-1/12", "awgn")][-1] > 30


def test_bench_codec_weights_option_is_checked_before_anything_runs(tmp_path):
    from typer.testing import CliRunner

    from sagin_hil.cli import app

    res = CliRunner().invoke(app, ["bench", "ldpc", "--codec-weights", str(tmp_path)])
    assert res.exit_code == 2 and "bench codec only" in res.output
    res = CliRunner().invoke(app, ["bench", "codec", "--codec-weights", str(tmp_path)])
    said = " ".join(res.output.split())  # the console wraps long lines
    assert res.exit_code == 2 and "no jscc-*.safetensors" in said and "train jscc" in said
