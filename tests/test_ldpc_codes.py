"""LDPC codes from any parity-check matrix: systematic encoding, alist files, pyldpc matrices."""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from sagin_hil.phy.ldpc import LdpcDecoder, code_from_alist, code_from_parity_matrix, write_alist

HAMMING = np.array([[1, 1, 0, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1, 0], [0, 1, 1, 1, 0, 0, 1]], np.uint8)


def test_hamming_code_words_and_distance():
    code = code_from_parity_matrix(HAMMING)
    assert (code.k, code.n) == (4, 7)
    msgs = np.array(list(itertools.product((0, 1), repeat=4)), np.uint8)
    words = code.encode(msgs)
    assert code.syndrome_ok(words).all()
    assert np.array_equal(words[:, code.info_index], msgs)  # systematic
    assert len({w.tobytes() for w in words}) == 16
    assert words[1:].sum(axis=1).min() == 3  # minimum distance of Hamming(7,4)


def test_dependent_rows_give_k_from_rank():
    H = np.vstack([HAMMING, HAMMING[0] ^ HAMMING[1]])  # a redundant fourth check
    code = code_from_parity_matrix(sp.csr_matrix(H))
    assert code.k == 4 and code.H.shape == (4, 7)
    u = np.random.default_rng(0).integers(0, 2, (5, 4), dtype=np.uint8)
    assert code.syndrome_ok(code.encode(u)).all()


def test_alist_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    n, m = 96, 48
    rows = np.concatenate([rng.choice(m, 3, replace=False) for _ in range(n)])
    H = sp.csr_matrix((np.ones(3 * n, np.uint8), (rows, np.repeat(np.arange(n), 3))), shape=(m, n))
    path = tmp_path / "code.alist"
    write_alist(H, path)
    code = code_from_alist(path)
    assert code.name == "code"
    assert (code.H != H).nnz == 0
    # the same file without zero padding (irregular rows) parses to the same matrix
    code2 = code_from_alist(path.read_text())
    assert (code2.H != H).nnz == 0
    u = rng.integers(0, 2, (4, code.k), dtype=np.uint8)
    assert code.syndrome_ok(code.encode(u)).all()


def test_alist_text_without_padding():
    # MacKay's own format for an irregular code: lists are exactly as long as the weights
    text = "4 2\n2 3\n1 1 2 1\n3 2\n1\n1\n1 2\n2\n1 2 3\n3 4\n"
    code = code_from_alist(text)
    assert code.H.toarray().tolist() == [[1, 1, 1, 0], [0, 0, 1, 1]]


@pytest.mark.skipif(importlib.util.find_spec("pyldpc") is None, reason="pyldpc not installed")
def test_pyldpc_matrix_round_trip():
    import pyldpc

    H, _ = pyldpc.make_ldpc(240, 3, 6, systematic=True, sparse=True, seed=2)
    H = np.asarray(H.toarray() if hasattr(H, "toarray") else H)
    code = code_from_parity_matrix(H)
    rng = np.random.default_rng(3)
    u = rng.integers(0, 2, (3, code.k), dtype=np.uint8)
    cw = code.encode(u)
    assert not ((H.astype(np.int64) @ cw.T) % 2).any()
    res = LdpcDecoder(code, "flooding-spa")((1.0 - 2.0 * cw).astype(np.float32) * 2)
    assert np.array_equal(res.info_bits, u)


@pytest.mark.parametrize(
    "H,match",
    [
        (np.array([[1, 2, 0]]), "only 0 and 1"),
        (np.eye(4, dtype=np.uint8), "full column rank"),
        (np.zeros((0, 4)), "non-empty"),
    ],
)
def test_bad_parity_matrices_are_rejected(H, match):
    with pytest.raises(ValueError, match=match):
        code_from_parity_matrix(H)


def test_bad_alist_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        code_from_alist(str(tmp_path / "missing.alist"))
    with pytest.raises(ValueError, match="not a valid alist"):
        code_from_alist("4 2\n2 3\n1 1 2 1\n3 2\n1\n")


@pytest.mark.parametrize("algorithm", ["layered-nms", "layered-oms", "flooding-spa"])
def test_weight_one_check_pins_its_bit(algorithm):
    H = np.array([[1, 0, 0, 0], [0, 1, 1, 1]], np.uint8)  # bit 0 must be 0; bits 1-3 have even parity
    code = code_from_parity_matrix(H)
    llr = np.array([[-0.5, 2.0, -2.0, -3.0]], np.float32)  # the channel leans to 1 on bit 0
    res = LdpcDecoder(code, algorithm, iterations=5)(llr)
    assert res.converged.all()
    assert res.codeword.tolist() == [[0, 0, 1, 1]]
