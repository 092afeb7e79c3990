"""Streaming reception: samples fed in chunks of any size, packets out as soon as they are complete.

`StreamReceiver` is what sits between radios: the sample stream arrives in buffers (a Pluto's, a ZeroMQ
message), state is kept across calls, and a burst that straddles a chunk boundary is found once. It is
exact: however the stream is cut, the packets, their payloads and every measurement are bit for bit those
of feeding the whole stream in one call, because

- the matched filter for detection is a direct-form FIR evaluated per output sample (`fir_range`), so a
  filtered sample does not depend on where the chunks begin; it runs only where the detector searches
  (gaps and preambles), not over the bursts it skips;
- the detector searches a fixed grid of absolute sample positions (`BurstDetector.find(start, stop)`) and
  only where the preamble peak search has the samples it needs;
- a burst is read once the stream holds its longest possible extent, from a copy of the stream that starts
  at a fixed offset before its detection, so the synchroniser sees the same numbers in the same positions.

Packets are emitted when all their bursts are in, when a burst of another packet arrives, when the stream
has gone on for longer than a burst since the packet's last burst (its other bursts are lost), or at flush().
A lost burst (LinkConfig.recover_bursts) is then read where the heard ones put it, from a copy of the stream
that starts at a fixed offset before that place; the stream keeps a burst's extent of samples behind the
search, and all of the open packet's, so the copy is there however the stream was cut.
"""

from __future__ import annotations

import numpy as np

from sagin_hil.phy.frame import HeaderError
from sagin_hil.phy.link import LinkConfig, PacketReceiver, RxPacket
from sagin_hil.phy.sync import Detection, append_finite, fir_range

__all__ = ["StreamReceiver", "fir_range"]


class StreamReceiver:
    """Complex samples in chunks -> RxPacket as each packet completes; state kept across calls.

    Parameters
    ----------
    cfg : LinkConfig, optional
        Must equal the transmitter's.

    Input (feed)
    ------------
    chunk : complex [n] at cfg.sample_rate_hz, the next samples of the stream (any n, including 0).

    Output
    ------
    list of RxPacket completed by this chunk (start_sample counts from the first sample ever fed);
    flush() ends the stream and returns the rest. `clock` (a StageClock) splits the time by stage.
    """

    def __init__(self, cfg: LinkConfig | None = None):
        self.rx = PacketReceiver(cfg)
        self.cfg, self.clock = self.rx.cfg, self.rx.clock
        sps, fmt, sync = self.cfg.sps, self.rx.fmt, self.rx.sync
        pre_samples = fmt.preamble.size * sps
        self._lookahead = 2 * pre_samples + 16  # what the detector's peak search reads beyond a candidate
        self._search_samples = 4096
        self._before = sync.mf_delay + sync.taps.size + 32  # window start before a detection
        # the longest burst, from its detection to its last sample and the synchroniser's margins
        self._burst_extent = (fmt.burst_len(self.cfg.max_burst_symbols) + 8) * sps + 2 * sync.taps.size + 64
        # what a lost burst's read needs kept behind the first burst heard of its packet, and so behind the search
        self._keep_back = self._burst_extent + 3 * self._before + sync.mf_delay + self.cfg.span_symbols * sps + 256
        # complex64, what radios deliver: half the memory traffic of complex128, and the detection filter
        # runs in float32 (twice the SIMD lanes)
        self._buf = np.zeros(1 << 16, np.complex64)  # raw samples from absolute index _base on: _buf[:_n]
        self._r = np.zeros(self._buf.size, np.complex64)  # their matched filter, valid on [_r_lo, _r_hi)
        self._n = self._base = self._r_lo = self._r_hi = 0
        self._pos = 0  # next absolute position the detector searches from (its grid)
        self._open: list = []  # bursts of the packet being received
        self._errors: list = []
        self._last_end = 0  # absolute end of the last burst read
        self._flushing = False
        self._waiting = None  # (search start, absolute index, Detection) of a burst not yet all in

    @property
    def samples_in(self) -> int:
        """Samples fed so far."""
        return self._base + self._n

    @property
    def _x(self) -> np.ndarray:
        return self._buf[: self._n]

    def feed(self, chunk: np.ndarray) -> list[RxPacket]:
        c = np.asarray(chunk)
        if c.ndim != 1:
            raise ValueError(f"chunk must be a 1-D complex array, got shape {c.shape}")
        with self.clock("detection"):
            if self._n + c.size > self._buf.size:  # grow by doubling: appending stays O(chunk)
                size = max(2 * self._buf.size, self._n + c.size)
                self._buf = np.concatenate([self._buf[: self._n], np.zeros(size - self._n, np.complex64)])
                self._r = np.concatenate([self._r, np.zeros(size - self._r.size, np.complex64)])
            if c.size:
                src = c if np.iscomplexobj(c) else c.astype(np.complex64)
                append_finite(self._buf[self._n : self._n + c.size], src)
            self._n += c.size
        return self._run()

    def flush(self) -> list[RxPacket]:
        """End of stream: read what is left and emit the open packet."""
        self._flushing = True
        out = self._run()
        out += self._close()
        self._flushing = False
        return out

    def _filtered(self, a: int, b: int) -> None:
        """Make the matched filter valid on absolute [a, b)."""
        b = min(b, self.samples_in)
        if a >= self._r_hi or a < self._r_lo:
            self._r_lo = self._r_hi = a
        if b > self._r_hi:
            fir_range(self._x, self.rx.mf_taps, self._r_hi - self._base, b - self._base, self._r)
            self._r_hi = b

    def _run(self) -> list[RxPacket]:
        out: list[RxPacket] = []
        end = self.samples_in
        span = (self.rx.fmt.preamble.size - 1) * self.cfg.sps
        while True:
            stop = end - span if self._flushing else end - span - self._lookahead
            if self._pos >= stop:
                break
            if self._waiting is not None and self._waiting[0] == self._pos:
                d_abs, det = self._waiting[1:]  # found before, waiting for its samples: the same answer
            else:
                # search a stretch at a time, so the filter runs only where the search goes
                part = min(stop, self._pos + self._search_samples)
                with self.clock("detection"):
                    self._filtered(self._pos - 8, part + span + self._lookahead)
                    b = self._base
                    det = self.rx.detector.find(self._r[: self._r_hi - b], self._pos - b, part - b)
                if det is None:
                    self._pos += 2 * -(-(part - self._pos) // 2)  # on along the same grid
                    continue
                d_abs = det.index + b
                self._waiting = (self._pos, d_abs, det)
            if not self._flushing and d_abs + self._burst_extent > end:
                break  # the burst may run past what we hold: wait for more samples, then find it again
            out += self._read(d_abs, det, end)
        if self._open and self._pos > self._last_end + self._burst_extent:
            out += self._close()  # nothing of this packet can come any more
        self._trim()
        return out

    def _read(self, d_abs: int, det: Detection, end: int) -> list[RxPacket]:
        out: list[RxPacket] = []
        self._waiting = None
        w0 = max(d_abs - self._before, 0)
        w1 = min(d_abs + self._burst_extent, end)
        x = self._x[w0 - self._base : w1 - self._base]
        local = Detection(d_abs - w0, det.frac, det.metric, det.cfo_cpsym)
        pre_samples = self.rx.fmt.preamble.size * self.cfg.sps
        if self._open and d_abs > self._last_end + self._burst_extent:
            out += self._close()  # the open packet's other bursts would have come by now
        try:
            burst, burst_end = self.rx._read_burst(x, local)
            burst.start += w0
            self._pos = max(int(burst_end) + w0 + self.rx.sync.mf_delay - 4 * self.cfg.sps, d_abs + 1)
            self._last_end = int(burst_end) + w0
            key = (burst.header.seq, burst.header.mcs, burst.header.total_len, burst.header.side_len)
            if self._open and key != self._key:
                out += self._close()
            self._key = key
            self._open.append(burst)
            if len({b.header.frag_index for b in self._open}) == burst.header.frag_count:
                out += self._close()
        except HeaderError as exc:
            self._errors.append(exc.reason)
            self._pos = d_abs + pre_samples
        except (ValueError, ZeroDivisionError, FloatingPointError, IndexError, np.linalg.LinAlgError) as exc:
            self._errors.append(f"sync: {exc}")
            self._pos = d_abs + pre_samples
        return out  # the next search starts on the grid of the new position

    def _close(self) -> list[RxPacket]:
        if not self._open:
            return []
        with self.clock("crc_reassembly"):
            t_ldpc = self.clock.seconds.get("ldpc", 0.0)
            packet = self.rx._assemble(self._open, self._errors, self._read_lost)
        if self.clock.enabled:  # LDPC is timed inside the assembly: count it once
            self.clock.seconds["crc_reassembly"] -= self.clock.seconds.get("ldpc", 0.0) - t_ldpc
        self._open, self._errors = [], []
        return [packet]

    def _read_lost(self, header, n_data: int, start: float, cfo: float, reach: int):
        """PacketReceiver.read_lost on a copy of the stream from a fixed offset before `start` (absolute), or
        None where that copy reaches before what the stream is sure to keep or past what it holds."""
        w0 = int(np.floor(start)) - self._before - reach - 64
        w1 = int(np.floor(start)) + self._burst_extent + reach
        oldest = int(np.floor(min(b.start for b in self._open))) - self._keep_back + self._before
        if w0 < max(oldest, self._base) or w1 > self.samples_in:
            return None
        burst = self.rx.read_lost(self._x[w0 - self._base : w1 - self._base], header, n_data, start - w0, cfo, reach)
        if burst is not None:
            burst.start += w0
        return burst

    def _trim(self) -> None:
        """Drop samples no burst or filter will read again (moving the rest to the front of the buffer); keep
        a burst's extent behind the search and behind the open packet's first burst, for a lost burst's read."""
        keep_from = min(self._pos - self._before - 8, self._r_lo if self._r_hi > self._r_lo else self._pos,
                        self._pos - self._keep_back, *(int(np.floor(b.start)) - self._keep_back for b in self._open))
        cut = max(keep_from - self.rx.mf_taps.size, self._base) - self._base
        if cut > 65536 or (cut > 0 and cut > self._n // 2):
            rest = self._n - cut
            self._buf[:rest] = self._buf[cut : self._n]
            self._r[:rest] = self._r[cut : self._n]
            self._base += cut
            self._n = rest
            self._r_lo = max(self._r_lo, self._base)
