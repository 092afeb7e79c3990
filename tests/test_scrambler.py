"""Scrambler: TS 38.211 Gold sequence, self-inverse, whitening, bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from sagin_hil.phy.scrambler import descramble_llr, gold_sequence, gold_sequences, scramble


def test_self_inverse_and_seed_dependent():
    bits = np.random.default_rng(0).integers(0, 2, (3, 1000), dtype=np.uint8)
    s = scramble(bits, 1234)
    assert np.array_equal(scramble(s, 1234), bits)
    assert not np.array_equal(scramble(bits, 1235), s)


def test_whitens_a_constant_payload():
    s = scramble(np.zeros(20000, np.uint8), 99)
    assert abs(s.mean() - 0.5) < 4 * 0.5 / np.sqrt(s.size)  # within 4 sigma of a fair coin
    runs = np.diff(np.flatnonzero(np.diff(s) != 0))
    assert runs.max() < 40  # longest run of equal bits ~ log2(n)


def test_gold_sequence_recursion():
    # c(n) = x1(n + 1600) + x2(n + 1600) with x1(n+31) = x1(n+3) + x1(n), x2 seeded by c_init
    c = gold_sequence(0, 64)
    x1 = np.zeros(1600 + 64 + 31, np.uint8)
    x1[0] = 1
    for i in range(x1.size - 31):
        x1[i + 31] = x1[i + 3] ^ x1[i]
    assert np.array_equal(c, x1[1600 : 1600 + 64])  # with c_init = 0, x2 is all zeros


def _gold_by_definition(c_init: int, n: int) -> np.ndarray:
    """TS 38.211 sec. 5.2.1 step by step: both m-sequences run through the 1600 discarded outputs."""
    x1, x2 = np.zeros(1600 + n + 31, np.uint8), np.zeros(1600 + n + 31, np.uint8)
    x1[0] = 1
    x2[:31] = [(c_init >> i) & 1 for i in range(31)]
    for i in range(1600 + n):
        x1[i + 31] = x1[i + 3] ^ x1[i]
        x2[i + 31] = x2[i + 3] ^ x2[i + 2] ^ x2[i + 1] ^ x2[i]
    return x1[1600 : 1600 + n] ^ x2[1600 : 1600 + n]


def test_jumped_sequences_match_the_definition_and_batch_per_block():
    # the x2 register is jumped over the 1600 discarded outputs by a GF(2) matrix: check it against stepping
    seeds = [1, 2, 0x2A5, 65535, (7 << 14 | 3) ^ 0x2A5, 2**31 - 1]
    batch = gold_sequences(seeds, 1365)
    for row, c_init in zip(batch, seeds):
        assert np.array_equal(row, _gold_by_definition(c_init, 1365))
        assert np.array_equal(gold_sequence(c_init, 1365), row)
    assert gold_sequences(seeds, 0).shape == (len(seeds), 0)
    llr = np.random.default_rng(3).normal(size=(len(seeds), 1365)).astype(np.float32)
    assert np.array_equal(descramble_llr(llr, seeds), np.where(batch == 1, -llr, llr))  # a scrambled 1 flips
    with pytest.raises(ValueError, match="len\\(seeds\\)"):
        descramble_llr(llr[:2], seeds)


@pytest.mark.skipif(importlib.util.find_spec("sionna") is None, reason="sionna not installed")
def test_same_sequence_as_sionna():
    from sionna.phy.nr.utils import generate_prng_seq

    for c_init in (1, 65535, 2**31 - 1):
        assert np.array_equal(gold_sequence(c_init, 500), np.asarray(generate_prng_seq(500, c_init)).astype(np.uint8))


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="seed=-1"):
        scramble(np.zeros(4, np.uint8), -1)
    with pytest.raises(ValueError, match="only 0 and 1"):
        scramble(np.array([0, 3]), 1)
