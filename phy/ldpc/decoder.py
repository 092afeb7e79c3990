"""LDPC decoders: layered normalised / offset min-sum (fast path) and flooding sum-product (reference)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sagin_hil.phy.ldpc import kernels, kernels_int16
from sagin_hil.phy.ldpc.code import LdpcCode

__all__ = ["LdpcDecoder", "DecodeResult", "ALGORITHMS", "DECODER_CHOICES", "code_family", "decoder_for",
           "describe_decoder"]

ALGORITHMS = ("layered-nms", "layered-oms", "flooding-spa", "layered-nms-int16")
# What `decoder_for` (and `sagin-hil ber --decoder`) accepts; "auto" picks the code family's default.
DECODER_CHOICES = ("auto", "layered-nms[:SCALE]", "layered-oms[:OFFSET]", "flooding-spa", "layered-nms-int16[:SCALE]")
FILLER_LLR = np.float32(1.0e4)  # LLR of a bit known to be 0 (NR filler bits)


@dataclass
class DecodeResult:
    """Output of LdpcDecoder.

    info_bits : uint8 [..., k]; codeword : uint8 [..., n] (hard decisions of the transmitted bits);
    converged : bool [...] (syndrome zero); iterations : int32 [...] (iterations run).
    """

    info_bits: np.ndarray
    codeword: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray


class LdpcDecoder:
    r"""Iterative belief-propagation decoder for an :class:`LdpcCode`.

    Parameters
    ----------
    code : LdpcCode
    algorithm : str
        "layered-nms" (layered normalised min-sum, vectorised over Z on quasi-cyclic codes),
        "layered-oms" (layered offset min-sum), "flooding-spa" (flooding sum-product, exact) or
        "layered-nms-int16" (layered normalised min-sum in 16-bit fixed point, LLR step 1/8, twice the SIMD
        lanes of float32: the fastest; quasi-cyclic codes without DVB-S2's broken circulants, i.e. 5G NR).
    iterations : int
        Maximum iterations.
    scale : float
        Normalisation factor of min-sum (layered-nms; layered-nms-int16 takes 0.75 or 0.875).
    offset : float
        Offset of offset min-sum (layered-oms).
    early_stop : bool
        Stop a block once its syndrome is zero (the default); False runs exactly `iterations` (fixed work,
        e.g. for a like-with-like speed comparison) and checks the syndrome once at the end.

    Input
    -----
    llr : float32 [..., n]
        Channel LLRs of the transmitted bits, llr = log P(b=0)/P(b=1).

    Output
    ------
    DecodeResult
    """

    def __init__(
        self,
        code: LdpcCode,
        algorithm: str = "layered-nms",
        iterations: int = 10,
        scale: float = 0.75,
        offset: float = 0.5,
        early_stop: bool = True,
    ) -> None:
        if not isinstance(code, LdpcCode):
            raise ValueError(f"code must be an LdpcCode (from nr_code, dvbs2_code, ...), got {type(code).__name__}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
        if not (isinstance(iterations, (int, np.integer)) and iterations >= 1):
            raise ValueError(f"iterations={iterations!r} must be an integer >= 1")
        if not (np.isfinite(scale) and 0 < scale <= 1):
            raise ValueError(f"scale={scale!r} must lie in (0, 1]; 0.75 is typical")
        if not (np.isfinite(offset) and offset >= 0):
            raise ValueError(f"offset={offset!r} must be >= 0; 0.5 is typical")
        if algorithm == "layered-nms-int16":
            if float(scale) not in kernels_int16.SCALE_SHIFTS:
                raise ValueError(f"layered-nms-int16 takes scale {' or '.join(map(str, kernels_int16.SCALE_SHIFTS))}, "
                                 f"got {scale!r}; use layered-nms for other scales")
            q = code.qc
            if q is None or q.perm is not None or np.any(q.brk >= 0) or np.any(q.dup):
                raise ValueError(f"layered-nms-int16 needs a quasi-cyclic code in natural order without broken or "
                                 f"repeated circulants (5G NR); {code.name} is not one: use layered-nms")
        self.code = code
        self.algorithm = algorithm
        self.iterations = int(iterations)
        self.scale = float(scale)
        self.offset = float(offset)
        self.early_stop = bool(early_stop)
        self._info_cols, self._tx_cols = self._taker(code.info_index), self._taker(code.tx_index)

    def _mother_llr(self, llr: np.ndarray) -> np.ndarray:
        """Rate recovery: sum repeated bits, 0 for punctured ones, +large for known zeros."""
        code = self.code
        out = np.empty((llr.shape[0], code.n_dec_cols), np.float32)
        bad = kernels.rate_recover(llr, code.tx_index, code.known_zero_index, FILLER_LLR, out)
        if bad >= 0:
            where = np.unravel_index(bad, llr.shape)
            raise ValueError(
                f"llr holds a non-finite value ({llr[where]}) at index {tuple(int(i) for i in where)}; "
                "clip or replace NaN/inf LLRs (e.g. np.nan_to_num) before decoding"
            )
        return out

    @staticmethod
    def _taker(index: np.ndarray) -> slice | np.ndarray:
        # a contiguous index (the usual systematic layout) is taken as a cheap slice
        if index.size and index[-1] - index[0] == index.size - 1 and np.all(np.diff(index) == 1):
            return slice(int(index[0]), int(index[-1]) + 1)
        return index

    def __call__(self, llr: np.ndarray) -> DecodeResult:
        code = self.code
        arr = np.asarray(llr)
        if arr.ndim == 0 or arr.shape[-1] != code.n:
            raise ValueError(
                f"llr must have shape [..., {code.n}] for {code.name}, got {arr.shape}; "
                "pass one LLR per transmitted bit"
            )
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"llr must be floating point, got dtype {arr.dtype}; cast with .astype(np.float32)")
        arr = arr.astype(np.float32, copy=False)
        shape = arr.shape[:-1]
        flat = np.ascontiguousarray(arr.reshape(-1, code.n))
        B = flat.shape[0]
        mother = self._mother_llr(flat)  # checks finiteness on the way
        hard = np.empty((B, code.n_dec_cols), np.uint8)
        iters = np.empty(B, np.int32)
        conv = np.empty(B, np.bool_)
        if self.algorithm == "flooding-spa":
            kernels.flooding_spa(mother.astype(np.float64), code.dec_row_ptr, code.dec_var_idx, self.iterations,
                                 self.early_stop, hard, iters, conv)
        elif self.algorithm == "layered-nms-int16":
            q = code.qc
            ql = kernels_int16.ql_for_scale(self.scale)
            kernels_int16.qc_layered_min_sum_int16(
                mother, q.row_ptr, q.cols, q.shifts, q.Z, self.iterations, self.early_stop,
                kernels_int16.SCALE_SHIFTS[self.scale], ql, hard, iters, conv,
            )  # fmt: skip
        else:
            mode = kernels.MODE_NMS if self.algorithm == "layered-nms" else kernels.MODE_OMS
            args = (self.iterations, self.early_stop, mode, np.float32(self.scale), np.float32(self.offset), hard,
                    iters, conv)
            if code.qc is not None:
                q = code.qc
                if q.perm is None:
                    kernels.qc_layered_min_sum(mother, q.row_ptr, q.cols, q.shifts, q.brk, q.dup, q.Z, *args)
                else:
                    hard_qc = np.empty_like(hard)
                    args = args[:5] + (hard_qc,) + args[6:]
                    qc_llr = np.ascontiguousarray(mother[:, q.perm])
                    kernels.qc_layered_min_sum(qc_llr, q.row_ptr, q.cols, q.shifts, q.brk, q.dup, q.Z, *args)
                    hard[:, q.perm] = hard_qc
            else:
                kernels.layered_min_sum(mother, code.dec_row_ptr, code.dec_var_idx, *args)
        return DecodeResult(
            info_bits=hard[:, self._info_cols].reshape(*shape, code.k),
            codeword=hard[:, self._tx_cols].reshape(*shape, code.n),
            converged=conv.reshape(shape),
            iterations=iters.reshape(shape),
        )


# Per code family: (algorithm, scale, offset, iterations). 5G NR's check degrees (up to 19 in BG1) suit
# scale 0.75 and the shipped BLER table was measured so; DVB-S2's low-rate codes (check degree 4-7) stall
# at 0.75 (the short 1/4 code fails at every SNR) and its long accumulator chains need more iterations:
# 0.875 and 50 iterations reproduce the threshold table of docs/ldpc.md.
FAMILY_DEFAULTS: dict[str, tuple[str, float, float, int]] = {
    "nr": ("layered-nms", 0.75, 0.5, 10),
    "dvbs2": ("layered-nms", 0.875, 0.5, 50),
    "other": ("layered-nms", 0.75, 0.5, 10),
}


def code_family(code: LdpcCode) -> str:
    """"nr", "dvbs2" or "other" (alist, pyldpc and other parity-check matrices), from the constructor's name."""
    for family in ("nr", "dvbs2"):
        if code.name.startswith(family + "_"):
            return family
    return "other"


def decoder_for(code: LdpcCode, spec: str = "auto", iterations: int | None = None) -> LdpcDecoder:
    """The decoder a command line asks for: spec is "auto" (the code family's default, FAMILY_DEFAULTS),
    "layered-nms[:SCALE]", "layered-oms[:OFFSET]" or "flooding-spa"; a name without its number takes the
    family's value. iterations=None takes the family's count.
    """
    algorithm, scale, offset, default_iterations = FAMILY_DEFAULTS[code_family(code)]
    name, _, value = str(spec).strip().partition(":")
    if name != "auto":
        algorithm = name
    if algorithm not in ALGORITHMS or (value and name not in ("layered-nms", "layered-oms", "layered-nms-int16")):
        raise ValueError(f"unknown decoder {spec!r}; choose one of {', '.join(DECODER_CHOICES)} "
                         "(e.g. layered-nms:0.875)")
    if value:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"decoder {spec!r}: {value!r} is not a number; e.g. layered-nms:0.875 "
                             "or layered-oms:0.5") from None
        if name in ("layered-nms", "layered-nms-int16"):
            scale = number
        else:
            offset = number
    return LdpcDecoder(code, algorithm, iterations=default_iterations if iterations is None else iterations,
                       scale=scale, offset=offset)


def describe_decoder(dec: LdpcDecoder) -> str:
    """One line naming the algorithm, its parameter and the iterations, e.g. for a report or a plot title."""
    param = {"layered-nms": f" scale {dec.scale:g}", "layered-nms-int16": f" scale {dec.scale:g}",
             "layered-oms": f" offset {dec.offset:g}"}.get(dec.algorithm, "")
    stop = "" if dec.early_stop else " (fixed, no early stop)"
    return f"{dec.algorithm}{param}, {dec.iterations} iterations{stop}"
