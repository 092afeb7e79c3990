"""Packet link: bytes -> bursts of complex64 samples -> bytes, through coding, framing, pulse shaping and sync.

Transmit chain per packet: the payload is cut into code blocks of ``ldpc_k - 24`` bits (rounded down to
whole bytes), each gets a CRC24A, is encoded by the 5G NR LDPC code (ldpc_k, ldpc_k / rate) and scrambled
by a Gold sequence seeded from the sequence number and block index. Blocks are grouped into bursts of at
most ``max_burst_symbols`` data symbols; each burst (fragment) carries its own header (see phy/frame.py) and
its bursts are separated by ``guard_symbols`` of silence. The receiver finds every burst in a sample buffer,
synchronises it (phy/sync.py), reads its header, demaps and decodes its blocks, and reassembles the packet;
blocks that fail their CRC (or whose burst was lost) are zero-filled.

Analog payloads (deep JSCC's complex symbols) use the same bursts: `modulate_symbols` sends the symbols as
they are after the header (modulation ANALOG, no coding) and, when given, side information (the codec's
header) that every burst repeats, protected like the header. The receiver hands back the equalised symbols
(`RxPacket.analog`, zeros where a burst was lost), the side information (`RxPacket.payload`, b"" when no
copy decoded) and the SNR it measured on the preamble and pilots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from itertools import accumulate
from statistics import fmean

import numba
import numpy as np

from sagin_hil.phy.analog import fade_guard
from sagin_hil.phy.frame import (
    ANALOG,
    CODE_RATES,
    HEADER_CODED_BITS,
    SIDE_MAX_BYTES,
    BurstHeader,
    FrameFormat,
    HeaderCodec,
    HeaderError,
    SideInfoCodec,
)
from sagin_hil.phy.mcs import BITS_PER_SYMBOL, get_mcs
from sagin_hil.phy.modulation import Constellation
from sagin_hil.phy.pulse import RrcInterpolator
from sagin_hil.phy.stage_clock import StageClock
from sagin_hil.phy.sync import BurstDetector, BurstSynchronizer, append_finite, fir_range

__all__ = ["LinkConfig", "PacketTransmitter", "PacketReceiver", "RxPacket", "PacketPlan", "AnalogPlan", "ANALOG"]

CRC_NAME, CRC_BITS = "crc24a", 24


@dataclass(frozen=True)
class LinkConfig:
    """Parameters both ends of a link share (a receiver rejects bursts whose header disagrees).

    Parameters
    ----------
    symbol_rate_hz : float
        Symbol rate; the sample rate is symbol_rate_hz * sps.
    sps : int
        Samples per symbol (>= 2).
    rolloff, span_symbols : float, int
        RRC roll-off and filter length in symbols.
    ldpc_k : int
        Information bits per 5G NR LDPC code block, CRC24A included (33..8448).
    iterations, decoder : int, str
        LdpcDecoder iterations and algorithm ("layered-nms", "layered-oms", "flooding-spa").
    demapper : str
        "maxlog" or "exact".
    pilot_len, pilot_spacing : int
        Pilot block length and data symbols between pilot blocks.
    max_burst_symbols : int
        Data symbols per burst (header included); longer packets are fragmented into several bursts.
    guard_symbols : int
        Silence after each burst.
    detection_threshold : float
        BurstDetector threshold on its normalised metric.
    track_clock : bool
        Estimate the sample-clock offset on the pilots.
    phase_tracking : str
        "poly" (one polynomial phase and one gain per burst), "block" (plus the channel interpolated
        between pilot blocks: follows fading) or "auto" (block only when the pilots show fading).
    scrambler_seed : int
        Mixed into every code block's Gold sequence seed (< 2^14).
    recover_bursts : bool
        Read a burst whose preamble or header was lost (a deep fade, a burst of interference) where the
        packet's heard bursts put it, with the header they imply: bursts follow each other at known lengths,
        and a packet's headers differ only in the fragment's index and length.
    """

    symbol_rate_hz: float = 1.0e6
    sps: int = 4
    rolloff: float = 0.25
    span_symbols: int = 16
    ldpc_k: int = 1024
    iterations: int = 10
    decoder: str = "layered-nms"
    demapper: str = "maxlog"
    pilot_len: int = 16
    pilot_spacing: int = 384
    max_burst_symbols: int = 16384
    guard_symbols: int = 32
    detection_threshold: float = 0.18
    track_clock: bool = True
    phase_tracking: str = "auto"
    scrambler_seed: int = 0x2A5
    recover_bursts: bool = True

    def __post_init__(self):
        checks = [
            (self.symbol_rate_hz > 0, "symbol_rate_hz must be > 0"),
            (int(self.sps) == self.sps and self.sps >= 2, "sps must be an integer >= 2"),
            (0 < self.rolloff <= 1, "rolloff must be in (0, 1]"),
            (CRC_BITS + 8 < self.ldpc_k <= 8448, "ldpc_k must be in 33..8448 (5G NR code block sizes)"),
            (self.iterations >= 1, "iterations must be >= 1"),
            (self.demapper in ("maxlog", "exact"), "demapper must be 'maxlog' or 'exact'"),
            (self.max_burst_symbols >= 2 * HEADER_CODED_BITS, f"max_burst_symbols must be >= {2 * HEADER_CODED_BITS}"),
            (self.guard_symbols >= 0, "guard_symbols must be >= 0"),
            (0 < self.detection_threshold < 1, "detection_threshold must be in (0, 1)"),
            (0 <= self.scrambler_seed < 2**14, "scrambler_seed must be in [0, 2^14)"),
            (self.phase_tracking in ("auto", "poly", "block"), "phase_tracking must be 'auto', 'poly' or 'block'"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"LinkConfig: {msg} (got {self})")
        FrameFormat(self.pilot_len, self.pilot_spacing)  # validates the pilot pattern

    @property
    def sample_rate_hz(self) -> float:
        return self.symbol_rate_hz * self.sps

    @property
    def frame(self) -> FrameFormat:
        return FrameFormat(self.pilot_len, self.pilot_spacing)


@lru_cache(maxsize=64)
def _rate_str(rate: float) -> str:
    s = str(Fraction(rate).limit_denominator(20))
    if s not in CODE_RATES:
        raise ValueError(f"code rate {rate} has no header code; choose one of {CODE_RATES}")
    return s


@dataclass(frozen=True)
class PacketPlan:
    """How a packet of `total_len` bytes is split into code blocks and bursts (both ends compute it)."""

    modulation: str
    code_rate: str
    k: int
    n: int
    block_bytes: int
    total_len: int
    blocks_per_burst: int

    @classmethod
    @lru_cache(maxsize=256)  # both ends plan every packet; a plan is immutable
    def make(cls, cfg: LinkConfig, mcs: str, total_len: int) -> "PacketPlan":
        m = get_mcs(mcs)
        rate = _rate_str(m.code_rate)
        k = cfg.ldpc_k
        n = int(round(k / float(Fraction(rate))))
        bps = BITS_PER_SYMBOL[m.modulation]
        per_burst = max(1, ((cfg.max_burst_symbols - HEADER_CODED_BITS) * bps) // n)
        plan = cls(m.modulation, rate, k, n, (k - CRC_BITS) // 8, int(total_len), per_burst)
        if not 0 <= total_len < 2**24:
            raise ValueError(f"payload of {total_len} bytes exceeds the 16 MiB header limit; split it")
        if plan.frag_count > 255:
            raise ValueError(
                f"payload of {total_len} bytes needs {plan.frag_count} bursts at {mcs} (max 255); "
                "raise ldpc_k or max_burst_symbols, or split the payload"
            )
        if plan.blocks_per_burst * plan.block_bytes >= 2**16:
            raise ValueError("a burst would carry >= 64 KiB; lower max_burst_symbols")
        return plan

    @property
    def n_blocks(self) -> int:
        return -(-self.total_len // self.block_bytes)

    @property
    def frag_count(self) -> int:
        return max(1, -(-self.n_blocks // self.blocks_per_burst))

    @property
    def bits_per_symbol(self) -> int:
        return BITS_PER_SYMBOL[self.modulation]

    @property
    def constellation_rate(self) -> str | None:
        return self.code_rate if "apsk" in self.modulation else None

    def frag_blocks(self, i: int) -> range:
        return range(i * self.blocks_per_burst, min((i + 1) * self.blocks_per_burst, self.n_blocks))

    def frag_len(self, i: int) -> int:
        blocks = self.frag_blocks(i)
        return max(0, min(blocks.stop * self.block_bytes, self.total_len) - blocks.start * self.block_bytes)

    def n_data(self, i: int) -> int:
        """Data symbols of burst i: header plus payload (padded to whole symbols)."""
        return HEADER_CODED_BITS + -(-len(self.frag_blocks(i)) * self.n // self.bits_per_symbol)


@dataclass(frozen=True)
class AnalogPlan:
    """How `total_len` analog symbols are split into bursts of at most `per_burst`, each burst also carrying
    `side_len` bytes of side information (both ends compute it)."""

    total_len: int
    per_burst: int
    side_len: int = 0

    @classmethod
    @lru_cache(maxsize=256)
    def make(cls, cfg: LinkConfig, total_len: int, side_len: int = 0) -> "AnalogPlan":
        side_symbols = SideInfoCodec.symbols(side_len)
        plan = cls(int(total_len), cfg.max_burst_symbols - HEADER_CODED_BITS - side_symbols, int(side_len))
        if not 0 <= side_len <= SIDE_MAX_BYTES or plan.per_burst < 1:
            raise ValueError(f"{side_len} bytes of side information do not fit an analog burst of "
                             f"max_burst_symbols={cfg.max_burst_symbols} (at most {SIDE_MAX_BYTES} bytes)")
        if not 0 < plan.total_len < 2**24:
            raise ValueError(f"an analog packet carries 1..{2**24 - 1} symbols, got {total_len}; split it")
        if plan.per_burst >= 2**16:
            raise ValueError(f"max_burst_symbols={cfg.max_burst_symbols} leaves >= 65536 analog symbols per burst "
                             "(the header's 16-bit length); lower it")
        if plan.frag_count > 255:
            raise ValueError(f"{total_len} analog symbols need {plan.frag_count} bursts (max 255); "
                             "raise max_burst_symbols or split the payload")
        return plan

    @property
    def frag_count(self) -> int:
        return -(-self.total_len // self.per_burst)

    def frag_slice(self, i: int) -> slice:
        return slice(i * self.per_burst, min((i + 1) * self.per_burst, self.total_len))

    def frag_len(self, i: int) -> int:
        sl = self.frag_slice(i)
        return sl.stop - sl.start

    @property
    def side_symbols(self) -> int:
        return SideInfoCodec.symbols(self.side_len)

    def n_data(self, i: int) -> int:
        """Data symbols of burst i: header, side information and its analog symbols."""
        return HEADER_CODED_BITS + self.side_symbols + self.frag_len(i)


@lru_cache(maxsize=32)
def _constellation(modulation: str, rate: str | None) -> Constellation:
    return Constellation(modulation, rate)  # built once: a receiver needs one per burst


@lru_cache(maxsize=1)
def _header_codec() -> HeaderCodec:
    return HeaderCodec()  # stateless: every transmitter and receiver shares one


@lru_cache(maxsize=8)
def _side_codec(n_bytes: int) -> SideInfoCodec:
    return SideInfoCodec(n_bytes)


@lru_cache(maxsize=16)
def _decoder(k: int, n: int, algorithm: str, iterations: int):
    """The payload decoder of a plan (built once: a receiver decodes every packet with it)."""
    from sagin_hil.phy.ldpc import LdpcDecoder, nr_code

    return LdpcDecoder(nr_code(k, n), algorithm=algorithm, iterations=iterations)


@numba.njit(cache=True)
def _clip_llr(llr, limit):
    """In place: LLRs clipped to +-limit, NaN to 0 (what garbage samples must not turn into)."""
    flat = llr.reshape(-1)
    for i in range(flat.size):
        v = flat[i]
        flat[i] = 0.0 if v != v else min(max(v, -limit), limit)


@numba.njit(cache=True)
def _hard_errors(llr, codeword, ok):
    """Channel hard decisions that disagree with the decoded codeword, over the blocks that passed CRC."""
    n = 0
    for b in range(llr.shape[0]):
        if ok[b]:
            for i in range(llr.shape[1]):
                n += (llr[b, i] < 0.0) != (codeword[b, i] != 0)
    return n


def _scrambling_seeds(cfg: LinkConfig, seq: int, blocks) -> list[int]:
    """The Gold sequence seed of each code block in `blocks` of packet `seq`."""
    return [((seq & 0xFFFF) << 14 | (blk & 0x3FFF)) ^ cfg.scrambler_seed for blk in blocks]


class PacketTransmitter:
    """Bytes -> complex64 samples: CRC24A, NR LDPC, scrambling, mapping, framing, RRC shaping.

    Parameters
    ----------
    cfg : LinkConfig, optional

    Input (modulate)
    ----------------
    payload : bytes
    mcs : str
        An MCS name of phy.mcs, e.g. "qpsk-1/2".
    seq : int
        Packet sequence number, 0..65535.

    Output
    ------
    complex64 [n] at cfg.sample_rate_hz, mean power 1: one burst per fragment, each followed by
    `guard_symbols` of silence; n / cfg.sample_rate_hz == air_time_s(len(payload), mcs).
    """

    def __init__(self, cfg: LinkConfig | None = None):
        self.cfg = cfg or LinkConfig()
        self.fmt = self.cfg.frame
        self.header_codec = _header_codec()
        self.clock = StageClock()  # enable it to split the wall time by stage (sagin-hil bench rx)

    def plan(self, n_bytes: int, mcs: str) -> PacketPlan:
        return PacketPlan.make(self.cfg, mcs, n_bytes)

    def _burst_symbols(self, plan: PacketPlan, i: int) -> int:
        return self.fmt.burst_len(plan.n_data(i)) + self.cfg.guard_symbols

    def air_time_s(self, n_bytes: int, mcs: str, side_len: int = 0) -> float:
        """Duration of the samples `modulate` returns for a payload of n_bytes, in seconds (mcs ANALOG:
        of the samples `modulate_symbols` returns for n_bytes analog symbols and side_len side bytes)."""
        plan = AnalogPlan.make(self.cfg, n_bytes, side_len) if mcs == ANALOG else self.plan(n_bytes, mcs)
        n_sym = sum(self._burst_symbols(plan, i) for i in range(plan.frag_count)) + self.cfg.span_symbols // 2
        return n_sym / self.cfg.symbol_rate_hz

    def encode_blocks(self, payload: bytes, plan: PacketPlan, seq: int) -> np.ndarray:
        """Scrambled codewords uint8 [n_blocks, n]."""
        from sagin_hil.phy.crc import crc_attach
        from sagin_hil.phy.ldpc import nr_code
        from sagin_hil.phy.scrambler import gold_sequences

        bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
        info = np.zeros((plan.n_blocks, plan.k - CRC_BITS), dtype=np.uint8)
        padded = np.zeros(plan.n_blocks * plan.block_bytes * 8, dtype=np.uint8)
        padded[: bits.size] = bits
        info[:, : plan.block_bytes * 8] = padded.reshape(plan.n_blocks, plan.block_bytes * 8)
        cw = nr_code(plan.k, plan.n).encode(crc_attach(info, CRC_NAME)) if plan.n_blocks else info[:, :0]
        if plan.n_blocks:
            cw ^= gold_sequences(_scrambling_seeds(self.cfg, seq, range(plan.n_blocks)), plan.n)
        return cw

    @staticmethod
    def _check_seq(seq: int) -> None:
        if not 0 <= int(seq) < 2**16:
            raise ValueError(f"seq={seq} must be in [0, 65535]; wrap it modulo 2^16")

    def _shape(self, bursts: list[np.ndarray]) -> np.ndarray:
        """Bursts, each followed by its guard, through the RRC pulse shaper; mean power 1."""
        with self.clock("pulse_shaping"):
            guard = np.zeros(self.cfg.guard_symbols, np.complex64)
            stream = [part for b in bursts for part in (b, guard)]
            stream.append(np.zeros(self.cfg.span_symbols // 2, np.complex64))  # flush the pulse tails
            x = RrcInterpolator(self.cfg.sps, self.cfg.rolloff, self.cfg.span_symbols)(np.concatenate(stream))
            return (x / np.sqrt(np.mean(np.abs(x) ** 2))).astype(np.complex64)

    def modulate_symbols(self, symbols: np.ndarray, seq: int, side: bytes = b"") -> np.ndarray:
        """Analog payload: complex `symbols` (e.g. deep JSCC's, unit mean power) sent as they are, after the
        header of each burst and between its pilots; `side` (<= 64 bytes, e.g. the codec's header) is
        repeated in every burst, protected like the header. Output as `modulate`."""
        sym = np.asarray(symbols)
        if sym.ndim != 1 or not np.iscomplexobj(sym) or not np.all(np.isfinite(sym)):
            raise ValueError(f"analog symbols must be a finite 1-D complex array, got {sym.dtype} {sym.shape}")
        self._check_seq(seq)
        plan = AnalogPlan.make(self.cfg, sym.size, len(side))
        with self.clock("header_framing"):
            side_sym = _side_codec(len(side)).encode(bytes(side)) if side else np.zeros(0, np.float32)
            bursts = []
            for i in range(plan.frag_count):
                hdr = BurstHeader(ANALOG, CODE_RATES[0], plan.side_len, seq, i, plan.frag_count, plan.frag_len(i),
                                  plan.total_len)
                data = np.concatenate([self.header_codec.encode(hdr), side_sym, sym[plan.frag_slice(i)]])
                bursts.append(self.fmt.assemble(data))
        return self._shape(bursts)

    def modulate(self, payload: bytes, mcs: str, seq: int) -> np.ndarray:
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise ValueError(f"payload must be bytes, got {type(payload).__name__}; encode it first")
        self._check_seq(seq)
        payload = bytes(payload)
        plan = self.plan(len(payload), mcs)
        with self.clock("crc_ldpc_scrambling"):
            cw = self.encode_blocks(payload, plan, seq)
        const = _constellation(plan.modulation, plan.constellation_rate)
        bursts = []
        for i in range(plan.frag_count):
            with self.clock("mapping"):
                bits = cw[plan.frag_blocks(i)].ravel()
                pad = (-bits.size) % const.bits_per_symbol
                syms = const.map(np.concatenate([bits, np.zeros(pad, np.uint8)]))
            with self.clock("header_framing"):
                hdr = BurstHeader(plan.modulation, plan.code_rate, plan.k, seq, i, plan.frag_count, plan.frag_len(i),
                                  plan.total_len)
                bursts.append(self.fmt.assemble(np.concatenate([self.header_codec.encode(hdr), syms])))
        return self._shape(bursts)


@dataclass
class RxPacket:
    """What the receiver recovered from one packet.

    payload: bytes (total length as sent; failed blocks zero-filled); block_ok: bool [n_blocks];
    header_ok: a header decoded; mcs, seq: from the header; snr_db (Es/N0), evm_rms (fraction), cfo_hz,
    clock_offset_ppm: averaged over the bursts; ber: pre-FEC bit error rate on blocks that passed CRC;
    bler: failed fraction of n_blocks; start_sample: raw sample where the packet's first burst starts
    (inferred from a later burst when the first is lost; the first detection when no header decoded);
    n_bursts: bursts expected (frag_count), bursts_ok: bursts whose header decoded, bursts_recovered: lost
    bursts read where the others put them (LinkConfig.recover_bursts); header_errors: reasons of skipped
    bursts; symbols: equalised payload symbols of the first burst heard (<= 4096, for plots).
    An analog packet (mcs ANALOG) has `analog`: the equalised symbols [total_len] (zeros where a burst was
    lost), payload: its side information (b"" when no burst's copy decoded), and counts bursts as its blocks
    (block_ok per burst, bler = lost fraction). On a fading channel (per-symbol noise variances) its deep-faded
    symbols are replaced by their LMMSE estimate (phy/analog.py:fade_guard), and `analog_snr_db`, the SNR to
    tell its decoder, is that of the error left; otherwise analog_snr_db = snr_db.
    """

    payload: bytes
    block_ok: np.ndarray
    header_ok: bool
    mcs: str
    seq: int
    snr_db: float
    evm_rms: float
    cfo_hz: float
    ber: float
    bler: float
    n_blocks: int
    start_sample: int
    clock_offset_ppm: float = 0.0
    n_bursts: int = 0
    bursts_ok: int = 0
    bursts_recovered: int = 0
    header_errors: list = field(default_factory=list)
    symbols: np.ndarray | None = None
    analog: np.ndarray | None = None
    analog_snr_db: float = float("nan")


@dataclass
class _Burst:
    header: BurstHeader
    llr: np.ndarray | None  # [n_frag_blocks, n]; None for an analog burst
    snr_db: float
    evm_rms: float
    cfo_cpsym: float
    drift: float
    start: float  # raw sample where this burst's first transmitted sample arrived
    symbols: np.ndarray  # equalised payload symbols (the first 4096 of a digital burst, all of an analog one)
    side: bytes | None = None  # an analog burst's side information, None when it failed its CRC
    noise_var: np.ndarray | float = 0.0  # an analog burst's noise variance per payload symbol (or one for all)


class PacketReceiver:
    """Complex samples -> RxPacket: detection, synchronisation, header, demapping, decoding, reassembly.

    Parameters
    ----------
    cfg : LinkConfig, optional
        Must equal the transmitter's.

    Input (demodulate)
    ------------------
    samples : complex [n] at cfg.sample_rate_hz
        Bursts anywhere in it (after noise: a propagation delay), with a residual carrier offset up to
        +-5 % of the symbol rate (+-12.5 % detectable), a slow Doppler rate and a sample-clock offset.

    Output
    ------
    RxPacket, or None when no preamble is detected. Garbled bursts are skipped with their reason in
    `header_errors`; NaN, inf, truncated or absurd sample values never raise.
    """

    def __init__(self, cfg: LinkConfig | None = None):
        self.cfg = cfg or LinkConfig()
        self.fmt = self.cfg.frame
        self.header_codec = _header_codec()
        self.detector = BurstDetector(self.fmt.preamble, self.cfg.sps, self.cfg.detection_threshold)
        self.sync = BurstSynchronizer(self.fmt, self.cfg.sps, self.cfg.rolloff, self.cfg.span_symbols, self.cfg.track_clock,
                                      self.cfg.phase_tracking)
        self.clock = self.sync.clock = StageClock()  # enable it to split the wall time by stage (bench rx)
        self.mf_taps = self.sync.taps.astype(np.float32)  # the detection filter's, float32 as its samples
        # samples from a burst's first transmitted sample to its preamble's symbol 0 (the RRC's half length)
        self.tx_delay = self.cfg.span_symbols * self.cfg.sps // 2
        # the header stage assumes at least one more pilot block after the header
        self._hdr_n_data = HEADER_CODED_BITS + self.fmt.pilot_spacing

    def _read_burst(self, x: np.ndarray, det) -> tuple[_Burst, float]:
        with self.clock("synchronisation"):
            t0, cfo = self.sync.acquire(x, det.index, det.frac, det.cfo_cpsym)
        hb = self.sync.symbols(x, t0, cfo, self._hdr_n_data, n_used=HEADER_CODED_BITS)
        with self.clock("header"):
            header = self.header_codec.decode((4.0 * hb.data.real / hb.noise_var_of(0)).astype(np.float32))
        return self._read_body(x, header, t0, cfo)

    def _read_body(self, x: np.ndarray, header: BurstHeader, t0: float, cfo: float,
                   phase_order: int = 2) -> tuple[_Burst, float]:
        """The rest of a burst once its header is known (read, or implied by the packet's other bursts)."""
        if header.modulation == ANALOG:
            return self._read_analog(x, header, t0, cfo, phase_order)
        try:
            plan = PacketPlan.make(self.cfg, header.mcs, header.total_len)
        except ValueError as exc:
            raise HeaderError("mcs", str(exc)) from None
        if header.ldpc_k != plan.k or header.frag_count != plan.frag_count or header.frag_len != plan.frag_len(header.frag_index):
            raise HeaderError("plan", f"header {header} does not match this receiver's LinkConfig (ldpc_k={plan.k})")
        n_data = plan.n_data(header.frag_index)
        sb = self.sync.symbols(x, t0, cfo, n_data, phase_order=phase_order)
        const = _constellation(plan.modulation, plan.constellation_rate)
        n_blk = len(plan.frag_blocks(header.frag_index))
        with self.clock("demapping"):
            llr = const.demap(sb.data[HEADER_CODED_BITS:], sb.noise_var_of(HEADER_CODED_BITS), self.cfg.demapper)
            llr = llr[: n_blk * plan.n].reshape(n_blk, plan.n)
            _clip_llr(llr, 1e3)  # garbage-proof
        payload_syms = sb.data[HEADER_CODED_BITS : HEADER_CODED_BITS + 4096].astype(np.complex64)
        burst = _Burst(header, llr, sb.snr_db, sb.evm_rms, sb.cfo_cpsym, sb.drift, sb.t0_raw - self.tx_delay, payload_syms)
        return burst, sb.t0_raw + self.fmt.burst_len(n_data) * self.cfg.sps

    def read_lost(self, x: np.ndarray, header: BurstHeader, n_data: int, start: float, cfo: float,
                  reach: int) -> _Burst | None:
        """A burst of n_data data symbols whose header is implied, read where it should start (`start`, the raw
        sample of x where its first transmitted sample arrives, within +-reach samples) with the carrier
        offset `cfo` (cycles per symbol) of a burst heard; None where x does not hold all of it or nothing
        usable is there."""
        t0 = start + self.tx_delay
        margin = self.sync.taps.size + 8 * self.cfg.sps + reach
        if t0 < margin or t0 + self.fmt.burst_len(n_data) * self.cfg.sps + margin > x.size:
            return None
        t0, contrast = self._known_timing(x, t0, n_data, reach)
        if contrast < 3.0:  # the pilots stand out of the noise by far less: nothing of this burst is there
            return None
        try:  # the carrier offset is the neighbour's (milliseconds away): fit one phase, not a frequency, so
            # blocks faded to noise (why the preamble was lost) cannot mislead a frequency fit by a turn
            return self._read_body(x, header, t0, cfo, phase_order=0)[0]
        except (HeaderError, ValueError, ZeroDivisionError, FloatingPointError, IndexError, np.linalg.LinAlgError):
            return None

    def _known_timing(self, x: np.ndarray, t0: float, n_data: int, reach: int) -> tuple[float, float]:
        """(t0 moved by the whole number of samples, within +-reach, where the burst's preamble and pilots
        correlate best with the matched filter's output, that correlation over its median across the
        shifts). The pieces (pilot-length) are summed without their phase: a fade or a carrier offset turns
        them, not their energy. The synchroniser's clock fit then takes the remaining fraction of a sample."""
        fmt, sps, L = self.fmt, self.cfg.sps, self.fmt.pilot_len
        _, pilot_pos = fmt.layout(n_data)
        n_pre = fmt.preamble.size // L * L
        known = np.concatenate([fmt.preamble[:n_pre]] + [fmt.pilots] * pilot_pos.size)
        sym = (np.concatenate([np.arange(0, n_pre, L), pilot_pos])[:, None] + np.arange(L)).ravel()
        base = int(round(t0)) + self.sync.mf_delay
        shifts = np.arange(-reach, reach + 1)
        lo = base - reach - self.mf_taps.size  # the matched filter over the stretch searched, and its taps
        seg = np.asarray(x[lo : base + int(sym[-1]) * sps + reach + 1], np.complex64)
        r = np.zeros(seg.size, np.complex64)
        fir_range(seg, self.mf_taps, self.mf_taps.size, seg.size, r)
        z = r[base - lo + shifts[:, None] + sym * sps] * np.conj(known).astype(np.complex64)
        energy = (np.abs(z.reshape(shifts.size, -1, L).sum(axis=2)) ** 2).sum(axis=1)
        best = int(np.argmax(energy))
        return t0 + int(shifts[best]), float(energy[best] / max(np.median(energy), 1e-30))

    def _read_analog(self, x: np.ndarray, header: BurstHeader, t0: float, cfo: float, phase_order: int = 2) -> tuple[_Burst, float]:
        """The rest of an analog burst once its header is read: side information and equalised symbols."""
        try:
            plan = AnalogPlan.make(self.cfg, header.total_len, header.side_len)
        except ValueError as exc:
            raise HeaderError("plan", str(exc)) from None
        if header.frag_count != plan.frag_count or header.frag_len != plan.frag_len(header.frag_index):
            raise HeaderError("plan", f"header {header} does not match this receiver's LinkConfig")
        n_data = plan.n_data(header.frag_index)
        sb = self.sync.symbols(x, t0, cfo, n_data, phase_order=phase_order)
        a, b = HEADER_CODED_BITS, HEADER_CODED_BITS + plan.side_symbols
        side = b"" if not plan.side_len else None
        if plan.side_len:
            try:
                with self.clock("header"):
                    side = _side_codec(plan.side_len).decode(4.0 * sb.data[a:b].real / sb.noise_var_of(a, b))
            except HeaderError:
                pass  # another burst's copy may decode
        burst = _Burst(header, None, sb.snr_db, sb.evm_rms, sb.cfo_cpsym, sb.drift, sb.t0_raw - self.tx_delay,
                       sb.data[b:].astype(np.complex64), side, sb.noise_var_of(b))
        return burst, sb.t0_raw + self.fmt.burst_len(n_data) * self.cfg.sps

    def demodulate(self, samples: np.ndarray) -> RxPacket | None:
        x = np.asarray(samples)
        if x.ndim != 1:
            raise ValueError(f"samples must be a 1-D complex array, got shape {x.shape}")
        with self.clock("detection"):
            # as the streaming receiver reads samples: complex64 (what radios deliver), NaN / inf parts
            # zeroed, the causal matched filter in float32 (the detector's precision)
            raw = np.empty(x.size, np.complex64)
            if x.size:
                append_finite(raw, x if np.iscomplexobj(x) else x.astype(np.complex64))
            r = np.empty_like(raw)
            fir_range(raw, self.mf_taps, 0, raw.size, r)
            x = raw
        bursts, errors, start, pos = [], [], None, 0
        while True:
            with self.clock("detection"):
                det = self.detector.find(r, pos)
            if det is None:
                break
            if start is None:
                start = int(round(det.index + det.frac - self.sync.mf_delay - self.tx_delay))
            try:
                burst, end = self._read_burst(x, det)
                bursts.append(burst)
                pos = max(int(end) + self.sync.mf_delay - 4 * self.cfg.sps, det.index + 1)
            except HeaderError as exc:
                errors.append(exc.reason)
                pos = det.index + self.fmt.preamble.size * self.cfg.sps
            except (ValueError, ZeroDivisionError, FloatingPointError, IndexError, np.linalg.LinAlgError) as exc:
                errors.append(f"sync: {exc}")  # garbage that passed detection: skip it
                pos = det.index + self.fmt.preamble.size * self.cfg.sps
        if start is None:
            return None
        if not bursts:
            return RxPacket(b"", np.zeros(0, bool), False, "", -1, float("nan"), float("nan"), float("nan"),
                            float("nan"), 1.0, 0, start, header_errors=errors)  # fmt: skip
        with self.clock("crc_reassembly"):  # LDPC's own share is taken out of it below
            t_ldpc = self.clock.seconds.get("ldpc", 0.0)
            packet = self._assemble(bursts, errors, lambda *a: self.read_lost(x, *a))
        if self.clock.enabled:
            self.clock.seconds["crc_reassembly"] -= self.clock.seconds.get("ldpc", 0.0) - t_ldpc
        return packet

    def _assemble(self, bursts: list[_Burst], errors: list, read_lost=None) -> RxPacket:
        """The packet most of `bursts` belong to; read_lost(header, n_data, start, cfo, reach) -> _Burst | None reads
        one of its lost bursts (LinkConfig.recover_bursts) from the samples the caller holds."""
        # several packets in one buffer: keep the one with the most bursts heard, the earliest among equals
        groups: dict[tuple, list[_Burst]] = {}
        for b in bursts:
            groups.setdefault((b.header.seq, b.header.mcs, b.header.total_len, b.header.side_len), []).append(b)
        mine = max(groups.values(), key=lambda g: (len(g), -g[0].start))
        errors += ["other packet"] * (len(bursts) - len(mine))
        first = mine[0].header
        analog = first.modulation == ANALOG
        plan = (AnalogPlan.make(self.cfg, first.total_len, first.side_len) if analog
                else PacketPlan.make(self.cfg, first.mcs, first.total_len))
        # where the packet began, even when its first bursts were lost: subtract the bursts before
        burst_samples = [(self.fmt.burst_len(plan.n_data(i)) + self.cfg.guard_symbols) * self.cfg.sps for i in range(plan.frag_count)]
        offsets = [0, *accumulate(burst_samples)]  # of each burst from the packet's first sample
        start = int(round(mine[0].start - offsets[mine[0].header.frag_index]))
        seen: dict[int, _Burst] = {}
        for b in mine:
            seen.setdefault(b.header.frag_index, b)  # a repeated fragment: keep the first copy
        n_headers = len(seen)
        if read_lost is not None and self.cfg.recover_bursts:
            heard_at = list(seen)
            for i in sorted(set(range(plan.frag_count)) - set(seen)):
                # timing (at the nominal sample clock, then searched) and carrier from the nearest burst heard
                ref = seen[min(heard_at, key=lambda j: abs(j - i))]
                distance = offsets[i] - offsets[ref.header.frag_index]
                hdr = replace(ref.header, frag_index=i, frag_len=plan.frag_len(i))
                reach = 8 + math.ceil(3e-5 * abs(distance))  # 30 ppm clocks
                if (b := read_lost(hdr, plan.n_data(i), ref.start + distance, ref.cfo_cpsym, reach)) is not None:
                    seen[i] = b
        heard = list(seen.values())  # means over a few bursts: plain Python (numpy's fixed costs dominate)
        snr_lin = fmean([10 ** (b.snr_db / 10) for b in heard])
        measured = dict(
            header_ok=True,
            mcs=first.mcs,
            seq=first.seq,
            snr_db=float(10 * np.log10(snr_lin)),
            evm_rms=math.sqrt(fmean([b.evm_rms**2 for b in heard])),
            cfo_hz=fmean([b.cfo_cpsym for b in heard]) * self.cfg.symbol_rate_hz,
            start_sample=start,
            clock_offset_ppm=fmean([b.drift for b in heard]) * 1e6,
            n_bursts=plan.frag_count,
            bursts_ok=n_headers,
            bursts_recovered=len(seen) - n_headers,
            header_errors=errors,
            symbols=seen[min(seen)].symbols[:4096],
        )
        if analog:
            sym = np.zeros(plan.total_len, np.complex64)
            snr_db = measured["snr_db"]
            if any(np.ndim(b.noise_var) for b in heard):  # fading: guard the deep fades, over the bursts heard
                kept = [np.asarray(b.symbols) for b in heard]
                nv = [np.broadcast_to(b.noise_var, b.symbols.shape) for b in heard]
                nv = np.nan_to_num(np.concatenate(nv), nan=1e12, posinf=1e12)  # a lost channel estimate: no trust
                guarded, snr_db = fade_guard(np.concatenate(kept), nv)
                ends = np.cumsum([k.size for k in kept])[:-1]
                for i, g in zip(seen, np.split(guarded, ends)):
                    sym[plan.frag_slice(i)] = g
            else:
                for i, b in seen.items():
                    sym[plan.frag_slice(i)] = b.symbols
            ok = np.isin(np.arange(plan.frag_count), list(seen))
            side = next((b.side for b in seen.values() if b.side is not None), b"")
            return RxPacket(payload=side, block_ok=ok, ber=float("nan"), bler=float(1.0 - ok.mean()),
                            n_blocks=plan.frag_count, analog=sym, analog_snr_db=float(snr_db), **measured)
        payload, block_ok, ber = self._decode_blocks(plan, first.seq, seen)
        return RxPacket(payload=payload, block_ok=block_ok, ber=ber, n_blocks=plan.n_blocks,
                        bler=float(1.0 - block_ok.mean()) if plan.n_blocks else 0.0, **measured)

    def _decode_blocks(self, plan: PacketPlan, seq: int, seen: dict[int, _Burst]) -> tuple[bytes, np.ndarray, float]:
        """LDPC-decode the code blocks of the bursts heard: (payload, block_ok, pre-FEC BER of good blocks)."""
        from sagin_hil.phy.crc import crc_check
        from sagin_hil.phy.scrambler import descramble_llr

        block_ok = np.zeros(plan.n_blocks, dtype=bool)
        payload = np.zeros((plan.n_blocks, plan.block_bytes), dtype=np.uint8)
        bit_err, bit_cnt = 0, 0
        idx = [blk for i in sorted(seen) for blk in plan.frag_blocks(i)]
        if idx:
            llr = np.concatenate([seen[i].llr for i in sorted(seen)])
            llr = descramble_llr(llr, _scrambling_seeds(self.cfg, seq, idx))
            with self.clock("ldpc"):
                res = _decoder(plan.k, plan.n, self.cfg.decoder, self.cfg.iterations)(llr)
            ok = crc_check(res.info_bits, CRC_NAME)
            block_ok[idx] = ok
            good = np.asarray(idx)[ok]
            payload[good] = np.packbits(res.info_bits[ok, : plan.block_bytes * 8], axis=1)
            if ok.any():
                bit_err = int(_hard_errors(llr, res.codeword, ok))
                bit_cnt = int(ok.sum() * plan.n)
        ber = bit_err / bit_cnt if bit_cnt else float("nan")
        return payload.ravel()[: plan.total_len].tobytes(), block_ok, ber
