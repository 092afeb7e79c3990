"""Numba kernels of the LDPC decoders (float32 LLRs, llr = log P(b=0)/P(b=1)).

Three kernels share one calling convention: a batch of mother-code LLRs in, hard decisions of the
mother code, the iteration count and the convergence flag out, early stop on the syndrome (or, with
early_stop False, a fixed iteration count and one syndrome check at the end). The int16 fast path is in
kernels_int16.py.

- `qc_layered_min_sum`: layered min-sum on a quasi-cyclic code (5G NR; DVB-S2 in its Z = 360 form).
  LLRs live as [base column, Z]; for each base-graph row the Z check nodes are processed together, a
  cyclic shift being two contiguous segments, so the inner loops over Z vectorise (SIMD).
- `layered_min_sum`: the same schedule on any sparse H (one check row per layer), scalar.
- `flooding_spa`: flooding sum-product in float64 (the exact reference), any sparse H.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MODE_NMS = 0  # normalised min-sum: scale * min
MODE_OMS = 1  # offset min-sum: max(min - offset, 0)
LLR_MAX = np.float32(1.0e6)
BIG_LLR = np.float32(1.0e30)


@njit(cache=True, fastmath=True)
def _qc_syndrome_ok(L, row_ptr, cols, shifts, brk, Z, hard, acc):
    n_cols = L.shape[0]
    for c in range(n_cols):
        Lc = L[c]
        hc = hard[c]
        for z in range(Z):
            hc[z] = 1 if Lc[z] < 0.0 else 0
    for r in range(row_ptr.size - 1):
        for z in range(Z):
            acc[z] = 0
        for e in range(row_ptr[r], row_ptr[r + 1]):
            s = shifts[e]
            n1 = Z - s
            ha = hard[cols[e]][s:]
            hb = hard[cols[e]][:s]
            ab = acc[n1:]
            for z in range(n1):
                acc[z] ^= ha[z]
            for z in range(s):
                ab[z] ^= hb[z]
            if brk[e] >= 0:  # this circulant lacks one edge: take its contribution back out
                zb = brk[e]
                acc[zb] ^= hard[cols[e]][(zb + s) % Z]
        bad = 0
        for z in range(Z):
            bad |= acc[z]
        if bad:
            return False
    return True


@njit(cache=True, fastmath=True)
def _qc_row(L, R, T, e0, d, cols, shifts, Z, mode, scale, offset, min1, min2, sgn):
    """One layer (base row) of layered min-sum; every inner loop runs over the Z checks (SIMD).

    Indices into views start at 0 so numba emits no negative-index wraparound and LLVM vectorises;
    the cyclic shift by s is the two segments [s, Z) and [0, s).
    """
    one = np.float32(1.0)
    inf = np.float32(np.inf)
    for z in range(Z):
        min1[z] = inf
    for z in range(Z):
        min2[z] = inf
    for z in range(Z):
        sgn[z] = one
    for j in range(d):
        e = e0 + j
        s = shifts[e]
        n1 = Z - s
        Lc = L[cols[e]]
        Re = R[e]
        Tj = T[j]
        La = Lc[s:]
        Lb = Lc[:s]
        Tb = Tj[n1:]
        Rb = Re[n1:]
        # variable-to-check messages: check z sees variable (z + s) mod Z
        for z in range(n1):
            Tj[z] = La[z] - Re[z]
        for z in range(s):
            Tb[z] = Lb[z] - Rb[z]
        for z in range(Z):
            a = abs(Tj[z])
            m1 = min1[z]
            min2[z] = min(min2[z], max(m1, a))
            min1[z] = min(m1, a)
        for z in range(Z):
            sgn[z] = np.copysign(sgn[z], sgn[z] * Tj[z])
    zero = np.float32(0.0)
    for j in range(d):
        e = e0 + j
        s = shifts[e]
        n1 = Z - s
        Lc = L[cols[e]]
        Re = R[e]
        Tj = T[j]
        # the edge holding the minimum gets the second minimum (on ties min1 == min2, either is right)
        if mode == MODE_NMS:
            for z in range(Z):
                t = Tj[z]
                mag = scale * (min2[z] if abs(t) == min1[z] else min1[z])
                Re[z] = np.copysign(mag, t) * sgn[z]
        else:
            for z in range(Z):
                t = Tj[z]
                mag = max((min2[z] if abs(t) == min1[z] else min1[z]) - offset, zero)
                Re[z] = np.copysign(mag, t) * sgn[z]
        La = Lc[s:]
        Lb = Lc[:s]
        Tb = Tj[n1:]
        Rb = Re[n1:]
        for z in range(n1):
            La[z] = Tj[z] + Re[z]
        for z in range(s):
            Lb[z] = Tb[z] + Rb[z]


@njit(cache=True, fastmath=True)
def _qc_row_special(L, R, T, Rs, e0, d, cols, shifts, brk, dup, Z, mode, scale, offset, min1, min2, sgn):
    """_qc_row for rows with DVB-S2's two rarities (kept apart: the extra stores slow LLVM's loops).

    brk[e] >= 0 marks the one check z of a circulant that has no edge (the accumulator's start), and
    dup[e] an edge whose base column already appeared in this row, whose update is then added to L
    instead of overwriting it.
    """
    one = np.float32(1.0)
    inf = np.float32(np.inf)
    for z in range(Z):
        min1[z] = inf
    for z in range(Z):
        min2[z] = inf
    for z in range(Z):
        sgn[z] = one
    for j in range(d):
        e = e0 + j
        s = shifts[e]
        n1 = Z - s
        Lc = L[cols[e]]
        Re = R[e]
        Tj = T[j]
        La = Lc[s:]
        Lb = Lc[:s]
        Tb = Tj[n1:]
        Rb = Re[n1:]
        # variable-to-check messages: check z sees variable (z + s) mod Z
        for z in range(n1):
            Tj[z] = La[z] - Re[z]
        for z in range(s):
            Tb[z] = Lb[z] - Rb[z]
        if brk[e] >= 0:
            Tj[brk[e]] = BIG_LLR  # a certain 0 never sets the minimum nor the sign
        for z in range(Z):
            a = abs(Tj[z])
            m1 = min1[z]
            min2[z] = min(min2[z], max(m1, a))
            min1[z] = min(m1, a)
        for z in range(Z):
            sgn[z] = np.copysign(sgn[z], sgn[z] * Tj[z])
    zero = np.float32(0.0)
    for j in range(d):
        e = e0 + j
        s = shifts[e]
        n1 = Z - s
        Lc = L[cols[e]]
        Re = R[e]
        Tj = T[j]
        if dup[e]:
            Rs[j, :] = Re
        # the edge holding the minimum gets the second minimum (on ties min1 == min2, either is right)
        if mode == MODE_NMS:
            for z in range(Z):
                t = Tj[z]
                mag = scale * (min2[z] if abs(t) == min1[z] else min1[z])
                Re[z] = np.copysign(mag, t) * sgn[z]
        else:
            for z in range(Z):
                t = Tj[z]
                mag = max((min2[z] if abs(t) == min1[z] else min1[z]) - offset, zero)
                Re[z] = np.copysign(mag, t) * sgn[z]
        if brk[e] >= 0:
            zb = brk[e]
            Re[zb] = 0.0
            Tj[zb] = Lc[(zb + s) % Z]  # leaves that variable as it is
        La = Lc[s:]
        Lb = Lc[:s]
        Tb = Tj[n1:]
        Rb = Re[n1:]
        if dup[e]:
            Sj = Rs[j]
            Sb = Sj[n1:]
            for z in range(n1):
                La[z] += Re[z] - Sj[z]
            for z in range(s):
                Lb[z] += Rb[z] - Sb[z]
        else:
            for z in range(n1):
                La[z] = Tj[z] + Re[z]
            for z in range(s):
                Lb[z] = Tb[z] + Rb[z]


@njit(cache=True, fastmath=True)
def qc_layered_min_sum(
    llr, row_ptr, cols, shifts, brk, dup, Z, max_iter, early_stop, mode, scale, offset, hard_out, iters_out, conv_out
):
    """Layered min-sum on a QC code; llr [B, n_cols*Z] (mother order), hard_out [B, n_cols*Z] uint8.
    early_stop False: run max_iter iterations and check the syndrome once at the end."""
    B = llr.shape[0]
    n_cols = llr.shape[1] // Z
    max_deg = 0
    special = np.zeros(row_ptr.size - 1, np.bool_)
    for r in range(row_ptr.size - 1):
        max_deg = max(max_deg, row_ptr[r + 1] - row_ptr[r])
        for e in range(row_ptr[r], row_ptr[r + 1]):
            special[r] |= (brk[e] >= 0) or (dup[e] != 0)
    L = np.empty((n_cols, Z), np.float32)
    R = np.empty((cols.size, Z), np.float32)
    T = np.empty((max_deg, Z), np.float32)
    Rs = np.empty((max_deg, Z), np.float32)
    min1 = np.empty(Z, np.float32)
    min2 = np.empty(Z, np.float32)
    sgn = np.empty(Z, np.float32)
    hard = np.empty((n_cols, Z), np.uint8)
    acc = np.empty(Z, np.uint8)
    for b in range(B):
        Lf = L.reshape(n_cols * Z)
        lb = llr[b]
        for v in range(n_cols * Z):
            Lf[v] = lb[v]
        R[:, :] = 0.0
        it = 0
        ok = False
        while it < max_iter:
            it += 1
            for r in range(row_ptr.size - 1):
                e0 = row_ptr[r]
                d = row_ptr[r + 1] - e0
                if special[r]:
                    _qc_row_special(L, R, T, Rs, e0, d, cols, shifts, brk, dup, Z, mode, scale, offset, min1, min2, sgn)
                else:
                    _qc_row(L, R, T, e0, d, cols, shifts, Z, mode, scale, offset, min1, min2, sgn)
            if (early_stop or it == max_iter) and _qc_syndrome_ok(L, row_ptr, cols, shifts, brk, Z, hard, acc):
                ok = True
                break
        ob = hard_out[b]
        for v in range(n_cols * Z):
            ob[v] = 1 if Lf[v] < 0.0 else 0
        iters_out[b] = it
        conv_out[b] = ok
    return


@njit(cache=True)
def _syndrome_ok(hard, row_ptr, var_idx):
    for r in range(row_ptr.size - 1):
        p = 0
        for e in range(row_ptr[r], row_ptr[r + 1]):
            p ^= hard[var_idx[e]]
        if p:
            return False
    return True


@njit(cache=True, fastmath=True)
def layered_min_sum(llr, row_ptr, var_idx, max_iter, early_stop, mode, scale, offset, hard_out, iters_out, conv_out):
    """Layered min-sum on any sparse H given as CSR (row_ptr, var_idx); llr [B, n]."""
    B, n = llr.shape
    L = np.empty(n, np.float32)
    R = np.empty(var_idx.size, np.float32)
    max_deg = 0
    for r in range(row_ptr.size - 1):
        max_deg = max(max_deg, row_ptr[r + 1] - row_ptr[r])
    T = np.empty(max_deg, np.float32)
    hard = np.empty(n, np.uint8)
    for b in range(B):
        L[:] = llr[b]
        R[:] = 0.0
        it = 0
        ok = False
        while it < max_iter:
            it += 1
            for r in range(row_ptr.size - 1):
                e0 = row_ptr[r]
                d = row_ptr[r + 1] - e0
                m1 = np.float32(np.inf)
                m2 = np.float32(np.inf)
                sgn = np.float32(1.0)
                jmin = 0
                for j in range(d):
                    t = L[var_idx[e0 + j]] - R[e0 + j]
                    T[j] = t
                    a = abs(t)
                    if t < 0.0:
                        sgn = -sgn
                    if a < m1:
                        m2 = m1
                        m1 = a
                        jmin = j
                    elif a < m2:
                        m2 = a
                # a degree-1 check pins its bit: a large finite message instead of inf - inf later
                m1 = min(m1, LLR_MAX)
                m2 = min(m2, LLR_MAX)
                if mode == MODE_NMS:
                    m1 *= scale
                    m2 *= scale
                else:
                    m1 = max(m1 - offset, np.float32(0.0))
                    m2 = max(m2 - offset, np.float32(0.0))
                for j in range(d):
                    t = T[j]
                    mag = m2 if j == jmin else m1
                    msg = -sgn * mag if t < 0.0 else sgn * mag
                    R[e0 + j] = msg
                    L[var_idx[e0 + j]] = t + msg
            if not early_stop and it < max_iter:
                continue
            for v in range(n):
                hard[v] = 1 if L[v] < 0.0 else 0
            if _syndrome_ok(hard, row_ptr, var_idx):
                ok = True
                break
        for v in range(n):
            hard_out[b, v] = 1 if L[v] < 0.0 else 0
        iters_out[b] = it
        conv_out[b] = ok
    return


@njit(cache=True)
def _phi(x):
    # phi(x) = -log(tanh(x/2)) = log((e^x + 1)/(e^x - 1)), its own inverse; clipped away from 0 and inf
    x = min(max(x, 1e-12), 40.0)
    return np.log1p(2.0 / np.expm1(x))


@njit(cache=True)
def flooding_spa(llr, row_ptr, var_idx, max_iter, early_stop, hard_out, iters_out, conv_out):
    """Flooding sum-product (phi-domain box-plus, float64) on any sparse H in CSR form; llr [B, n]."""
    B, n = llr.shape
    n_e = var_idx.size
    c2v = np.empty(n_e, np.float64)
    v2c = np.empty(n_e, np.float64)
    total = np.empty(n, np.float64)
    hard = np.empty(n, np.uint8)
    for b in range(B):
        c2v[:] = 0.0
        it = 0
        ok = False
        while it < max_iter:
            it += 1
            for v in range(n):
                total[v] = llr[b, v]
            # variable-to-check: everything the variable knows except what this check told it
            for e in range(n_e):
                total[var_idx[e]] += c2v[e]
            for e in range(n_e):
                v2c[e] = total[var_idx[e]] - c2v[e]
            for r in range(row_ptr.size - 1):
                s_phi = 0.0
                sgn = 1.0
                for e in range(row_ptr[r], row_ptr[r + 1]):
                    s_phi += _phi(abs(v2c[e]))
                    if v2c[e] < 0.0:
                        sgn = -sgn
                for e in range(row_ptr[r], row_ptr[r + 1]):
                    mag = _phi(max(s_phi - _phi(abs(v2c[e])), 0.0))
                    c2v[e] = -sgn * mag if v2c[e] < 0.0 else sgn * mag
            for v in range(n):
                total[v] = llr[b, v]
            for e in range(n_e):
                total[var_idx[e]] += c2v[e]
            for v in range(n):
                hard[v] = 1 if total[v] < 0.0 else 0
            if (early_stop or it == max_iter) and _syndrome_ok(hard, row_ptr, var_idx):
                ok = True
                break
        for v in range(n):
            hard_out[b, v] = hard[v]
        iters_out[b] = it
        conv_out[b] = ok
    return


@njit(cache=True)
def rate_recover(llr, tx_index, known_zero_index, known_llr, out):
    """Mother-code LLRs: repeated bits add up, punctured bits stay 0, known zeros get `known_llr`.
    Returns the flat index of the first non-finite input LLR, -1 when all are finite (checked on the way)."""
    B = llr.shape[0]
    bad = -1
    for b in range(B):
        ob = out[b]
        lb = llr[b]
        ob[:] = 0.0
        for i in range(tx_index.size):
            v = lb[i]
            if bad < 0 and not np.isfinite(v):
                bad = b * llr.shape[1] + i
            ob[tx_index[i]] += v
        for i in range(known_zero_index.size):
            ob[known_zero_index[i]] = known_llr
    return bad
