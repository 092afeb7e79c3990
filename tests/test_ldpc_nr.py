"""5G NR LDPC (TS 38.212): base-graph tables, lifting, encoding (H c = 0, bit-exact vs Sionna), rate matching."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from sagin_hil.phy.ldpc import nr_code
from sagin_hil.phy.ldpc.nr import LIFTING_SETS, _tables, nr_base_graph, nr_lifting_size, select_base_graph

HAVE_SIONNA = importlib.util.find_spec("sionna") is not None

# (k, n) covering BG1 and BG2, all 8 lifting-set indices, fillers, puncturing and repetition
CASES = [
    (8448, 16896),  # BG1 Z=384 (iLS 1)
    (3000, 4000),  # BG1 Z=144 (iLS 4), rate 3/4
    (1000, 3000),  # BG2 Z=104 (iLS 6)
    (100, 300),  # BG2 Z=18 (iLS 4), Kb = 6
    (500, 900),  # BG2 Z=64 (iLS 0)
    (700, 2000),  # BG2 Z=72 (iLS 4), Kb = 9
    (40, 200),  # BG2 Z=7 (iLS 3)
    (2000, 3500),  # BG2 Z=208 (iLS 6)
    (5000, 6000),  # BG1 Z=240 (iLS 7)
    (1200, 1500),  # BG1 (rate 0.8) Z=56 (iLS 3)
    (220, 500),  # BG2 Z=28 (iLS 3) Kb = 8
    (330, 700),  # BG2 Z=44 (iLS 5)
    (3500, 5000),  # BG1 (rate 0.7) Z=160 (iLS 2)
    (24, 400),  # repetition of the circular buffer
]


def test_base_graph_degrees_match_the_standard():
    t = _tables()
    for bg, shape, edges, row0, col01 in ((1, (46, 68), 316, 19, (30, 28)), (2, (42, 52), 197, 8, (22, 23))):
        rows, cols = t[f"bg{bg}_row"], t[f"bg{bg}_col"]
        assert rows.size == edges and rows.max() + 1 == shape[0] and cols.max() + 1 == shape[1]
        row_w, col_w = np.bincount(rows), np.bincount(cols)
        assert row_w[0] == row0
        assert tuple(col_w[:2]) == col01
        kb = 22 if bg == 1 else 10
        # extension part: parity column kb + i (i >= 4) appears only in row i, unshifted
        assert np.all(col_w[kb + 4 :] == 1)
        for i in range(4, shape[0]):
            sel = cols == kb + i
            assert rows[sel][0] == i and np.all(t[f"bg{bg}_shift"][sel] == 0)
        # no duplicate (row, col) entries
        assert np.unique(rows.astype(int) * 100 + cols).size == edges


@pytest.mark.skipif(not HAVE_SIONNA, reason="sionna not installed (pip install --no-deps sionna)")
def test_base_graphs_match_sionna_files():
    import sionna

    folder = Path(sionna.__file__).parent / "phy" / "fec" / "ldpc" / "codes"
    t = _tables()
    for bg in (1, 2):
        lines = (folder / f"5G_bg{bg}.csv").read_text().splitlines()[2:]
        entries, row = [], -1
        for line in lines:
            f = line.split(";")
            if len(f) < 10 or f[1].strip() == "":
                continue
            row = int(f[0]) if f[0].strip() else row
            entries.append([row, int(f[1])] + [int(v) for v in f[2:10]])
        ref = np.array(entries)
        ours = np.column_stack([t[f"bg{bg}_row"], t[f"bg{bg}_col"], t[f"bg{bg}_shift"]])
        assert np.array_equal(ref, ours)


def test_lifting_sizes_of_table_5_3_2_1():
    all_z = sorted(z for s in LIFTING_SETS for z in s)
    assert len(all_z) == 51 and all_z[0] == 2 and all_z[-1] == 384
    assert LIFTING_SETS[1] == (3, 6, 12, 24, 48, 96, 192, 384)
    assert nr_lifting_size(8448, 1) == 384 and nr_lifting_size(8449 - 22, 1) == 384
    assert nr_lifting_size(1000, 2) == 104  # Kb = 10: smallest Z with 10 Z >= 1000
    assert nr_lifting_size(100, 2) == 18  # Kb = 6
    assert select_base_graph(8448, 0.5) == 1 and select_base_graph(1000, 0.5) == 2 and select_base_graph(200, 0.9) == 2


@pytest.mark.parametrize("k,n", CASES)
def test_encoded_words_satisfy_parity_checks(k, n):
    code = nr_code(k, n)
    rng = np.random.default_rng(k)
    u = rng.integers(0, 2, (3, k), dtype=np.uint8)
    mother = code.encode_mother(u)
    assert code.syndrome_ok(mother).all()
    # systematic: the mother word starts with the information bits, then the zero filler bits
    z = code.qc.Z
    K = (22 if "bg1" in code.name else 10) * z
    assert np.array_equal(mother[:, :k], u) and not mother[:, k:K].any()
    # a single flipped bit breaks the checks
    mother[:, k // 2] ^= 1
    assert not code.syndrome_ok(mother).any()


@pytest.mark.parametrize("k,n", CASES)
def test_rate_matching_outputs_exactly_n_bits(k, n):
    code = nr_code(k, n)
    z = code.qc.Z
    u = np.random.default_rng(1).integers(0, 2, (2, k), dtype=np.uint8)
    cw = code.encode(u)
    assert cw.shape == (2, n) and code.n == n and code.k == k and code.rate == pytest.approx(k / n)
    # the first 2Z systematic bits are punctured: transmission starts with info bit 2Z
    start = min(k - 2 * z, n)
    assert np.array_equal(cw[:, :start], u[:, 2 * z : 2 * z + start])
    # filler bits are never sent; repetition wraps the circular buffer
    K = (22 if "bg1" in code.name else 10) * z
    assert not np.isin(code.tx_index, np.arange(k, K)).any()
    buffer = (68 if "bg1" in code.name else 52) * z - 2 * z - (K - k)
    if n > buffer:
        assert np.array_equal(cw[:, buffer : 2 * buffer if 2 * buffer <= n else n], cw[:, : min(buffer, n - buffer)])


@pytest.mark.skipif(not HAVE_SIONNA, reason="sionna not installed (pip install --no-deps sionna)")
@pytest.mark.parametrize("k,n", CASES[:10])
def test_encoder_bit_exact_with_sionna(k, n):
    import torch
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    u = np.random.default_rng(7).integers(0, 2, (2, k), dtype=np.uint8)
    ref = LDPC5GEncoder(k, n)(torch.tensor(u, dtype=torch.float32)).numpy().astype(np.uint8)
    assert np.array_equal(nr_code(k, n).encode(u), ref)


def test_shift_values_are_reduced_modulo_z():
    rows, cols, shifts = nr_base_graph(1, 7)
    assert shifts.max() < 7 and shifts.min() >= 0
    raw = _tables()["bg1_shift"][:, 3]  # Z = 7 belongs to set index 3
    assert np.array_equal(shifts, raw % 7)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"k": 0, "n": 10}, "outside 1..8448"),
        ({"k": 9000, "n": 20000}, "outside 1..8448"),
        ({"k": 100, "n": 100}, "must exceed"),
        ({"k": 100, "n": 300, "base_graph": 3}, "base_graph"),
        ({"k": 5000, "n": 20000, "base_graph": 2}, "BG2"),
        ({"k": 10.5, "n": 30}, "integers"),
    ],
)
def test_bad_code_parameters_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nr_code(**kwargs)


def test_bad_information_bits_are_rejected():
    code = nr_code(100, 300)
    with pytest.raises(ValueError, match=r"\[\.\.\., 100\]"):
        code.encode(np.zeros(99, np.uint8))
    with pytest.raises(ValueError, match="only 0 and 1"):
        code.encode(np.full(100, 2))
