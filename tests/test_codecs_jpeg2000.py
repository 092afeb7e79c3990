"""JPEG 2000 codec (Mode 1): rate control, PSNR targets, resilient decoding, the registry and the images."""

import numpy as np
import pytest

from sagin_hil.codecs import Budget, CodecError, get_codec
from sagin_hil.codecs.images import COLOUR_NAMES, EVAL_NAMES, TRAIN_NAMES, load_full, load_images
from sagin_hil.codecs.metrics import psnr


@pytest.fixture(scope="module")
def image():
    return load_images(n=1, size=256, split="eval")[0][1]


@pytest.fixture(scope="module")
def j2k():
    return get_codec("jpeg2000")


def test_images_deterministic_and_held_out():
    a = load_images(n=3, size=64, split="run")
    b = load_images(n=3, size=64, split="run")
    assert [n for n, _ in a] == ["astronaut", "coffee", "chelsea"]
    for (_, x), (_, y) in zip(a, b):
        assert x.shape == (64, 64, 3) and x.dtype == np.uint8 and np.array_equal(x, y)
    assert not set(EVAL_NAMES) & set(TRAIN_NAMES + COLOUR_NAMES)
    colour = dict(load_full("train+colour"))  # the JSCC's pool: train and two colour photographs
    assert list(colour) == list(TRAIN_NAMES + COLOUR_NAMES) and colour["china"].shape == (427, 640, 3)
    grey = dict(load_images(n=4, size=32, split="eval"))["aero"]  # a grey image repeated on 3 channels
    assert np.array_equal(grey[..., 0], grey[..., 2])
    with pytest.raises(ValueError, match="split"):
        load_images(split="test")
    with pytest.raises(ValueError, match="n=99"):
        load_images(n=99)


@pytest.mark.parametrize("budget_bits", [8_000, 32_768, 131_072])
def test_budget_is_met_within_tolerance(j2k, image, budget_bits):
    pay = j2k.encode(image, Budget(bits=budget_bits))
    assert 0.85 * budget_bits <= pay.n_bits <= budget_bits
    assert pay.n_bits == 8 * len(pay.data)
    rec = j2k.decode(pay.data)
    assert rec.shape == image.shape and rec.dtype == np.uint8
    assert psnr(image, rec) == pytest.approx(pay.metadata["psnr_db"])


def test_more_bits_more_quality(j2k, image):
    q = [j2k.encode(image, Budget(bits=b)).metadata["psnr_db"] for b in (8_000, 32_000, 128_000)]
    assert q[0] < q[1] < q[2]


def test_psnr_target_reached_with_few_spare_bits(j2k, image):
    pay = j2k.encode(image, Budget(psnr_db=30.0))
    assert psnr(image, j2k.decode(pay.data)) >= 30.0
    smaller = j2k.encode(image, Budget(bits=int(pay.n_bits * 0.8)))
    assert smaller.metadata["psnr_db"] < 30.0  # the bisection did not leave >20 % of the bits unused


def test_grey_image_round_trip(j2k, image):
    grey = np.ascontiguousarray(image[:, :, 0])
    pay = j2k.encode(grey, Budget(bits=20_000))
    rec = j2k.decode(pay.data)
    assert rec.shape == grey.shape and psnr(grey, rec) > 22


def test_truncation_keeps_arrived_layers(j2k, image):
    pay = j2k.encode(image, Budget(bits=32_768))
    full = psnr(image, j2k.decode(pay.data))
    q_half = psnr(image, j2k.decode(pay.data[: len(pay.data) // 2]))
    assert 15.0 < q_half < full
    with pytest.raises(CodecError, match="erasure|header"):
        j2k.decode(pay.data[:40])


def test_corrupted_codestreams_never_crash(j2k, image):
    pay = j2k.encode(image, Budget(bits=16_384))
    rng = np.random.default_rng(7)
    outcomes = {"image": 0, "erasure": 0}
    for _ in range(60):
        buf = bytearray(pay.data)
        for pos in rng.integers(0, len(buf), rng.integers(1, 6)):
            buf[pos] ^= int(rng.integers(1, 256))
        cut = int(rng.integers(len(buf) // 4, len(buf) + 1))
        try:
            rec = j2k.decode(bytes(buf[:cut]))
            assert rec.shape == image.shape
            outcomes["image"] += 1
        except CodecError:
            outcomes["erasure"] += 1
    assert outcomes["image"] > 0 and sum(outcomes.values()) == 60
    for junk in (b"", b"SG", bytes(100), rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()):
        with pytest.raises(CodecError):
            j2k.decode(junk)


def test_bad_input_is_named(j2k, image):
    with pytest.raises(CodecError, match="exactly one"):
        j2k.encode(image)
    with pytest.raises(CodecError, match=r"Budget\(bits=100\)"):
        j2k.encode(image, Budget(bits=100))
    with pytest.raises(CodecError, match="float64"):
        j2k.encode(image.astype(float), Budget(bits=10_000))
    with pytest.raises(ValueError, match="unknown codec 'jpg'"):
        get_codec("jpg")
