"""Deep JSCC and VQ codecs: shapes, power normalisation, bit counts, weights round trip, robustness."""

import numpy as np
import pytest
import torch

from sagin_hil.codecs import Budget, CodecError
from sagin_hil.codecs.images import load_images
from sagin_hil.codecs.jscc import JsccCodec, JsccConfig, JsccNet, awgn, load_state, power_normalize, save_model
from sagin_hil.codecs.metrics import psnr
from sagin_hil.codecs.vq import VqCodec, VqConfig, VqNet


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread avoids OpenMP spin contention on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def image():
    return load_images(n=1, size=64, split="eval")[0][1]


@pytest.mark.parametrize("ratio, per_pos", [("1/12", 4), ("1/6", 8)])
def test_jscc_symbol_count_and_power(image, ratio, per_pos):
    codec = JsccCodec.from_config(JsccConfig(ratio=ratio, channels=16), device="cpu")
    pay = codec.encode(image, Budget(snr_db=3.0))
    assert pay.n_symbols == image.size * per_pos // 48 == codec.n_symbols(64, 64)  # k = ratio * 3HW
    assert pay.symbols.dtype == np.complex64
    assert np.mean(np.abs(pay.symbols) ** 2) == pytest.approx(1.0, rel=1e-5)
    rec = codec.decode(pay.data, symbols=pay.symbols, snr_db=3.0)
    assert rec.shape == image.shape and rec.dtype == np.uint8


def test_jscc_odd_sizes_and_bad_input(image):
    codec = JsccCodec.from_config(JsccConfig(channels=8), device="cpu")
    odd = np.ascontiguousarray(image[:61, :50])
    pay = codec.encode(odd)
    assert pay.n_symbols == codec.n_symbols(61, 50) == 4 * 16 * 13
    assert codec.decode(pay.data, symbols=pay.symbols).shape == odd.shape
    with pytest.raises(CodecError, match="symbols"):
        codec.decode(pay.data, symbols=pay.symbols[:-1])
    with pytest.raises(CodecError, match="needs the received symbols"):
        codec.decode(pay.data)
    with pytest.raises(ValueError, match="multiple of 1/48"):
        JsccConfig(ratio="1/100").symbols_per_position


def test_power_normalize_and_awgn_statistics():
    torch.manual_seed(0)
    z = power_normalize(torch.randn(4, 8, 16, 16) * 5)
    power = (z**2).flatten(1).mean(1) * 2
    assert torch.allclose(power, torch.ones(4), atol=1e-5)
    snr_db = torch.tensor([0.0, 10.0, 20.0, -2.0])
    noise = awgn(z, snr_db) - z
    measured = (noise**2).flatten(1).mean(1) * 2  # complex noise power N0
    expected = 10 ** (-snr_db / 10)
    assert torch.allclose(measured, expected, rtol=0.1)  # 1024 complex samples: ~4 % std


def test_jscc_snr_conditioning_changes_the_code(image):
    codec = JsccCodec.from_config(JsccConfig(channels=8), device="cpu")
    a, b = codec.encode(image, Budget(snr_db=-2.0)).symbols, codec.encode(image, Budget(snr_db=20.0)).symbols
    assert not np.allclose(a, b)


def test_weights_round_trip(tmp_path, image):
    codec = JsccCodec.from_config(JsccConfig(ratio="1/6", channels=8), seed=3, device="cpu")
    save_model(codec.net, codec.cfg, tmp_path / "jscc-1_6.safetensors")
    loaded = JsccCodec.pretrained("1/6", weights_dir=tmp_path, device="cpu")
    assert loaded.cfg == codec.cfg
    pa, pb = codec.encode(image), loaded.encode(image)
    # stored as float16: symbols agree to half precision
    assert np.allclose(pa.symbols, pb.symbols, atol=2e-2)
    vq = VqCodec.from_config(VqConfig(mode="3_3", channels=8, codebook_size=16), seed=1, device="cpu")
    save_model(vq.net, vq.cfg, tmp_path / "vq-3_3.safetensors")
    vq2 = VqCodec.pretrained("3_3", weights_dir=tmp_path, device="cpu")
    assert torch.allclose(vq.net.quantizer.embed, vq2.net.quantizer.embed, atol=1e-3)
    with pytest.raises(CodecError, match="VqConfig"):
        load_state(tmp_path / "jscc-1_6.safetensors", VqConfig)


def test_missing_weights_say_how_to_make_them(tmp_path):
    with pytest.raises(CodecError, match="sagin-hil train"):
        JsccCodec.pretrained("1/12", weights_dir=tmp_path)
    with pytest.raises(CodecError, match="sagin-hil train"):
        VqCodec.pretrained("3_1", weights_dir=tmp_path)


@pytest.mark.parametrize("mode, f", [("3_1", 16), ("3_2", 8), ("3_3", 4)])
def test_vq_bit_count(image, mode, f):
    codec = VqCodec.from_config(VqConfig(mode=mode, codebook_size=64, channels=8), device="cpu")
    pay = codec.encode(image)
    h, w = 64 // f, 64 // f
    assert pay.metadata["grid"] == (h, w)
    assert pay.metadata["index_bits"] == h * w * 6 == codec.index_bits(64, 64)
    from sagin_hil.codecs.base import HEADER_OVERHEAD_BYTES

    assert pay.n_bits == 8 * (HEADER_OVERHEAD_BYTES + 6) + 8 * int(np.ceil(h * w * 6 / 8))
    assert codec.decode(pay.data).shape == image.shape


def test_vq_indices_round_trip_and_bit_errors(image):
    codec = VqCodec.from_config(VqConfig(mode="3_3", codebook_size=16, channels=8), device="cpu")
    pay = codec.encode(image)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        idx = codec.net.quantizer.indices(codec.net.encode(x))
        direct = codec.net.decode_latent(codec.net.quantizer.lookup(idx))
    direct_u8 = (direct[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    assert np.array_equal(codec.decode(pay.data), direct_u8)  # the bits carry exactly the indices
    buf = bytearray(pay.data)
    rng = np.random.default_rng(0)
    for pos in rng.integers(14 + 6, len(buf), 20):  # flip bits in the index area only
        buf[pos] ^= 1 << int(rng.integers(8))
    assert codec.decode(bytes(buf)).shape == image.shape
    assert codec.decode(pay.data[: len(pay.data) // 2]).shape == image.shape  # missing indices: filled
    with pytest.raises(CodecError):
        codec.decode(b"\x00" + pay.data[1:])


def test_vq_quantizer_learns_codebook():
    torch.manual_seed(0)
    net = VqNet(VqConfig(mode="3_3", codebook_size=32, latent_dim=4, channels=8))
    q = net.quantizer.train()
    centres = torch.randn(8, 4) * 3
    data = (centres[torch.randint(0, 8, (2048,))] + 0.05 * torch.randn(2048, 4)).T.reshape(1, 4, 32, 64)
    for _ in range(150):
        _, _, commit = q(data)
    assert commit.item() < 0.05  # every cluster captured by a codeword (restarts escape local minima)


def test_small_jscc_learns():
    torch.manual_seed(0)
    net = JsccNet(JsccConfig(channels=8))
    x = torch.rand(4, 3, 16, 16) * 0.2 + torch.linspace(0, 0.8, 16)[None, None, None, :]
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    snr = torch.full((4,), 20.0)
    losses = []
    for _ in range(60):
        loss = ((net(x, snr) - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_shipped_weights_reach_their_measured_quality():
    """The trained weights in codecs/weights load and beat a flat image by a wide margin on a held-out image."""
    from sagin_hil.codecs import get_codec

    img = load_images(n=2, size=128, split="eval")[1][1]
    flat = psnr(img, np.full_like(img, int(img.mean())))
    rng = np.random.default_rng(0)
    q = {}
    for snr in (0.0, 15.0):
        codec = get_codec("jscc-1/12", device="cpu")
        pay = codec.encode(img, Budget(snr_db=snr))
        n0 = 10 ** (-snr / 10)
        noise = (rng.normal(size=pay.n_symbols) + 1j * rng.normal(size=pay.n_symbols)) * np.sqrt(n0 / 2)
        q[snr] = psnr(img, codec.decode(pay.data, symbols=pay.symbols + noise, snr_db=snr))
    assert q[0.0] > flat + 5 and q[15.0] > q[0.0]  # graceful: more SNR, better image
    vq = {m: get_codec(f"vq-{m}", device="cpu") for m in ("3_1", "3_3")}
    qv = {m: psnr(img, c.decode(c.encode(img).data)) for m, c in vq.items()}
    assert qv["3_3"] > qv["3_1"] > flat
