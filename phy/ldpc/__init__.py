"""LDPC codes: 5G NR, DVB-S2 and any parity-check matrix; encoders and decoders (see docs/ldpc.md).

Example::

    code = nr_code(k=8448, n=16896)
    cw = code.encode(bits)                       # uint8 [..., k] -> [..., n]
    res = LdpcDecoder(code, "layered-nms", iterations=10)(llr)   # llr float32 [..., n], > 0 means bit 0
"""

from sagin_hil.phy.ldpc.code import LdpcCode, QcGraph, code_from_alist, code_from_parity_matrix, write_alist
from sagin_hil.phy.ldpc.decoder import (
    ALGORITHMS,
    DECODER_CHOICES,
    DecodeResult,
    LdpcDecoder,
    code_family,
    decoder_for,
    describe_decoder,
)
from sagin_hil.phy.ldpc.dvbs2 import DVBS2_RATES, dvbs2_code
from sagin_hil.phy.ldpc.nr import nr_code

__all__ = [
    "LdpcCode",
    "QcGraph",
    "LdpcDecoder",
    "DecodeResult",
    "ALGORITHMS",
    "DECODER_CHOICES",
    "code_family",
    "decoder_for",
    "describe_decoder",
    "nr_code",
    "dvbs2_code",
    "DVBS2_RATES",
    "code_from_alist",
    "code_from_parity_matrix",
    "write_alist",
]
