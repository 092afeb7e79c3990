"""ZmqRadio: TX and RX as gr-zeromq IQ streams (for the channel-emulator service and GNU Radio flowgraphs).

TX binds `tx_uri` like a gr-zeromq sink (PUSH or PUB; REP answers a REQ source's "items wanted");
RX connects to `uri` like a gr-zeromq source (PULL, SUB, or REQ asking for what rx(n) still needs).
Messages are raw complex64 (hil/zmq_iq.py), with the tag header when zmq_pass_tags is on; the header's
absolute offset lets RX count samples lost in between (overflows). Cyclic TX re-sends the buffer from a
background thread, paced at the sample rate.

srsRAN's ZMQ radio (fc32 samples, REQ/REP) works in both directions with zmq_pattern="req-rep": as a
transmitter this radio answers srsRAN's one-byte request with one block of 1 ms (1920 samples at
1.92 MS/s), a GNU Radio uint32 request with at most the items asked for; as a receiver it sends a uint32
request, which srsRAN's REP reads as its one-byte request, and keeps whatever block size comes back.
"""

from __future__ import annotations

import threading
import time
import numpy as np

from sagin_hil.hil.radio import CyclicTx, Radio, RadioConfig, RadioError, RxResult, as_complex64
from sagin_hil.hil.zmq_iq import ZmqIqError, decode_iq, decode_request, encode_iq, encode_request

__all__ = ["ZmqRadio"]

_SOCKETS = {"push-pull": ("PUSH", "PULL"), "pub-sub": ("PUB", "SUB"), "req-rep": ("REP", "REQ")}
MAX_MESSAGE_ITEMS = 1 << 20  # longer bursts go out in several messages (the emulator service takes <= 2 Mi)


class ZmqRadio(Radio):
    """A radio whose antennas are ZeroMQ sockets.

    Parameters
    ----------
    config: kind "zmq"; uri = RX endpoint to connect (e.g. "tcp://127.0.0.1:5556"); tx_uri = TX endpoint
      to bind (e.g. "tcp://127.0.0.1:5555"; empty = receive only); zmq_pattern, zmq_pass_tags.
    """

    kind = "zmq"

    def __init__(self, config: RadioConfig):
        super().__init__(config)
        try:
            import zmq
        except ImportError as exc:
            raise RadioError(f"pyzmq is not importable ({exc}); pip install pyzmq") from None
        self._zmq = zmq
        self._ctx = zmq.Context()
        tx_type, rx_type = (getattr(zmq, name) for name in _SOCKETS[config.zmq_pattern])
        self._tx_sock = self._rx_sock = None
        self._tx_lock = threading.Lock()
        self._cyclic = CyclicTx()  # before the sockets: _close() on a failed bind stops it
        # srsRAN's one-byte request asks for one block: 1 ms, its subframe (1920 samples at 1.92 MS/s)
        self.block_items = max(1, int(round(config.sample_rate_hz * 1e-3)))
        try:
            if config.tx_uri:
                self._tx_sock = self._ctx.socket(tx_type)
                self._tx_sock.setsockopt(zmq.LINGER, 0)
                try:
                    self._tx_sock.bind(config.tx_uri)
                except zmq.ZMQError as exc:
                    raise RadioError(
                        f"cannot bind tx_uri {config.tx_uri!r}: {exc.strerror}; another radio or emulator holds "
                        "that port: set tx_uri to a free one (e.g. tcp://127.0.0.1:5565)"
                    ) from None
            self._rx_sock = self._ctx.socket(rx_type)
            self._rx_sock.setsockopt(zmq.LINGER, 0)
            if config.zmq_pattern == "pub-sub":
                self._rx_sock.setsockopt(zmq.SUBSCRIBE, b"")
            try:
                self._rx_sock.connect(config.uri)
            except zmq.ZMQError as exc:
                raise RadioError(
                    f"cannot connect uri {config.uri!r}: {exc.strerror}; write it as tcp://HOST:PORT"
                ) from None
        except RadioError:
            self._close()
            raise
        self._leftover = np.zeros(0, np.complex64)
        self._tx_offset = 0
        self._rx_next_offset: int | None = None
        self._pending_req = False

    def _apply(self, cfg: RadioConfig) -> None:
        """Settings travel with the samples' metadata; the stream itself has no tuner."""

    # ------------------------------------------------------------------ TX
    def _send(self, x: np.ndarray, timeout_s: float) -> None:
        zmq = self._zmq
        sock = self._tx_sock
        with self._tx_lock:
            if self.config.zmq_pattern == "req-rep":
                # answer one request per message: a uint32 request (GNU Radio) gets at most the items it
                # asks for, any other (srsRAN's one byte) one block of 1 ms
                if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
                    raise RadioError(f"no receiver asked for samples at {self.config.tx_uri!r} within {timeout_s:g} s")
                frames = sock.recv_multipart()
                raw = frames[0] if len(frames) == 1 else b""
                want = decode_request(raw) if len(raw) == 4 else (self.block_items if raw else 0)
                x = x[: min(want, MAX_MESSAGE_ITEMS)]  # a refused request (0 items) gets an empty answer
            else:
                x = x[:MAX_MESSAGE_ITEMS]
            msg = encode_iq(x, pass_tags=self.config.zmq_pass_tags, offset=self._tx_offset)
            if self.config.zmq_pattern != "req-rep" and not sock.poll(int(timeout_s * 1000), zmq.POLLOUT):
                raise RadioError(
                    f"TX at {self.config.tx_uri!r} is blocked for {timeout_s:g} s: no receiver is connected or "
                    "it stopped reading (is the channel emulator running?)"
                )
            sock.send(msg, copy=False)
            self._tx_offset += len(x)

    def tx(self, samples: np.ndarray, cyclic: bool = False) -> None:
        if self._tx_sock is None:
            raise RadioError("this zmq radio has no tx_uri; set tx_uri='tcp://127.0.0.1:5555' to transmit")
        x = as_complex64(samples)
        self._cyclic.stop()
        if not cyclic:
            self._send_all(x, self.config.timeout_s)
            return
        self._cyclic.start(lambda: self._cyclic_loop(x))

    def _send_all(self, x: np.ndarray, timeout_s: float) -> None:
        sent = 0
        while sent < len(x):  # REP may hand out fewer items than we have; long bursts go in pieces
            before = self._tx_offset
            self._send(x[sent:], timeout_s)
            sent += self._tx_offset - before

    def _cyclic_loop(self, x: np.ndarray) -> None:
        period_s = len(x) / self.config.sample_rate_hz
        t_next = time.monotonic()
        while not self._cyclic.stopped.is_set():
            try:
                self._send_all(x, 0.2)
            except RadioError:
                continue  # nobody listening yet: keep trying until stopped
            t_next += period_s
            self._cyclic.stopped.wait(max(0.0, t_next - time.monotonic()))

    def stop_tx(self) -> None:
        """Stop a cyclic transmission."""
        self._cyclic.stop()

    # ------------------------------------------------------------------ RX
    def _rx(self, n: int) -> RxResult:
        zmq = self._zmq
        parts, have = [self._leftover], len(self._leftover)
        overflows = 0
        t_first = time.time()
        deadline = time.monotonic() + self.config.timeout_s
        while have < n:
            if self.config.zmq_pattern == "req-rep" and not self._pending_req:
                self._rx_sock.send(encode_request(n - have))
                self._pending_req = True
            left_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            if not self._rx_sock.poll(left_ms, zmq.POLLIN):
                got = np.concatenate(parts)
                partial = RxResult(got, t_first, overflows, 0, self._metadata())
                self._leftover = np.zeros(0, np.complex64)
                raise RadioError(
                    f"no IQ from {self.config.uri!r} within {self.config.timeout_s:g} s ({len(got)} of {n} "
                    "samples received, kept in .partial); is the transmitter or channel emulator running?",
                    partial=partial,
                )
            frames = self._rx_sock.recv_multipart()
            self._pending_req = False
            try:
                x, _tags = decode_iq(frames[-1], pass_tags=self.config.zmq_pass_tags)
            except ZmqIqError as exc:
                raise RadioError(f"malformed IQ message from {self.config.uri!r}: {exc}") from None
            if self.config.zmq_pass_tags:
                offset = int.from_bytes(frames[-1][3:11], "little")
                if self._rx_next_offset is not None and offset > self._rx_next_offset:
                    overflows += 1  # the sender's offset jumped: samples were dropped in between
                self._rx_next_offset = offset + len(x)
            if have == 0:
                t_first = time.time() - len(x) / self.config.sample_rate_hz
            parts.append(x)
            have += len(x)
        data = np.concatenate(parts)
        self._leftover = data[n:].copy()
        return RxResult(data[:n].copy(), t_first, overflows, 0, self._metadata())

    def _close(self) -> None:
        self._cyclic.stop()
        for s in (self._tx_sock, self._rx_sock):
            if s is not None:
                s.close(linger=0)
        self._ctx.term()
