"""Burst frame: preamble, protected header, pilot blocks, payload; header packing, coding and parsing.

A burst, in symbols (one symbol per entry; P = pilot block of `pilot_len` known QPSK symbols)::

    | preamble (256, BPSK m-sequence) | P | d ... d | P | d ... d | P | ... | d ... d | P |
                                          \\__ data stream: header (448 BPSK) then payload symbols,
                                              cut into chunks of `pilot_spacing` between pilot blocks

The header is 96 bits of fields + CRC16 = 112 bits, encoded by the 5G NR LDPC code (112, 448)
(rate 1/4) and sent in BPSK, so it decodes well below the weakest MCS's threshold. Field layout (MSB first):

    version 2 | modulation 3 | code family 1 | code rate 4 | ldpc_k 14 | seq 16 |
    fragment index 8 | fragment count 8 | fragment length (bytes) 16 | packet length (bytes) 24

Modulation id 7 (ANALOG) marks an analog burst: its payload symbols are sent as they are (deep JSCC's
complex symbols: analog symbol mapping), the two lengths count complex symbols instead of bytes, code
family and code rate are 0, and the ldpc_k field holds the length in bytes (0..64) of the side information
(e.g. the codec's header) that every burst of the packet repeats after its header, protected like the header
(CRC16, rate-1/4 NR LDPC, BPSK).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sagin_hil.phy.modulation import MODULATIONS

__all__ = [
    "BurstHeader",
    "HeaderError",
    "HeaderCodec",
    "FrameFormat",
    "CODE_RATES",
    "preamble_symbols",
    "pilot_symbols",
    "HEADER_INFO_BITS",
    "HEADER_CODED_BITS",
    "ANALOG",
    "SIDE_MAX_BYTES",
    "SideInfoCodec",
]

FRAME_VERSION = 1
ANALOG = "analog"  # modulation of an analog burst: symbols sent as they are
SIDE_MAX_BYTES = 64  # side information an analog burst can carry
_HEADER_MODULATIONS = MODULATIONS + (ANALOG,)  # ids 0..7 of the 3-bit field
CODE_RATES = ("1/4", "1/3", "2/5", "1/2", "3/5", "2/3", "3/4", "4/5", "5/6", "8/9", "9/10")
CODE_FAMILIES = ("none", "nr-ldpc")
_FIELDS = (  # name, width in bits
    ("version", 2),
    ("modulation", 3),
    ("code_family", 1),
    ("code_rate", 4),
    ("ldpc_k", 14),
    ("seq", 16),
    ("frag_index", 8),
    ("frag_count", 8),
    ("frag_len", 16),
    ("total_len", 24),
)
HEADER_FIELD_BITS = sum(w for _, w in _FIELDS)  # 96
HEADER_INFO_BITS = HEADER_FIELD_BITS + 16  # + CRC16
HEADER_CODED_BITS = 4 * HEADER_INFO_BITS  # rate 1/4 BPSK: 448 symbols


class HeaderError(ValueError):
    """A header that fails its CRC or holds an invalid field; `reason` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"bad header ({reason}): {detail}")
        self.reason = reason


@dataclass(frozen=True)
class BurstHeader:
    """Fields of one burst's header.

    modulation : str (one of MODULATIONS, or ANALOG); code_rate : str (one of CODE_RATES); ldpc_k : int code
    block size (0 = uncoded); seq : packet sequence number; frag_index / frag_count : this burst's place among
    the packet's bursts; frag_len : payload bytes in this burst; total_len : payload bytes of the whole packet
    (for ANALOG both lengths count complex symbols, and ldpc_k is the side-information length in bytes).
    """

    modulation: str
    code_rate: str
    ldpc_k: int
    seq: int
    frag_index: int
    frag_count: int
    frag_len: int
    total_len: int

    @property
    def side_len(self) -> int:
        """Bytes of side information in an analog burst (0 for a digital one)."""
        return self.ldpc_k if self.modulation == ANALOG else 0

    @property
    def mcs(self) -> str:
        return ANALOG if self.modulation == ANALOG else f"{self.modulation}-{self.code_rate}"

    def pack(self) -> np.ndarray:
        """The 96 field bits, uint8, MSB first. Raises ValueError naming a field that does not fit."""
        if self.modulation not in _HEADER_MODULATIONS:
            raise ValueError(f"modulation {self.modulation!r} cannot be signalled; choose one of {_HEADER_MODULATIONS}")
        if self.modulation == ANALOG and (not 0 <= self.ldpc_k <= SIDE_MAX_BYTES or self.code_rate != CODE_RATES[0]):
            raise ValueError(f"an analog burst is uncoded (code_rate={CODE_RATES[0]!r}) with 0..{SIDE_MAX_BYTES} "
                             f"side bytes in ldpc_k, got {self}")
        if self.code_rate not in CODE_RATES:
            raise ValueError(f"code rate {self.code_rate!r} cannot be signalled; choose one of {CODE_RATES}")
        values = {
            "version": FRAME_VERSION,
            "modulation": _HEADER_MODULATIONS.index(self.modulation),
            "code_family": int(self.ldpc_k > 0 and self.modulation != ANALOG),
            "code_rate": CODE_RATES.index(self.code_rate),
            "ldpc_k": self.ldpc_k,
            "seq": self.seq,
            "frag_index": self.frag_index,
            "frag_count": self.frag_count,
            "frag_len": self.frag_len,
            "total_len": self.total_len,
        }
        bits = []
        for name, width in _FIELDS:
            v = int(values[name])
            if not 0 <= v < (1 << width):
                raise ValueError(f"header field {name}={v} does not fit in {width} bits (0..{(1 << width) - 1})")
            bits.extend((v >> np.arange(width - 1, -1, -1)) & 1)
        return np.array(bits, dtype=np.uint8)

    @classmethod
    def unpack(cls, bits: np.ndarray) -> "BurstHeader":
        """Parse 96 field bits; raises HeaderError with the reason when a field is invalid."""
        bits = np.asarray(bits)
        if bits.shape != (HEADER_FIELD_BITS,):
            raise HeaderError("length", f"expected {HEADER_FIELD_BITS} field bits, got shape {bits.shape}")
        word = int.from_bytes(np.packbits(bits != 0).tobytes(), "big")  # all fields, MSB first, in one int
        v, left = {}, HEADER_FIELD_BITS
        for name, width in _FIELDS:
            left -= width
            v[name] = (word >> left) & ((1 << width) - 1)
        if v["version"] != FRAME_VERSION:
            raise HeaderError("version", f"frame version {v['version']}, this receiver speaks {FRAME_VERSION}")
        analog = v["modulation"] == len(MODULATIONS)  # the 3-bit field has no unused id left
        if v["code_rate"] >= len(CODE_RATES):
            raise HeaderError("code_rate", f"code rate id {v['code_rate']} is not one of 0..{len(CODE_RATES) - 1}")
        if analog and (v["code_family"] or v["code_rate"] or v["ldpc_k"] > SIDE_MAX_BYTES):
            raise HeaderError("analog", f"an analog burst with code family {v['code_family']}, code rate id "
                              f"{v['code_rate']}, {v['ldpc_k']} side bytes (max {SIDE_MAX_BYTES})")
        if not analog and (v["code_family"] != int(v["ldpc_k"] > 0) or (v["ldpc_k"] and not 25 <= v["ldpc_k"] <= 8448)):
            raise HeaderError("ldpc_k", f"code family {v['code_family']} with ldpc_k={v['ldpc_k']} (need 25..8448)")
        if v["frag_count"] == 0 or v["frag_index"] >= v["frag_count"]:
            raise HeaderError("fragment", f"fragment index {v['frag_index']} of count {v['frag_count']}")
        if v["frag_len"] > v["total_len"] or (v["frag_len"] == 0 and v["total_len"] > 0):
            raise HeaderError("length", f"fragment length {v['frag_len']} vs packet length {v['total_len']}")
        return cls(
            _HEADER_MODULATIONS[v["modulation"]], CODE_RATES[v["code_rate"]], v["ldpc_k"], v["seq"],
            v["frag_index"], v["frag_count"], v["frag_len"], v["total_len"],
        )  # fmt: skip


class HeaderCodec:
    """Header <-> 448 BPSK symbols: CRC16, NR LDPC (112, 448), BPSK.

    Input (encode): BurstHeader.  Output: float32 BPSK symbols [448] (+1 for bit 0).
    Input (decode): LLRs float32 [448].  Output: BurstHeader; raises HeaderError("crc", ...) when the
    decoded bits fail the CRC and other reasons (see BurstHeader.unpack) for invalid fields.
    """

    def __init__(self, iterations: int = 20):
        from sagin_hil.phy.ldpc import LdpcDecoder, nr_code

        self.code = nr_code(HEADER_INFO_BITS, HEADER_CODED_BITS)
        self.decoder = LdpcDecoder(self.code, algorithm="layered-nms", iterations=iterations)

    def encode_bits(self, header: BurstHeader) -> np.ndarray:
        from sagin_hil.phy.crc import crc_attach

        return self.code.encode(crc_attach(header.pack(), "crc16"))

    def encode(self, header: BurstHeader) -> np.ndarray:
        return (1.0 - 2.0 * self.encode_bits(header)).astype(np.float32)

    def decode(self, llr: np.ndarray) -> BurstHeader:
        from sagin_hil.phy.crc import crc_check

        llr = np.asarray(llr, dtype=np.float32)
        if llr.shape != (HEADER_CODED_BITS,):
            raise HeaderError("length", f"expected {HEADER_CODED_BITS} header LLRs, got shape {llr.shape}")
        if not np.isfinite(llr).all():
            llr = np.nan_to_num(llr, nan=0.0, posinf=1e3, neginf=-1e3)
        info = self.decoder(llr).info_bits
        if not bool(crc_check(info, "crc16")):
            raise HeaderError("crc", "header CRC16 mismatch after decoding (corrupted burst or noise)")
        return BurstHeader.unpack(info[:HEADER_FIELD_BITS])


class SideInfoCodec:
    """An analog burst's side information <-> BPSK symbols, protected as the header is: CRC16, NR LDPC at
    rate 1/4 (k = 8 n_bytes + 16), BPSK.

    Input (encode): bytes [n_bytes].  Output: float32 BPSK symbols [symbols(n_bytes)].
    Input (decode): LLRs float32 [symbols(n_bytes)].  Output: bytes; raises HeaderError("side", ...) when
    the decoded bits fail their CRC.
    """

    def __init__(self, n_bytes: int, iterations: int = 20):
        from sagin_hil.phy.ldpc import LdpcDecoder, nr_code

        if not 0 < n_bytes <= SIDE_MAX_BYTES:
            raise ValueError(f"side information of {n_bytes} bytes; an analog burst carries 1..{SIDE_MAX_BYTES}")
        self.n_bytes = n_bytes
        self.code = nr_code(8 * n_bytes + 16, self.symbols(n_bytes))
        self.decoder = LdpcDecoder(self.code, algorithm="layered-nms", iterations=iterations)

    @staticmethod
    def symbols(n_bytes: int) -> int:
        """BPSK symbols that carry n_bytes of side information (0 for none)."""
        return 4 * (8 * n_bytes + 16) if n_bytes else 0

    def encode(self, side: bytes) -> np.ndarray:
        from sagin_hil.phy.crc import crc_attach

        if len(side) != self.n_bytes:
            raise ValueError(f"side information of {len(side)} bytes given to a {self.n_bytes}-byte codec")
        bits = np.unpackbits(np.frombuffer(bytes(side), np.uint8))
        return (1.0 - 2.0 * self.code.encode(crc_attach(bits, "crc16"))).astype(np.float32)

    def decode(self, llr: np.ndarray) -> bytes:
        from sagin_hil.phy.crc import crc_check

        info = self.decoder(np.nan_to_num(np.asarray(llr, np.float32), nan=0.0, posinf=1e3, neginf=-1e3)).info_bits
        if not bool(crc_check(info, "crc16")):
            raise HeaderError("side", "side information CRC16 mismatch after decoding")
        return np.packbits(info[: 8 * self.n_bytes]).tobytes()


@lru_cache(maxsize=1)
def preamble_symbols() -> np.ndarray:
    """256 BPSK symbols: the 255-chip m-sequence of x^8 + x^6 + x^5 + x^4 + 1, then its first chip again.

    An m-sequence has a flat periodic autocorrelation (-1 off-peak) and, unlike a Zadoff-Chu sequence, no
    coupling between frequency offset and correlation-peak position.
    """
    state = np.ones(8, dtype=np.uint8)
    chips = np.empty(255, dtype=np.uint8)
    for i in range(255):
        chips[i] = state[7]
        fb = state[7] ^ state[5] ^ state[4] ^ state[3]  # taps 8, 6, 5, 4
        state[1:] = state[:-1]
        state[0] = fb
    chips = np.concatenate([chips, chips[:1]])
    return (1.0 - 2.0 * chips).astype(np.complex64)


def pilot_symbols(length: int) -> np.ndarray:
    """`length` known unit-energy QPSK pilot symbols (the same in every pilot block)."""
    rng = np.random.Generator(np.random.PCG64(0x5A61))  # fixed: a part of the frame format
    bits = rng.integers(0, 2, (length, 2))
    return (((1 - 2 * bits[:, 0]) + 1j * (1 - 2 * bits[:, 1])) / np.sqrt(2)).astype(np.complex64)


@lru_cache(maxsize=16)
def _cached(make, length: int) -> np.ndarray:
    """The known symbols, generated once per format (a receiver reads them for every burst); read-only."""
    out = np.array(make() if make is preamble_symbols else make(length))
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class FrameFormat:
    """Where preamble, pilots and data symbols sit in a burst.

    Parameters: pilot_len (symbols per pilot block), pilot_spacing (data symbols between pilot blocks).
    """

    pilot_len: int = 16
    pilot_spacing: int = 384

    def __post_init__(self):
        if self.pilot_len < 4 or self.pilot_spacing < 16:
            raise ValueError(f"pilot_len >= 4 and pilot_spacing >= 16 required, got {self.pilot_len}, {self.pilot_spacing}")

    @property
    def preamble(self) -> np.ndarray:
        return _cached(preamble_symbols, 0)

    @property
    def pilots(self) -> np.ndarray:
        return _cached(pilot_symbols, self.pilot_len)

    def n_pilot_blocks(self, n_data: int) -> int:
        return -(-n_data // self.pilot_spacing) + 1

    def burst_len(self, n_data: int) -> int:
        """Symbols in a burst that carries `n_data` data symbols (header included)."""
        return self.preamble.size + n_data + self.n_pilot_blocks(n_data) * self.pilot_len

    def layout(self, n_data: int) -> tuple[np.ndarray, np.ndarray]:
        """Burst positions (from the burst start) of the data symbols [n_data] and of each pilot block's
        first symbol [n_blocks]."""
        d = np.arange(n_data)
        data_pos = self.preamble.size + self.pilot_len * (d // self.pilot_spacing + 1) + d
        blocks = np.arange(self.n_pilot_blocks(n_data))
        pilot_pos = self.preamble.size + blocks * (self.pilot_spacing + self.pilot_len)
        pilot_pos[-1] = self.preamble.size + n_data + (blocks.size - 1) * self.pilot_len  # after a short last chunk
        return data_pos, pilot_pos

    def assemble(self, data: np.ndarray) -> np.ndarray:
        """Preamble + data with pilot blocks inserted: complex64 [burst_len(n_data)]."""
        data = np.asarray(data, dtype=np.complex64)
        out = np.empty(self.burst_len(data.size), dtype=np.complex64)
        out[: self.preamble.size] = self.preamble
        data_pos, pilot_pos = self.layout(data.size)
        out[data_pos] = data
        out[pilot_pos[:, None] + np.arange(self.pilot_len)] = self.pilots
        return out
