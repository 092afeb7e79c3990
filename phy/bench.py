"""`sagin-hil bench ldpc`: our LDPC decoder against Sionna's LDPC5GDecoder and pyldpc, same code and channel.

Entries (common bench schema, see sagin_hil.benchmarks):
- "nr_bg1_k8448_r1/2": 5G NR BG1, K = 8448, N = 16896, QPSK over AWGN, 10 iterations; ours (layered
  normalised min-sum, early stop) against Sionna (flooding sum-product, PyTorch on one CPU thread).
- "regular_n1200_dv3_dc6": a regular (3, 6) code built by pyldpc, decoded by ours and by pyldpc.
Figures: "mbps" (information Mbit/s on one core) and "bler" at the same Eb/N0; ratio = ours / peer mbps.
The extra key "curves" holds BLER vs Eb/N0 of ours and of Sionna's sum-product at the same iterations.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np

from sagin_hil.benchmarks import benchmark_entry, best_time_s, report_progress

__all__ = ["bench_ldpc", "qpsk_awgn_llr"]

SIONNA_HINT = "pip install --no-deps sionna importlib_resources"
PYLDPC_HINT = "pip install --no-build-isolation pyldpc"


def qpsk_awgn_llr(codewords: np.ndarray, ebn0_db: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Gray QPSK over AWGN at Eb/N0 (dB) for a code of `rate`; max-log LLRs float32 [..., n] (exact for QPSK)."""
    from sagin_hil.phy.modulation import Constellation

    qpsk = Constellation("qpsk")
    n0 = 1.0 / (10 ** (ebn0_db / 10) * rate * qpsk.bits_per_symbol)  # Es = 1
    x = qpsk.map(codewords)
    noise = rng.normal(0.0, math.sqrt(n0 / 2), x.shape + (2,))
    y = x + (noise[..., 0] + 1j * noise[..., 1])
    return qpsk.demap(y.astype(np.complex64), n0, method="maxlog")


def _ours(code, llr: np.ndarray, info: np.ndarray, iterations: int, repeats: int) -> dict[str, Any]:
    from sagin_hil.phy.ldpc import LdpcDecoder

    dec = LdpcDecoder(code, "layered-nms", iterations=iterations)
    res = dec(llr)
    t = best_time_s(lambda: dec(llr), repeats=repeats)
    return {
        "mbps": llr.shape[0] * code.k / t / 1e6,
        "bler": float((res.info_bits != info).any(-1).mean()),
        "avg_iterations": float(res.iterations.mean()),
        "blocks": int(llr.shape[0]),
        "decoder": "layered-nms scale 0.75, early stop",
    }


def _sionna_decoder(k: int, n: int, iterations: int):
    import torch
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder

    torch.set_num_threads(1)
    enc = LDPC5GEncoder(k, n)
    dec = LDPC5GDecoder(enc, num_iter=iterations, hard_out=True, return_infobits=True)
    # Sionna takes logits log P(1)/P(0): the negative of our LLRs
    return lambda llr: dec(torch.from_numpy(-llr)).numpy().astype(np.uint8)


def _sionna(k: int, n: int, llr: np.ndarray, info: np.ndarray, iterations: int, repeats: int,
            batches: tuple[int, ...]) -> dict[str, Any]:
    """Sionna's throughput at its best batch size among `batches` (its speed per block depends on it)."""
    try:
        decode = _sionna_decoder(k, n, iterations)
    except ImportError:
        return {"skipped": SIONNA_HINT}
    decode(llr[:1])
    best_mbps, best_batch = 0.0, 0
    for batch in batches:
        t = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            decode(llr[:batch])
            t = min(t, time.perf_counter() - t0)
        if batch * k / t / 1e6 > best_mbps:
            best_mbps, best_batch = batch * k / t / 1e6, batch
    out = decode(llr)
    return {
        "mbps": best_mbps,
        "bler": float((out != info).any(-1).mean()),
        "avg_iterations": float(iterations),
        "blocks": int(llr.shape[0]),
        "batch": best_batch,
        "decoder": "LDPC5GDecoder boxplus-phi (flooding sum-product), torch CPU, 1 thread, no early stop",
    }


def _pyldpc_entry(quick: bool, rng: np.random.Generator) -> dict[str, Any]:
    from sagin_hil.phy.ldpc import LdpcDecoder, code_from_parity_matrix

    name = "regular_n1200_dv3_dc6"
    ebn0_db, iterations = 2.5, 10
    try:
        import pyldpc
    except ImportError:
        return benchmark_entry(name, {}, {"pyldpc": {"skipped": PYLDPC_HINT}}, {})
    H, _ = pyldpc.make_ldpc(1200, 3, 6, systematic=True, sparse=True, seed=0)
    H = np.asarray(H.toarray() if hasattr(H, "toarray") else H)
    code = code_from_parity_matrix(H, name=name)
    n_blocks = 20 if quick else 200
    u = rng.integers(0, 2, (n_blocks, code.k), dtype=np.uint8)
    cw = code.encode(u)
    llr = qpsk_awgn_llr(cw, ebn0_db, code.rate, rng)
    dec = LdpcDecoder(code, "layered-nms", iterations=iterations)
    res = dec(llr)
    t = best_time_s(lambda: dec(llr), repeats=1 if quick else 3)
    ours = {
        "mbps": n_blocks * code.k / t / 1e6,
        "bler": float((res.codeword != cw).any(-1).mean()),
        "avg_iterations": float(res.iterations.mean()),
        "blocks": n_blocks,
    }
    # pyldpc computes Lc = 2 y / var with var = 10^(-snr/10): snr = 0 dB and y = llr / 2 give it our LLRs
    n_py = 4 if quick else 20
    y = (llr[:n_py].astype(np.float64) / 2).T
    with warnings.catch_warnings():  # pyldpc warns on every block that is not decoded in maxiter
        warnings.simplefilter("ignore")
        pyldpc.decode(H, y[:, :1], 0.0, maxiter=iterations)
        t0 = time.perf_counter()
        x = np.asarray(pyldpc.decode(H, y, 0.0, maxiter=iterations)).reshape(code.n, -1).T
        t = time.perf_counter() - t0
    peer = {"mbps": n_py * code.k / t / 1e6, "bler": float((x != cw[:n_py]).any(-1).mean()), "blocks": n_py}
    return benchmark_entry(
        name,
        ours,
        {"pyldpc": peer},
        {"pyldpc": ours["mbps"] / peer["mbps"]},
        settings={"ebn0_db": ebn0_db, "iterations": iterations, "channel": "QPSK AWGN", "k": code.k, "n": code.n,
                  "bler_on": "codeword"},
    )


def _ebn0_at(ebn0: list[float], bler: list[float], blocks: list[int], target: float) -> float | None:
    """Eb/N0 where the BLER curve crosses `target`, interpolating log10(BLER) linearly.

    A point with no error in n blocks counts as BLER 0.5 / n (an upper estimate); skipped points
    (n = 0, beyond an error-free one) end the curve.
    """
    pts = [(e, b if b > 0 else 0.5 / n) for e, b, n in zip(ebn0, bler, blocks, strict=True) if n > 0]
    for (e0, b0), (e1, b1) in zip(pts[:-1], pts[1:], strict=True):
        if b0 >= target > b1:
            f = (math.log10(b0) - math.log10(target)) / (math.log10(b0) - math.log10(b1))
            return e0 + f * (e1 - e0)
    return None


def _bler_point(decode, code, ebn0_db: float, rng, max_blocks: int, max_errors: int, batch: int) -> tuple[float, int]:
    """BLER at one Eb/N0, stopping once `max_errors` block errors are seen (or `max_blocks` decoded)."""
    errors = blocks = 0
    while blocks < max_blocks and errors < max_errors:
        b = min(batch, max_blocks - blocks)
        u = rng.integers(0, 2, (b, code.k), dtype=np.uint8)
        llr = qpsk_awgn_llr(code.encode(u), ebn0_db, code.rate, rng)
        errors += int((decode(llr) != u).any(-1).sum())
        blocks += b
    return errors / blocks, blocks


def _curves(code, quick: bool, rng: np.random.Generator, iterations: int) -> dict[str, Any]:
    """BLER vs Eb/N0 of ours (layered NMS, exact flooding SPA) and Sionna's flooding sum-product."""
    from sagin_hil.phy.ldpc import LdpcDecoder

    grid = [1.4, 1.8] if quick else [1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4]
    decoders: dict[str, tuple[Any, int, int, int, str]] = {
        # name: (decode, max blocks, max errors, batch, description)
        "ours": (lambda x: LdpcDecoder(code, "layered-nms", iterations=iterations)(x).info_bits,
                 20 if quick else 2000, 100, 50, "layered-nms scale 0.75"),
        "ours_flooding_spa": (lambda x: LdpcDecoder(code, "flooding-spa", iterations=iterations)(x).info_bits,
                              4 if quick else 100, 20, 4, "flooding sum-product (float64)"),
    }
    try:
        decoders["sionna"] = (_sionna_decoder(code.k, code.n, iterations), 4 if quick else 200, 30, 8,
                              "LDPC5GDecoder boxplus-phi flooding")
    except ImportError:
        pass
    out: dict[str, Any] = {"name": "nr_bg1_k8448_r1/2 BLER vs Eb/N0", "ebn0_db": grid, "iterations": iterations,
                           "channel": "QPSK AWGN", "stop": "each point stops after max_errors block errors"}
    for name, (decode, max_blocks, max_errors, batch, desc) in decoders.items():
        bler, blocks = [], []
        for ebn0 in grid:
            report_progress(f"BLER curves: {name} at Eb/N0 {ebn0:g} dB", 2, 4)  # stage 3 of bench_ldpc's 4
            if bler and bler[-1] == 0.0:  # BLER falls with Eb/N0
                b, n = 0.0, 0
            else:
                b, n = _bler_point(decode, code, ebn0, rng, max_blocks, max_errors, batch)
            bler.append(b)
            blocks.append(n)
        at = _ebn0_at(grid, bler, blocks, 1e-2)
        out[name] = {"decoder": desc, "bler": bler, "blocks": blocks, "ebn0_db_at_bler_1e-2": at}
    if "sionna" not in out:
        out["sionna"] = {"skipped": SIONNA_HINT}
    else:
        a, b = out["ours"]["ebn0_db_at_bler_1e-2"], out["sionna"]["ebn0_db_at_bler_1e-2"]
        out["gap_db_at_bler_1e-2"] = None if (a is None or b is None) else a - b  # negative: ours needs less
    return out


def bench_ldpc(quick: bool = False) -> dict[str, Any]:
    """Run the LDPC benchmarks; quick=True is a smoke run (few blocks, under ~30 s)."""
    from sagin_hil.phy.ldpc import nr_code

    rng = np.random.default_rng(2024)
    k, n, iterations, ebn0_db = 8448, 16896, 10, 2.0
    code = nr_code(k, n)
    n_ours, n_peer = (20, 4) if quick else (200, 16)
    report_progress("5G NR k=8448: ours", 0, 4)
    u = rng.integers(0, 2, (n_ours, k), dtype=np.uint8)
    llr = qpsk_awgn_llr(code.encode(u), ebn0_db, code.rate, rng)
    ours = _ours(code, llr, u, iterations, repeats=1 if quick else 10)
    report_progress("5G NR k=8448: Sionna", 1, 4)
    sionna = _sionna(k, n, llr[:n_peer], u[:n_peer], iterations, repeats=1 if quick else 2,
                     batches=(4,) if quick else (4, 16))
    ratio = {} if "skipped" in sionna else {"sionna": ours["mbps"] / sionna["mbps"]}
    main = benchmark_entry(
        "nr_bg1_k8448_r1/2",
        ours,
        {"sionna": sionna},
        ratio,
        settings={"ebn0_db": ebn0_db, "iterations": iterations, "channel": "QPSK AWGN", "k": k, "n": n,
                  "code": code.name, "threads": 1},
    )
    curves = _curves(code, quick, rng, iterations)
    report_progress("regular (3, 6) code: ours and pyldpc", 3, 4)
    return {"benchmarks": [main, _pyldpc_entry(quick, rng)], "curves": [curves]}
