"""The int16 layered min-sum and the fixed-iteration mode (early stop off) of every decoder."""

from __future__ import annotations

import numpy as np
import pytest

from sagin_hil.phy.ldpc import ALGORITHMS, LdpcDecoder, dvbs2_code, nr_code
from sagin_hil.phy.ldpc import kernels_int16


def awgn_llr(cw: np.ndarray, ebn0_db: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    sigma2 = 1.0 / (2 * rate * 10 ** (ebn0_db / 10))
    y = (1.0 - 2.0 * cw) + rng.normal(0.0, np.sqrt(sigma2), cw.shape)
    return (2 * y / sigma2).astype(np.float32)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_fixed_iterations_run_every_iteration_and_still_flag_convergence(algorithm):
    code = nr_code(1000, 3000)
    rng = np.random.default_rng(1)
    u = rng.integers(0, 2, (6, code.k), dtype=np.uint8)
    cw = code.encode(u)
    llr = awgn_llr(cw, 4.0, code.rate, rng)
    llr[-1] = rng.normal(0, 1, code.n)  # pure noise: never converges
    fixed = LdpcDecoder(code, algorithm, iterations=12, early_stop=False)(llr)
    early = LdpcDecoder(code, algorithm, iterations=12)(llr)
    assert (fixed.iterations == 12).all()
    assert early.iterations[:-1].max() < 12  # so the fixed run did more work than needed
    assert fixed.converged[:-1].all() and not fixed.converged[-1]
    # once a block has converged, further iterations keep it there
    assert np.array_equal(fixed.info_bits[:-1], u[:-1]) and np.array_equal(early.info_bits[:-1], u[:-1])


def test_int16_matches_float_quality_in_the_waterfall():
    """Same LLRs: the fixed-point decoder must be no worse than float NMS (its rounding acts as an offset)."""
    code = nr_code(1024, 2048)
    rng = np.random.default_rng(7)
    u = rng.integers(0, 2, (300, code.k), dtype=np.uint8)
    llr = awgn_llr(code.encode(u), 1.4, code.rate, rng)
    err = {}
    for alg in ("layered-nms", "layered-nms-int16"):
        res = LdpcDecoder(code, alg, iterations=10, early_stop=False)(llr)
        err[alg] = int((res.info_bits != u).any(-1).sum())
    assert 10 < err["layered-nms"] < 290  # the point is in the waterfall, so the comparison means something
    assert err["layered-nms-int16"] <= err["layered-nms"] + 5


def test_int16_saturates_huge_llrs_without_wrapping():
    code = nr_code(1024, 2048)
    u = np.random.default_rng(3).integers(0, 2, (2, code.k), dtype=np.uint8)
    cw = code.encode(u)
    llr = (1.0 - 2.0 * cw).astype(np.float32) * 1e5  # far beyond the int16 range once quantised
    llr[:, :50] *= -1e-5  # and a few weak wrong ones
    res = LdpcDecoder(code, "layered-nms-int16", scale=0.875, iterations=10)(llr)
    assert np.array_equal(res.info_bits, u) and res.converged.all()


def test_quantiser_bounds_messages_inside_int16():
    for scale in kernels_int16.SCALE_SHIFTS:
        ql = kernels_int16.ql_for_scale(scale)
        r_max = scale / (1 - scale) * ql
        assert ql + 2 * r_max <= 32767  # the largest T + R the kernel adds in 16 bits
    q = kernels_int16.quantise(np.array([1e9, -1e9, 0.26, -0.26], np.float32), 100)
    assert q.dtype == np.int16 and q.tolist() == [100, -100, 2, -2]


@pytest.mark.parametrize("kwargs, match", [({"scale": 0.8}, "0.75 or 0.875"), ({}, "5G NR")])
def test_int16_rejects_what_it_cannot_do(kwargs, match):
    code = nr_code(1024, 2048) if kwargs else dvbs2_code("1/2", "short")
    with pytest.raises(ValueError, match=match):
        LdpcDecoder(code, "layered-nms-int16", **kwargs)
