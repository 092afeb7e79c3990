"""The emulated Pluto's signal path: TX DAC -> TX front end -> channel -> RX front end -> 12-bit ADC.

Levels are absolute so gains and clipping behave as on the bench:
- TX: an int16 DAC word x / 2^15 = 1 is full scale; full scale leaves the TX port at `tx_full_scale_dbm`
  (+7 dBm) plus the TX hardwaregain (an attenuation, <= 0 dB). pyadi-iio's usual 2^14 scaling is -6 dBFS.
- Channel (phy.channel.emulator.ChannelEmulator): a bench cable with an attenuator (gain -attenuation_db)
  and the receiver's thermal noise kTB + noise figure; or a scenario link (ScenarioChannel: delay,
  Doppler, fading and the link's SNR), placed at the same level plan.
- LOs: the receiver sees the transmitter shifted by (TX LO - RX LO), both scaled by the reference
  oscillator error (xo_ppm) over the xo_correction the user set (40 MHz nominal): the emulator's carrier
  offset (cfo_ppm). An offset beyond the RX analog filter (min(rf_bandwidth, rate) / 2) leaves only noise.
- RX: the RX gain G makes an input of (0 - G) dBm full scale (|y| = 2048); the ADC rounds and clips I and
  Q to 12 bits ([-2048, 2047]).
Automatic gain (slow_attack / fast_attack / hybrid) picks G so the mean input sits at -12 dBFS.

Time is virtual by default (a read returns at once, the TX timeline advances by what RX reads); with
realtime=True reads are paced to the sample rate and a reader slower than 4 kernel buffers loses samples
(the ADC core's overflow bit is set), as on the hardware.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Any, Protocol

import numpy as np

from sagin_hil.datatypes import SampleBlock
from sagin_hil.hil.iiod.device import ADC, DDS, EmulatedPluto, RfSettings

__all__ = ["PlutoRF", "SampleChannel"]

ADC_FULL_SCALE = 2048.0
DAC_FULL_SCALE = 32768.0
AGC_TARGET_DBFS = -12.0
KERNEL_BUFFERS = 4


class SampleChannel(Protocol):
    """What sits between the two antennas: SampleBlock in, SampleBlock out (stateful, streaming)."""

    def process(self, block: SampleBlock) -> SampleBlock: ...


class PlutoRF:
    """TX sources and the RX sample generator of one emulated Pluto.

    Parameters
    ----------
    device: the EmulatedPluto whose settings (LOs, rate, gains, loopback, DDS) apply.
    attenuation_db: bench cable attenuator between TX and RX (no scenario).
    channel_factory: callable(sample_rate_hz, carrier_hz) -> SampleChannel for a scenario link, or None.
    noise_figure_db: RX noise figure; the noise floor is -174 dBm/Hz + NF over the sample rate.
    tx_full_scale_dbm: TX output power of a full-scale complex tone at 0 dB attenuation.
    xo_ppm: error of the emulated reference oscillator (shifts both LOs; xo_correction cancels it).
    realtime: pace reads to the sample rate and drop samples for slow readers (overflow).
    seed: noise seed (None: random).
    max_queued_samples: cap on non-cyclic TX samples waiting for a reader (older ones are dropped).
    start_time_s: scenario time of the first RX sample (a scenario channel follows the link from there).
    tx_peer: another emulated Pluto whose TX this one receives (a two-radio bench) instead of its own.
    """

    def __init__(
        self,
        device: EmulatedPluto,
        attenuation_db: float = 40.0,
        channel_factory: Any = None,
        noise_figure_db: float = 5.0,
        tx_full_scale_dbm: float = 7.0,
        xo_ppm: float = 0.0,
        realtime: bool = False,
        seed: int | None = None,
        max_queued_samples: int = 1 << 23,
        start_time_s: float = 0.0,
        tx_peer: PlutoRF | None = None,
    ):
        if not 0 <= attenuation_db <= 300:  # the channel's gain_db is bounded at -300 dB
            raise ValueError(f"attenuation_db = {attenuation_db} must be in [0, 300] (a loss in dB)")
        self.device = device
        self.attenuation_db = float(attenuation_db)
        self.channel_factory = channel_factory
        self.noise_figure_db = float(noise_figure_db)
        self.tx_full_scale_dbm = float(tx_full_scale_dbm)
        self.xo_ppm = float(xo_ppm)
        self.realtime = realtime
        self.start_time_s = float(start_time_s)
        self.tx_peer = tx_peer
        self.max_queued_samples = int(max_queued_samples)
        self.seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        self._cyclic: np.ndarray | None = None
        self._cyclic_pos = 0
        self._bursts: collections.deque[np.ndarray] = collections.deque()
        self._queued = 0
        self._tx_stream_open = False
        self._starved = False
        self._dds_n = 0
        self._rx_n = 0  # samples produced so far (RX clock)
        self._channel: Any = None
        self._channel_key: tuple | None = None
        self._channel_settings: tuple | None = None
        self._rt_t0: float | None = None
        self.dropped_tx_samples = 0
        self.last_clipped = 0

    # ----------------------------------------------------------------------------- TX side
    @staticmethod
    def _to_complex(iq_int16: np.ndarray) -> np.ndarray:
        """int16 interleaved (n, 2) -> complex64 normalised to the DAC full scale (exact: 16-bit words)."""
        out = np.empty(len(iq_int16), np.complex64)
        np.multiply(iq_int16, np.float32(1.0 / DAC_FULL_SCALE), out=out.view(np.float32).reshape(-1, 2))
        return out

    def open_tx(self, cyclic: bool) -> None:
        with self.lock:
            self._tx_stream_open = not cyclic
            self._starved = False

    def close_tx(self, cyclic: bool) -> None:
        with self.lock:
            if cyclic:
                self._cyclic = None
            self._tx_stream_open = False

    def write_tx(self, iq_int16: np.ndarray, cyclic: bool) -> None:
        """A WRITEBUF: a cyclic buffer replaces the repeated waveform; otherwise it queues a burst."""
        x = self._to_complex(iq_int16)
        with self.lock:
            if cyclic:
                self._cyclic, self._cyclic_pos = x, 0
                return
            self._bursts.append(x)
            self._queued += len(x)
            self._starved = False
            while self._queued > self.max_queued_samples and len(self._bursts) > 1:
                old = self._bursts.popleft()
                self._queued -= len(old)
                self.dropped_tx_samples += len(old)

    def _take_tx(self, n: int, st: RfSettings) -> np.ndarray:
        """The next n DAC samples (normalised): DMA bursts, else the cyclic buffer, else the DDS, else 0."""
        out = np.zeros(n, np.complex64)
        filled = 0
        while filled < n and self._bursts:
            head = self._bursts[0]
            k = min(n - filled, len(head))
            out[filled : filled + k] = head[:k]
            filled += k
            self._queued -= k
            if k == len(head):
                self._bursts.popleft()
            else:
                self._bursts[0] = head[k:]
        if filled < n and self._tx_stream_open and not self._bursts and not self._starved and filled > 0:
            self._starved = True
            self.device.flag(DDS, 0x1)  # DAC underflow: the stream ran dry while open
        if filled < n and self._cyclic is not None:
            c, m = self._cyclic, len(self._cyclic)
            idx = (self._cyclic_pos + np.arange(n - filled)) % m
            out[filled:] = c[idx]
            self._cyclic_pos = int((self._cyclic_pos + n - filled) % m)
        elif filled < n and any(on for *_, on in st.dds) and any(s > 0 for _, s, _, _ in st.dds):
            out[filled:] = self._dds(n - filled, st)
        return out

    def _skip_tx(self, n: int) -> None:
        """Advance the TX timeline by n samples without producing them (a slow reader's loss)."""
        while n > 0 and self._bursts:
            head = self._bursts[0]
            k = min(n, len(head))
            self._queued -= k
            n -= k
            if k == len(head):
                self._bursts.popleft()
            else:
                self._bursts[0] = head[k:]
        if self._cyclic is not None:
            self._cyclic_pos = int((self._cyclic_pos + n) % len(self._cyclic))
        self._dds_n += n

    def _dds(self, n: int, st: RfSettings) -> np.ndarray:
        """The DAC's two DDS tones per rail: I = F1 + F2 (altvoltage0/1), Q = F1 + F2 (altvoltage2/3)."""
        t = (self._dds_n + np.arange(n)) / st.sample_rate_hz
        self._dds_n += n
        rails = []
        for pair in ((0, 1), (2, 3)):
            rail = np.zeros(n)
            for i in pair:
                f, scale, phase_mdeg, _ = st.dds[i]
                rail += scale * np.cos(2 * np.pi * f * t + np.deg2rad(phase_mdeg / 1000.0))
            rails.append(rail)
        return rails[0] + 1j * rails[1]

    # ----------------------------------------------------------------------------- RX side
    def set_time(self, t_s: float) -> None:
        """Scenario time of the next RX sample."""
        st = self.device.rf_settings()
        with self.lock:
            self.start_time_s = float(t_s) - self._rx_n / st.sample_rate_hz

    def start_rx(self) -> None:
        """A new RX buffer: the ADC DMA starts now (realtime mode counts lost samples from here)."""
        with self.lock:
            self._rt_t0 = None

    def _lo_offset_hz(self, st: RfSettings, tx_rf: PlutoRF | None = None, st_tx: RfSettings | None = None) -> float:
        """Actual TX LO (of this device or the peer) minus actual RX LO: each scales with its own XO."""
        tx_rf, st_tx = tx_rf or self, st_tx or st
        f_tx = st_tx.tx_lo_hz * 40e6 * (1.0 + tx_rf.xo_ppm * 1e-6) / st_tx.xo_correction_hz
        f_rx = st.rx_lo_hz * 40e6 * (1.0 + self.xo_ppm * 1e-6) / st.xo_correction_hz
        return f_tx - f_rx

    def _noise_mw(self, st: RfSettings) -> float:
        return 10.0 ** ((-174.0 + self.noise_figure_db + 10 * math.log10(st.sample_rate_hz)) / 10.0)

    def _channel_for(self, st: RfSettings, st_tx: RfSettings) -> Any:
        """The ChannelEmulator between the antennas, rebuilt when the rate or TX LO changes.

        Bench: ChannelParams(gain_db = -attenuation, cfo = LO difference, noise_power = kTB + NF) on
        signals in sqrt(mW). Scenario: the link's ScenarioChannel on DAC-normalised samples, with the LO
        difference as its carrier offset (cfo_ppm) so the scenario's Doppler is kept.
        """
        from sagin_hil.phy.channel.emulator import ChannelEmulator, ChannelParams

        df = self._lo_offset_hz(st, self.tx_peer if st_tx is not st else None, st_tx)
        blocked = abs(df) > min(st.rx_bandwidth_hz, st.sample_rate_hz) / 2.0  # outside the RX analog filter
        key = (st.sample_rate_hz, st_tx.tx_lo_hz)
        if key != self._channel_key:
            fs, fc = float(st.sample_rate_hz), float(st_tx.tx_lo_hz)
            if self.channel_factory is not None:
                self._channel = self.channel_factory(fs, fc)
            else:
                self._channel = ChannelEmulator(fs, fc, ChannelParams(), seed=self.seed)
            self._channel_key = key
            self._channel_settings = None
        # a scenario channel runs at the link's carrier; a blocked path passes only noise, so its offset
        # (up to the whole LO range: beyond ChannelParams' bounds) is not applied
        cfo_ppm = 0.0 if blocked or not self._channel.carrier_hz else df / self._channel.carrier_hz * 1e6
        settings = (cfo_ppm, blocked, self.attenuation_db, self._noise_mw(st))
        if settings != self._channel_settings:
            if self.channel_factory is not None:
                self._channel.update(cfo_ppm=cfo_ppm, **({"blocked": True} if blocked else {}))
            else:
                self._channel.update(cfo_ppm=cfo_ppm, blocked=blocked, gain_db=-self.attenuation_db,
                                     noise_power=settings[3], snr_db=None)
            self._channel_settings = settings
        return self._channel

    def _tx_from(self, n: int, st: RfSettings, skip: bool = False) -> tuple[np.ndarray, RfSettings, PlutoRF]:
        """n DAC samples at this receiver's rate from whoever transmits to it (this device, or its peer).

        The peer's lock is taken alone (never inside ours), so two devices hearing each other cannot
        deadlock. A peer at another sample rate is resampled linearly (what the mismatch sounds like).
        """
        src = self if (self.tx_peer is None or st.loopback == 1) else self.tx_peer
        st_tx = st if src is self else src.device.rf_settings()
        ratio = st_tx.sample_rate_hz / st.sample_rate_hz
        m = n if ratio == 1 else max(1, round(n * ratio))
        with src.lock:
            if skip:
                src._skip_tx(m)
                return np.zeros(0, np.complex64), st_tx, src
            x = src._take_tx(m, st_tx)
        if m != n:
            pos = np.arange(n) * (m / n)
            x = (np.interp(pos, np.arange(m), x.real) + 1j * np.interp(pos, np.arange(m), x.imag)).astype(np.complex64)
        return x, st_tx, src

    def read_adc(self, n: int) -> np.ndarray:
        """The next n RX samples as int16 (n, 2) I/Q words holding 12-bit values."""
        st = self.device.rf_settings()
        if self.realtime:
            with self.lock:
                lost = self._pace(n, st)
            if lost:
                self._tx_from(lost, st, skip=True)  # the TX timeline moved on while nobody listened
        tx, st_tx, src = self._tx_from(n, st)
        with self.lock:
            if st.loopback == 1:  # digital loopback: DAC words straight into the ADC path (16 -> 12 bits)
                return self._quantise(tx * DAC_FULL_SCALE / 16.0)
            amp = 10.0 ** ((src.tx_full_scale_dbm + st_tx.tx_gain_db) / 20.0)  # sqrt(mW) at full scale
            t0 = self.start_time_s + self._rx_n / st.sample_rate_hz
            chan = self._channel_for(st, st_tx)
            fs, fc = float(st.sample_rate_hz), float(st_tx.tx_lo_hz)
            if self.channel_factory is None:  # float32 throughout: the ADC has 12 bits, float32 has 24
                x = chan.process(SampleBlock(tx * np.float32(amp), fs, fc, t0)).samples
            else:  # the link's impairments and SNR, placed at the bench level plan, plus the RX noise floor
                x = chan.process(SampleBlock(tx, fs, fc, t0)).samples
                x = x * np.float32(amp * 10.0 ** (-self.attenuation_db / 20.0))
                w = self.rng.standard_normal(2 * n, dtype=np.float32).view(np.complex64)
                x = x + np.float32(math.sqrt(self._noise_mw(st) / 2)) * w
            gain_db = self._gain(st, x)
            y = x * np.float32(10.0 ** (gain_db / 20.0) * ADC_FULL_SCALE)
            self._rx_n += n
            p = float(np.vdot(y, y).real) / n / ADC_FULL_SCALE**2
            with self.device.lock:
                self.device.rssi_db = -10 * math.log10(max(p, 1e-12))
            return self._quantise(y)

    def _gain(self, st: RfSettings, x: np.ndarray) -> float:
        if st.gain_mode == "manual":
            return st.rx_gain_db
        p_dbm = 10 * math.log10(max(float(np.vdot(x, x).real) / len(x), 1e-30))
        target = min(max(AGC_TARGET_DBFS - p_dbm, -3.0), 71.0)
        with self.device.lock:
            g = self.device.agc_gain_db
            # fast attack settles within a buffer; slow attack moves halfway (in dB) each buffer
            g = target if st.gain_mode in ("fast_attack", "hybrid") or target < g - 20 else 0.5 * (g + target)
            self.device.agc_gain_db = float(round(g))
            return self.device.agc_gain_db

    def _quantise(self, y: np.ndarray) -> np.ndarray:
        """ADC: round I and Q to integers and clip them to 12 bits; (n, 2) int16."""
        r = np.rint(np.ascontiguousarray(y, dtype=np.complex64).view(np.float32).reshape(-1, 2))
        self.last_clipped = int(np.count_nonzero(r > ADC_FULL_SCALE - 1) + np.count_nonzero(r < -ADC_FULL_SCALE))
        np.clip(r, -ADC_FULL_SCALE, ADC_FULL_SCALE - 1, out=r)
        return r.astype(np.int16)

    def _pace(self, n: int, st: RfSettings) -> int:
        """Realtime mode: wait for the samples to exist; return how many a slow reader lost (and flag it)."""
        now = time.monotonic()
        if self._rt_t0 is None:
            self._rt_t0 = now - self._rx_n / st.sample_rate_hz
        backlog = (now - self._rt_t0) * st.sample_rate_hz - self._rx_n
        lost = 0
        if backlog > KERNEL_BUFFERS * n:
            lost = int(backlog - KERNEL_BUFFERS * n)
            self._rx_n += lost
            self.device.flag(ADC, 0x4)
        wait = (self._rx_n + n) / st.sample_rate_hz - (time.monotonic() - self._rt_t0)
        if wait > 0:
            self.lock.release()
            try:
                time.sleep(wait)
            finally:
                self.lock.acquire()
        return lost
