"""Constellations: energy, Gray labelling, round trips, soft demapping (exact vs max-log), bad inputs."""

import numpy as np
import pytest
from scipy.special import logsumexp

from sagin_hil.phy.modulation import APSK_RING_RATIOS, MODULATIONS, Constellation


@pytest.mark.parametrize("name", MODULATIONS)
def test_unit_energy_and_gray_neighbours(name):
    c = Constellation(name)
    assert c.points.dtype == np.complex64 and c.points.size == 2**c.bits_per_symbol
    assert np.mean(np.abs(c.points) ** 2) == pytest.approx(1.0, abs=1e-5)
    d = np.abs(c.points[:, None] - c.points[None])
    np.fill_diagonal(d, np.inf)
    a, b = np.nonzero(np.isclose(d, d.min(), atol=1e-4))
    # Gray: every pair of nearest neighbours differs in exactly one bit
    assert np.all((c.bit_table[a] != c.bit_table[b]).sum(axis=1) == 1)


@pytest.mark.parametrize("name", MODULATIONS)
def test_map_hard_decide_round_trip(name):
    c = Constellation(name)
    bits = np.random.default_rng(1).integers(0, 2, (4, 3, 60 * c.bits_per_symbol), dtype=np.uint8)
    sym = c.map(bits)
    assert sym.shape == (4, 3, 60) and sym.dtype == np.complex64
    np.testing.assert_array_equal(c.hard_decide(sym), bits)


@pytest.mark.parametrize("rate,ratios", sorted(APSK_RING_RATIOS["32apsk"].items()))
def test_apsk_ring_ratios(rate, ratios):
    radii = np.unique(np.round(np.abs(Constellation("32apsk", rate).points), 4))
    assert radii.size == 3
    np.testing.assert_allclose(radii[1:] / radii[0], ratios, rtol=1e-3)
    counts = [np.sum(np.isclose(np.abs(Constellation("32apsk", rate).points), r, atol=1e-3)) for r in radii]
    assert counts == [4, 12, 16]


@pytest.mark.parametrize("name", MODULATIONS)
def test_exact_demap_matches_brute_force_and_maxlog_bound(name):
    c = Constellation(name)
    rng = np.random.default_rng(2)
    n0 = 0.3
    bits = rng.integers(0, 2, 200 * c.bits_per_symbol, dtype=np.uint8)
    y = c.map(bits) + np.sqrt(n0 / 2) * (rng.standard_normal(200) + 1j * rng.standard_normal(200))
    exact = c.demap(y, n0, "exact").reshape(-1, c.bits_per_symbol)
    maxlog = c.demap(y, n0, "maxlog").reshape(-1, c.bits_per_symbol)
    metric = -np.abs(y[:, None] - c.points[None].astype(complex)) ** 2 / n0
    for b in range(c.bits_per_symbol):
        zero = c.bit_table[:, b] == 0
        ref = logsumexp(metric[:, zero], axis=1) - logsumexp(metric[:, ~zero], axis=1)
        np.testing.assert_allclose(exact[:, b], ref, rtol=1e-4, atol=1e-3)
    # log-sum-exp exceeds the max by at most log(count): |exact - maxlog| <= log(M/2)
    assert np.max(np.abs(exact - maxlog)) <= np.log(c.points.size / 2) + 1e-4
    # hard decisions of both agree with the sign of the exact LLR in the vast majority
    assert np.mean(np.sign(exact) == np.sign(maxlog)) > 0.9


def test_qpsk_llr_closed_form_and_high_snr_agreement():
    c = Constellation("qpsk")
    y = np.array([0.3 - 0.1j, -0.7 + 0.2j], dtype=np.complex64)
    n0 = 0.5
    llr = c.demap(y, n0, "exact")
    ref = np.stack([2 * np.sqrt(2) * y.real / n0, 2 * np.sqrt(2) * y.imag / n0], axis=1).ravel()
    np.testing.assert_allclose(llr, ref, rtol=1e-5)
    np.testing.assert_allclose(c.demap(y, n0, "maxlog"), ref, rtol=1e-5)
    c16 = Constellation("16qam")
    y16 = c16.map(np.random.default_rng(3).integers(0, 2, 400, dtype=np.uint8)) * (1 + 0.02j)
    e, m = c16.demap(y16, 1e-3, "exact"), c16.demap(y16, 1e-3, "maxlog")
    np.testing.assert_allclose(e, m, rtol=1e-3)


def test_per_symbol_noise_variance_broadcasts():
    c = Constellation("16qam")
    y = c.map(np.zeros((2, 8), dtype=np.uint8))
    llr = c.demap(y, np.array([[0.1], [1.0]]), "maxlog")
    assert llr.shape == (2, 8)
    np.testing.assert_allclose(llr[0], 10 * llr[1], rtol=1e-5)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown modulation 'qam17'"):
        Constellation("qam17")
    with pytest.raises(ValueError, match="ring ratio for code rate"):
        Constellation("16apsk", "1/2")
    with pytest.raises(ValueError, match="multiple of 4"):
        Constellation("16qam").map(np.zeros(6, dtype=np.uint8))
    with pytest.raises(ValueError, match="noise_var"):
        Constellation("qpsk").demap(np.ones(3, np.complex64), 0.0)
    with pytest.raises(ValueError, match="method"):
        Constellation("qpsk").demap(np.ones(3, np.complex64), 1.0, "approx")


def test_non_binary_bits_are_rejected():
    with pytest.raises(ValueError, match="only 0 and 1"):
        Constellation("qpsk").map(np.array([0, 2, 1, 1]))
