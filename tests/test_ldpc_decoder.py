"""LDPC decoders: round trips, agreement of the algorithms, exactness of sum-product on a tree, bad inputs."""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from sagin_hil.phy.ldpc import ALGORITHMS, LdpcDecoder, code_from_parity_matrix, nr_code


def awgn_llr(cw: np.ndarray, ebn0_db: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    """BPSK (= each QPSK dimension) over AWGN: llr = 2 y / sigma^2, positive for bit 0."""
    sigma2 = 1.0 / (2 * rate * 10 ** (ebn0_db / 10))
    y = (1.0 - 2.0 * cw) + rng.normal(0.0, np.sqrt(sigma2), cw.shape)
    return (2 * y / sigma2).astype(np.float32)


@pytest.fixture(scope="module")
def hamming():
    H = np.array([[1, 1, 0, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1, 0], [0, 1, 1, 1, 0, 0, 1]], np.uint8)
    return code_from_parity_matrix(H, name="hamming74")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("k,n", [(8448, 16896), (1000, 3000), (3000, 4000), (40, 200)])
def test_noiseless_round_trip(algorithm, k, n):
    code = nr_code(k, n)
    u = np.random.default_rng(0).integers(0, 2, (2, k), dtype=np.uint8)
    cw = code.encode(u)
    res = LdpcDecoder(code, algorithm)((1.0 - 2.0 * cw).astype(np.float32) * 3)
    assert np.array_equal(res.info_bits, u) and np.array_equal(res.codeword, cw)
    assert res.converged.all() and (res.iterations >= 1).all()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_moderate_snr_decodes_every_block(algorithm):
    # rate 1/2 BG2, Eb/N0 = 3 dB: about 1.5 dB above the waterfall, BLER well below 1e-2 for all three
    code = nr_code(1000, 2000)
    rng = np.random.default_rng(1)
    u = rng.integers(0, 2, (30, code.k), dtype=np.uint8)
    cw = code.encode(u)
    llr = awgn_llr(cw, 3.0, code.rate, rng)
    raw_errors = ((llr < 0) != cw).sum()
    assert raw_errors > 30 * 2000 * 0.01  # the channel really does flip bits (raw BER ~ 2 %)
    res = LdpcDecoder(code, algorithm, iterations=20)(llr)
    assert np.array_equal(res.info_bits, u)
    assert res.converged.all()


def test_layered_and_flooding_agree_and_layered_converges_faster():
    code = nr_code(2000, 4000)
    rng = np.random.default_rng(2)
    u = rng.integers(0, 2, (20, code.k), dtype=np.uint8)
    llr = awgn_llr(code.encode(u), 2.5, code.rate, rng)
    spa = LdpcDecoder(code, "flooding-spa", iterations=30)(llr)
    nms = LdpcDecoder(code, "layered-nms", iterations=30)(llr)
    oms = LdpcDecoder(code, "layered-oms", iterations=30)(llr)
    both = spa.converged & nms.converged
    assert both.sum() >= 18
    assert np.array_equal(spa.info_bits[both], nms.info_bits[both])
    assert np.array_equal(oms.info_bits[oms.converged], u[oms.converged])
    # a layered schedule passes new information within an iteration: about half the iterations of flooding
    assert nms.iterations[both].mean() < 0.8 * spa.iterations[both].mean()


def test_sum_product_is_bitwise_map_on_a_tree():
    # two checks sharing variable 0: the Tanner graph is a tree, so sum-product is exact (bitwise MAP)
    H = np.zeros((2, 7), np.uint8)
    H[0, [0, 1, 2, 3]] = 1
    H[1, [0, 4, 5, 6]] = 1
    code = code_from_parity_matrix(H)
    words = np.array([w for w in itertools.product((0, 1), repeat=7) if not (H @ w % 2).any()], np.uint8)
    assert len(words) == 2**code.k
    rng = np.random.default_rng(3)
    llr = rng.normal(0.5, 2.0, (200, 7)).astype(np.float32)
    # log-likelihood of each codeword: sum over its 1-bits of -llr (up to a constant)
    loglik = -(llr.astype(np.float64) @ words.T.astype(np.float64))
    post = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    p1 = (post @ words) / post.sum(axis=1, keepdims=True)
    decisive = np.all(np.abs(p1 - 0.5) > 1e-3, axis=1)
    map_bits = (p1 > 0.5).astype(np.uint8)
    res = LdpcDecoder(code, "flooding-spa", iterations=5)(llr)
    assert np.array_equal(res.codeword[decisive], map_bits[decisive])


def test_hamming_corrects_any_single_error(hamming):
    dec = LdpcDecoder(hamming, "flooding-spa", iterations=10)
    for m in range(16):
        u = np.array([(m >> i) & 1 for i in range(4)], np.uint8)
        cw = hamming.encode(u)
        for pos in range(7):
            llr = (1.0 - 2.0 * cw).astype(np.float32) * 2
            llr[pos] = -llr[pos] * 0.5  # one unreliable wrong bit
            assert np.array_equal(dec(llr).info_bits, u)


def test_early_stop_and_failure_flags():
    code = nr_code(1000, 2000)
    rng = np.random.default_rng(4)
    u = rng.integers(0, 2, (4, code.k), dtype=np.uint8)
    cw = code.encode(u)
    dec = LdpcDecoder(code, "layered-nms", iterations=25)
    good = dec(awgn_llr(cw, 6.0, code.rate, rng))
    assert good.converged.all() and (good.iterations <= 3).all()
    noise = rng.normal(0, 1, cw.shape).astype(np.float32)  # no information at all
    bad = dec(noise)
    assert not bad.converged.any() and (bad.iterations == 25).all()


def test_batch_shapes_are_kept():
    code = nr_code(200, 600)
    u = np.random.default_rng(5).integers(0, 2, (2, 3, code.k), dtype=np.uint8)
    cw = code.encode(u)
    assert cw.shape == (2, 3, 600)
    res = LdpcDecoder(code)((1.0 - 2.0 * cw).astype(np.float32))
    assert res.info_bits.shape == (2, 3, 200) and res.codeword.shape == (2, 3, 600)
    assert res.converged.shape == (2, 3) and res.iterations.dtype == np.int32
    assert np.array_equal(res.info_bits, u)
    single = LdpcDecoder(code)((1.0 - 2.0 * cw[0, 0]).astype(np.float32))
    assert single.info_bits.shape == (200,) and single.converged.shape == ()


def test_generic_sparse_code_uses_scalar_layered_kernel():
    rng = np.random.default_rng(6)
    n, m = 600, 300
    # a random column-weight-3 code
    rows = np.concatenate([rng.choice(m, 3, replace=False) for _ in range(n)])
    H = sp.csr_matrix((np.ones(3 * n, np.uint8), (rows, np.repeat(np.arange(n), 3))), shape=(m, n))
    code = code_from_parity_matrix(H)
    assert code.qc is None
    u = rng.integers(0, 2, (10, code.k), dtype=np.uint8)
    cw = code.encode(u)
    assert code.syndrome_ok(cw).all()
    res = LdpcDecoder(code, "layered-nms", iterations=30)(awgn_llr(cw, 4.5, code.rate, rng))
    assert np.array_equal(res.info_bits, u)


@pytest.mark.parametrize(
    "llr,match",
    [
        (np.zeros(299, np.float32), r"shape \[\.\.\., 300\]"),
        (np.full(300, np.nan, np.float32), "non-finite"),
        (np.concatenate([np.zeros(299), [np.inf]]).astype(np.float32), "non-finite"),
        (np.zeros(300, np.int64), "floating point"),
    ],
)
def test_bad_llrs_are_rejected(llr, match):
    with pytest.raises(ValueError, match=match):
        LdpcDecoder(nr_code(100, 300))(llr)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"algorithm": "bp"}, "unknown algorithm 'bp'"),
        ({"iterations": 0}, "iterations"),
        ({"scale": 1.5}, "scale"),
        ({"offset": -1.0}, "offset"),
    ],
)
def test_bad_decoder_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LdpcDecoder(nr_code(100, 300), **kwargs)


def test_decoder_rejects_a_non_code():
    with pytest.raises(ValueError, match="LdpcCode"):
        LdpcDecoder(np.eye(3))


@pytest.mark.skipif(importlib.util.find_spec("sionna") is None, reason="sionna not installed")
def test_flooding_spa_matches_sionna_sum_product_block_by_block():
    import torch
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder

    torch.set_num_threads(1)
    code = nr_code(1000, 2000)
    rng = np.random.default_rng(7)
    u = rng.integers(0, 2, (30, code.k), dtype=np.uint8)
    llr = awgn_llr(code.encode(u), 1.8, code.rate, rng)  # in the waterfall: some blocks fail
    ours = LdpcDecoder(code, "flooding-spa", iterations=10)(llr).info_bits
    dec = LDPC5GDecoder(LDPC5GEncoder(1000, 2000), num_iter=10, hard_out=True, return_infobits=True)
    ref = dec(torch.from_numpy(-llr)).numpy().astype(np.uint8)  # Sionna takes log P(1)/P(0)
    failed = (ref != u).any(-1)
    assert 0.1 < failed.mean() < 0.9
    # the same algorithm and schedule: the same decisions, failed blocks included
    assert (ours == ref).all(-1).mean() >= 0.95
