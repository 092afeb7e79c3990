"""DVB-S2 LDPC (EN 302 307): every rate of normal and short frames, structure, round trips, thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sagin_hil.phy.ldpc import DVBS2_RATES, LdpcDecoder, dvbs2_code
from sagin_hil.phy.modulation import Constellation

# EN 302 307 Tables 5a / 5b: K_ldpc per rate; check-node degree of the normal-frame codes
K_NORMAL = {"1/4": 16200, "1/3": 21600, "2/5": 25920, "1/2": 32400, "3/5": 38880, "2/3": 43200,
            "3/4": 48600, "4/5": 51840, "5/6": 54000, "8/9": 57600, "9/10": 58320}
DC_NORMAL = {"1/4": 4, "1/3": 5, "2/5": 6, "1/2": 7, "3/5": 11, "2/3": 10, "3/4": 14, "4/5": 18,
             "5/6": 22, "8/9": 27, "9/10": 30}
K_SHORT = {"1/4": 3240, "1/3": 5400, "2/5": 6480, "1/2": 7200, "3/5": 9720, "2/3": 10800,
           "3/4": 11880, "4/5": 12600, "5/6": 13320, "8/9": 14400}


def test_all_rates_are_present():
    assert DVBS2_RATES["normal"] == list(K_NORMAL)
    assert DVBS2_RATES["short"] == list(K_SHORT)


@pytest.mark.parametrize("rate", list(K_SHORT))
def test_short_frame_codes(rate):
    code = dvbs2_code(rate, "short")
    assert (code.n, code.k) == (16200, K_SHORT[rate])
    rng = np.random.default_rng(0)
    u = rng.integers(0, 2, (2, code.k), dtype=np.uint8)
    cw = code.encode(u)
    assert code.syndrome_ok(cw).all() and np.array_equal(cw[:, : code.k], u)
    # accumulator structure: every parity column but the last has weight 2
    col_w = np.diff(code.H.tocsc().indptr)
    assert np.all(col_w[code.k : -1] == 2) and col_w[-1] == 1 and col_w[: code.k].min() >= 3
    res = LdpcDecoder(code, "layered-nms", scale=0.875)((1.0 - 2.0 * cw).astype(np.float32) * 2)
    assert np.array_equal(res.info_bits, u) and res.converged.all()


@pytest.mark.parametrize("rate", list(K_NORMAL))
def test_normal_frame_codes(rate):
    code = dvbs2_code(rate, "normal")
    assert (code.n, code.k) == (64800, K_NORMAL[rate])
    row_w = np.diff(code.H.indptr)
    # regular check degree d_c (the first check lacks the accumulator's previous parity bit); a
    # mistyped address would move 360 edges between accumulator groups and break this
    assert row_w[0] == DC_NORMAL[rate] - 1 and np.all(row_w[1:] == DC_NORMAL[rate])
    u = np.random.default_rng(1).integers(0, 2, (1, code.k), dtype=np.uint8)
    cw = code.encode(u)
    assert code.syndrome_ok(cw).all()


def _bler(code, esn0_db: float, blocks: int, rng) -> float:
    qpsk = Constellation("qpsk")
    u = rng.integers(0, 2, (blocks, code.k), dtype=np.uint8)
    x = qpsk.map(code.encode(u))
    n0 = 10 ** (-esn0_db / 10)
    noise = rng.normal(0, math.sqrt(n0 / 2), x.shape + (2,))
    y = (x + noise[..., 0] + 1j * noise[..., 1]).astype(np.complex64)
    res = LdpcDecoder(code, "layered-nms", iterations=50, scale=0.875)(qpsk.demap(y, n0))
    return float((res.info_bits != u).any(-1).mean())


@pytest.mark.parametrize("rate,qef_esn0_db", [("1/2", 1.00), ("3/4", 4.03)])
def test_short_frames_follow_the_published_thresholds(rate, qef_esn0_db):
    # EN 302 307 QEF Es/N0 (QPSK, normal frames): a short frame's waterfall lies within about 1 dB
    rng = np.random.default_rng(2)
    code = dvbs2_code(rate, "short")
    assert _bler(code, qef_esn0_db - 1.0, 10, rng) == 1.0
    assert _bler(code, qef_esn0_db + 0.5, 20, rng) == 0.0


@pytest.mark.slow
def test_normal_frame_qpsk_1_2_at_its_qef_threshold():
    rng = np.random.default_rng(3)
    code = dvbs2_code("1/2", "normal")
    assert _bler(code, 1.0 + 0.3, 10, rng) == 0.0
    assert _bler(code, 1.0 - 0.5, 5, rng) == 1.0


def test_bad_names_are_rejected():
    with pytest.raises(ValueError, match="no code rate '9/10'"):
        dvbs2_code("9/10", "short")
    with pytest.raises(ValueError, match="unknown DVB-S2 frame 'medium'"):
        dvbs2_code("1/2", "medium")


@pytest.mark.parametrize("frame,rate", [("short", "1/2"), ("short", "8/9"), ("normal", "3/5")])
def test_quasi_cyclic_form_is_the_same_matrix(frame, rate):
    import scipy.sparse as sp

    code = dvbs2_code(rate, frame)
    q = code.qc
    Z = q.Z
    rows, cols = [], []
    for r in range(q.row_ptr.size - 1):
        for e in range(q.row_ptr[r], q.row_ptr[r + 1]):
            z = np.arange(Z)
            keep = z != q.brk[e]
            rows.append((r * Z + z)[keep])
            cols.append(q.perm[q.cols[e] * Z + (z + q.shifts[e]) % Z][keep])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    Hq = sp.csr_matrix((np.ones(rows.size, np.uint8), (rows, cols)), shape=code.H.shape)
    m = code.H.shape[0]
    c = np.arange(m)
    P = sp.csr_matrix((np.ones(m, np.uint8), ((c % (m // Z)) * Z + c // (m // Z), c)), shape=(m, m))
    assert (P @ code.H != Hq).nnz == 0  # check c = r + q s is row s of base row r
    assert (q.brk >= 0).sum() == 1 and q.dup.sum() > 0


def test_vectorised_and_scalar_layered_decoders_agree():
    rng = np.random.default_rng(4)
    code = dvbs2_code("3/5", "short")
    u = rng.integers(0, 2, (10, code.k), dtype=np.uint8)
    qpsk = Constellation("qpsk")
    x = qpsk.map(code.encode(u))
    n0 = 10 ** (-3.4 / 10)  # about 1 dB above the QEF point of QPSK 3/5 (2.23 dB)
    y = (x + np.sqrt(n0 / 2) * (rng.normal(size=x.shape) + 1j * rng.normal(size=x.shape))).astype(np.complex64)
    llr = qpsk.demap(y, n0)
    fast = LdpcDecoder(code, "layered-nms", iterations=30, scale=0.875)(llr)
    qc, code.qc = code.qc, None  # the scalar kernel on the plain H (same schedule, other tie-breaks)
    try:
        slow = LdpcDecoder(code, "layered-nms", iterations=30, scale=0.875)(llr)
    finally:
        code.qc = qc
    assert np.array_equal(fast.info_bits, u) and np.array_equal(slow.info_bits, u)
    assert abs(fast.iterations.mean() - slow.iterations.mean()) < 2


@pytest.mark.slow
def test_short_frame_thresholds_rise_with_the_code_rate():
    # Es/N0 at BLER 0.1 rises with K and stays within 1 dB of EN 302 307's normal-frame QEF Es/N0
    qef = {"1/3": -1.24, "2/5": -0.30, "3/5": 2.23, "2/3": 3.10, "3/4": 4.03, "4/5": 4.68, "5/6": 5.18, "8/9": 6.20}
    rng = np.random.default_rng(5)
    found = []
    for rate, q_db in qef.items():
        code = dvbs2_code(rate, "short")
        grid = np.arange(q_db - 1.0, q_db + 1.01, 0.25)
        first_ok = next((e for e in grid if _bler(code, e, 40, rng) <= 0.1), None)
        assert first_ok is not None and abs(first_ok - q_db) <= 1.0, (rate, first_ok)
        found.append(first_ok)
    assert found == sorted(found)
