"""The channel emulator as a ZeroMQ service: IQ in from a transmitter, impaired IQ out to a receiver.

Wire-compatible with GNU Radio gr-zeromq (raw complex64 messages, optional tag header; hil/zmq_iq.py):

    pattern    input side (towards the transmitter)          output side (towards the receiver)
    push-pull  PULL connects to the TX's PUSH sink           PUSH binds, the RX's PULL source connects
    pub-sub    SUB connects to the TX's PUB sink             PUB binds, the RX's SUB source connects
    req-rep    REQ connects to the TX's REP (srsRAN style)   REP binds; each RX request (GNU Radio: uint32
                                                             items wanted; srsRAN: one byte) pulls a block
                                                             from the TX

As in gr-zeromq, sinks bind and sources connect, so two services chain: the second connects to the
first's output endpoint. Each message is one block; a message whose length is not a whole number of
complex64 items (or with a bad tag header) is rejected and counted, and the stream goes on. A control
socket (REP, JSON) reports statistics and changes parameters while the stream runs:

    {"cmd": "stats"} | {"cmd": "params"} | {"cmd": "set", "params": {"snr_db": 5}} | {"cmd": "stop"}
    -> {"ok": true, ...} or {"ok": false, "error": "..."}

Hostile input never stops the service: every request gets its reply (an error naming the value and the
allowed range), IQ messages over MAX_IQ_MESSAGE_BYTES are cut off by ZeroMQ, requests are capped at
MAX_REQUEST_ITEMS, queues at QUEUE_MESSAGES messages per socket, control requests at MAX_CONTROL_BYTES
and MAX_JSON_DEPTH; NaN/inf samples are zeroed and counted by the emulator.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import queue
import re
import threading
import time
from typing import Any

import numpy as np

from sagin_hil.datatypes import SampleBlock
from sagin_hil.hil.zmq_iq import ZmqIqError, decode_iq_frames, decode_request, encode_iq, encode_request

__all__ = ["EmulatorService", "BindError", "PATTERNS", "MAX_IQ_MESSAGE_BYTES", "MAX_REQUEST_ITEMS",
           "MAX_CONTROL_BYTES", "MAX_JSON_DEPTH", "QUEUE_MESSAGES"]

log = logging.getLogger(__name__)

PATTERNS = {"push-pull": ("PULL", "PUSH"), "pub-sub": ("SUB", "PUB"), "req-rep": ("REQ", "REP")}
MAX_IQ_MESSAGE_BYTES = 1 << 24  # 2 Mi complex64 items; ZeroMQ drops a connection sending more (ZMQ_MAXMSGSIZE)
MAX_REQUEST_ITEMS = 1 << 21  # req-rep: a larger "items wanted" is served with this many (REP may answer fewer)
MAX_CONTROL_BYTES = 1 << 16  # a longer control request gets an error reply (ZeroMQ cuts off at 1 MiB)
MAX_JSON_DEPTH = 16  # control requests are flat: {"cmd", "params": {name: number}}
QUEUE_MESSAGES = 64  # high-water mark of each IQ socket: with the largest messages, 1 GiB queued per side
_ERROR_CHARS = 400  # error texts are cut here (a bad value may be a 64 KiB string)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


class BindError(RuntimeError):
    """An endpoint this service binds is taken or malformed; `option` is the setting to change."""

    def __init__(self, option: str, endpoint: str, reason: str):
        super().__init__(f"cannot bind {option} {endpoint}: {reason}; choose another endpoint (port) for {option}")
        self.option, self.endpoint, self.reason = option, endpoint, reason


def json_depth(raw: bytes) -> int:
    """Deepest nesting of [ and { in a JSON text (strings skipped), without parsing it."""
    a = np.frombuffer(_STRING.sub(b'""', raw), np.uint8)
    opens = (a == ord("[")) | (a == ord("{"))
    closes = (a == ord("]")) | (a == ord("}"))
    return int(np.max(np.cumsum(opens.astype(np.int64) - closes), initial=0))


def _cut(text: str) -> str:
    return text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS] + f"... ({len(text)} characters)"


class EmulatorService:
    """Serve one ChannelEmulator between two ZeroMQ endpoints.

    Parameters
    ----------
    emulator: a ChannelEmulator (or the ScenarioChannel of `ChannelEmulator.for_link`).
    tx_endpoint: where the transmitter's gr-zeromq sink is bound (this service connects), e.g.
        "tcp://127.0.0.1:5555".
    rx_endpoint: where this service binds its output for the receiver, e.g. "tcp://127.0.0.1:5556".
    pattern: "push-pull", "pub-sub" or "req-rep".
    control_endpoint: optional REP endpoint for JSON control requests (bound).
    pass_tags: messages carry the gr-zeromq tag header (tags pass through, offsets kept).
    start_time_s: scenario time of the first sample (blocks are stamped start_time_s + n / fs).
    upstream_timeout_ms: req-rep only: how long to wait for the transmitter before answering zeros.
    send_timeout_ms: push-pull: how long to wait for a receiver before dropping (and counting) a message.
    request_items: req-rep: the block asked for by a request that names no count (srsRAN); default 1 ms.
    workers: 2 runs the channel in a thread of its own beside the socket thread (push-pull and pub-sub), so
        the service uses two cores. 1 does everything in one thread: at about 5 ns a sample the channel
        leaves it time for 61.44 MS/s, and the hand-over between two threads costs more than it saves.
    rt_priority: 1-99 asks the OS for real-time scheduling (SCHED_FIFO at this priority) of the service's
        threads, as SDR drivers do, so that other work on a busy machine cannot hold up a paced stream for
        a scheduler time slice; it needs CAP_SYS_NICE or an rtprio limit (`ulimit -r`). Where the OS refuses,
        a warning says so once and the service runs at normal priority; `stats()["rt_priority"]` says
        what was granted. 0 (default): normal scheduling.

    A real-time emulator (`realtime=True`) that falls behind says so: `stats()["realtime"]` holds the lag
    behind the wall clock, its maximum and the late blocks, and a warning is logged (at most once a second).

    Use start()/stop() to run it in a background thread, or run() to block (the CLI does).
    """

    def __init__(
        self, emulator: Any, tx_endpoint: str, rx_endpoint: str, pattern: str = "push-pull",
        control_endpoint: str | None = None, pass_tags: bool = False, start_time_s: float = 0.0,
        upstream_timeout_ms: int = 1000, send_timeout_ms: int = 5000, poll_ms: int = 20,
        request_items: int | None = None, workers: int = 1, rt_priority: int = 0,
    ) -> None:
        if pattern not in PATTERNS:
            raise ValueError(f"pattern = {pattern!r}; choose one of {sorted(PATTERNS)}")
        for name, ep in (("tx_endpoint", tx_endpoint), ("rx_endpoint", rx_endpoint)):
            if not isinstance(ep, str) or "://" not in ep:
                raise ValueError(f"{name} = {ep!r} is not a ZeroMQ endpoint; write e.g. 'tcp://127.0.0.1:5555'")
        self.emulator = emulator
        self.tx_endpoint, self.rx_endpoint, self.pattern = tx_endpoint, rx_endpoint, pattern
        self.control_endpoint = control_endpoint
        self.pass_tags = pass_tags
        self.start_time_s = float(start_time_s)
        self.upstream_timeout_ms = upstream_timeout_ms
        self.send_timeout_ms = send_timeout_ms
        self.request_items = request_items or max(1, int(round(emulator.sample_rate_hz * 1e-3)))
        if not 1 <= self.request_items <= MAX_REQUEST_ITEMS:
            raise ValueError(f"request_items = {request_items} must be in [1, {MAX_REQUEST_ITEMS}]")
        self.poll_ms = poll_ms
        if workers not in (1, 2):
            raise ValueError(f"workers = {workers!r}: 1 (one thread) or 2 (sockets and channel apart)")
        self.workers = workers
        if isinstance(rt_priority, bool) or not isinstance(rt_priority, int) or not 0 <= rt_priority <= 99:
            raise ValueError(f"rt_priority = {rt_priority!r}: 0 (normal scheduling) or a SCHED_FIFO priority 1-99")
        self.rt_priority = rt_priority
        self._rt_granted: bool | None = None  # None until the service thread has asked
        self._queue: queue.Queue = queue.Queue(maxsize=8)  # workers=2: blocks on their way to the channel
        self._late_seen, self._late_logged_at = 0, 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.counters = dict(messages_in=0, messages_out=0, samples_in=0, samples_out=0, rejected=0,
                             dropped=0, gaps=0, capped_requests=0, tags_dropped=0, control_requests=0, control_errors=0,
                             internal_errors=0)
        self.last_reject: str | None = None
        self.last_error: str | None = None
        self._t0_wall = time.perf_counter()

    # ------------------------------------------------------------------------------------------ control
    def stats(self) -> dict[str, Any]:
        """Counters, throughput and the emulator's own statistics (JSON-safe)."""
        with self._lock:
            em = self.emulator.stats()
        uptime = time.perf_counter() - self._t0_wall
        out = {**self.counters, "pattern": self.pattern, "tx_endpoint": self.tx_endpoint,
               "rx_endpoint": self.rx_endpoint, "last_reject": self.last_reject, "last_error": self.last_error,
               "uptime_s": uptime, "workers": self.workers,
               "rt_priority": {"asked": self.rt_priority, "granted": self._rt_granted},
               "msps": self.counters["samples_out"] / uptime / 1e6, "emulator": em,
               "realtime": em.get("realtime")}
        return _sanitize(out)

    def _check_pace(self) -> None:
        """Log when a real-time emulator has fallen behind since the last look (once a second at most)."""
        late = getattr(self.emulator, "late_blocks", 0)
        if late < self._late_seen:  # the emulator's counts were reset (reset_lag): count again from there
            self._late_seen = 0
        now = time.perf_counter()
        if late > self._late_seen and now - self._late_logged_at >= 1.0:
            log.warning("emulator service: behind real time by %.1f ms (max %.1f ms, %d late blocks at %.4g MS/s)",
                        1e3 * self.emulator.lag_s, 1e3 * self.emulator.max_lag_s, late,
                        self.emulator.sample_rate_hz / 1e6)
            self._late_seen, self._late_logged_at = late, now

    def update(self, **changes: Any) -> dict[str, Any]:
        """Change channel parameters (ChannelParams fields) from the next sample on."""
        with self._lock:
            self.emulator.update(**changes)
            return dataclasses.asdict(self.emulator.params)

    def _handle_control(self, frames: list[bytes]) -> dict[str, Any]:
        self.counters["control_requests"] += 1
        try:
            if len(frames) != 1:
                raise ValueError(f"a control request is one frame (one JSON object); got {len(frames)} frames")
            raw = frames[0]
            if len(raw) > MAX_CONTROL_BYTES:
                raise ValueError(f"control request of {len(raw)} bytes exceeds {MAX_CONTROL_BYTES} bytes")
            depth = json_depth(raw)
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"control request nested {depth} deep; at most {MAX_JSON_DEPTH} levels")
            req = json.loads(raw)
            if not isinstance(req, dict) or "cmd" not in req:
                raise ValueError('a control request is a JSON object with "cmd": stats, params, set or stop')
            cmd = req["cmd"]
            if cmd == "stats":
                return {"ok": True, "stats": self.stats()}
            if cmd == "params":
                with self._lock:
                    return {"ok": True, "params": _sanitize(dataclasses.asdict(self.emulator.params))}
            if cmd == "set":
                params = req.get("params")
                if not isinstance(params, dict) or not params:
                    raise ValueError('"set" needs "params": {name: value, ...} (ChannelParams fields)')
                params = {k: float(v) if isinstance(v, str) and v in ("inf", "-inf") else v for k, v in params.items()}
                return {"ok": True, "params": _sanitize(self.update(**params))}
            if cmd == "stop":
                self._stop.set()
                return {"ok": True, "stopping": True}
            raise ValueError(f"unknown cmd {_cut(repr(cmd))}; use stats, params, set or stop")
        except (ValueError, TypeError, RecursionError) as exc:
            self.counters["control_errors"] += 1
            return {"ok": False, "error": _cut(str(exc))}
        except Exception as exc:  # noqa: BLE001 (a bug must cost one reply, not the service)
            self._internal(exc)
            self.counters["control_errors"] += 1
            return {"ok": False, "error": _cut(f"internal error: {exc}")}

    def _internal(self, exc: BaseException) -> None:
        self.counters["internal_errors"] += 1
        self.last_error = _cut(f"{type(exc).__name__}: {exc}")
        log.exception("emulator service: unexpected error (counted, the service goes on)")

    # ------------------------------------------------------------------------------------------ streaming
    def _process(self, samples: np.ndarray) -> np.ndarray:
        with self._lock:
            em = self.emulator
            t = self.start_time_s + em.samples_processed / em.sample_rate_hz
            return em.process(SampleBlock(samples, em.sample_rate_hz, em.carrier_hz, t)).samples

    def _accept(self, frames: list[bytes]) -> tuple[np.ndarray, list, bytes | None] | None:
        try:
            samples, tags, key = decode_iq_frames(frames, self.pass_tags)
        except (ZmqIqError, RecursionError) as exc:
            self.counters["rejected"] += 1
            self.last_reject = str(exc)
            return None
        self.counters["messages_in"] += 1
        self.counters["samples_in"] += len(samples)
        return samples, tags, key

    def _encode(self, out: np.ndarray, tags: list, offset: int, key: bytes | None) -> list:
        # without tags a gr-zeromq payload is the complex64 samples themselves: the fresh output array is
        # sent as it is (zero-copy in _send_out; nothing writes to it afterwards)
        payload = encode_iq(out, tags, pass_tags=self.pass_tags, offset=offset) if self.pass_tags else out
        return [key, payload] if key else [payload]

    def run(self) -> None:
        """Serve until stop() (or a "stop" control request). Blocks."""
        import zmq

        from sagin_hil.phy.channel.emulator import warm_up

        warm_up()  # compile (or load) the kernels before the first client can wait on them
        if self.rt_priority:
            self._rt_granted = _realtime_thread(self.rt_priority)
            if not self._rt_granted:
                log.warning("emulator service: real-time scheduling (SCHED_FIFO %d) not permitted; running at normal "
                            "priority (grant CAP_SYS_NICE or raise `ulimit -r`)", self.rt_priority)
        own_ctx = bool(self._rt_granted)  # the sockets' I/O thread too: a context scheduled before it starts
        ctx = zmq.Context() if own_ctx else zmq.Context.instance()
        if own_ctx:  # asked only once our own thread was granted: libzmq asserts on a refusal
            ctx.set(zmq.THREAD_SCHED_POLICY, os.SCHED_FIFO)
            ctx.set(zmq.THREAD_PRIORITY, self.rt_priority)
        in_type, out_type = (getattr(zmq, n) for n in PATTERNS[self.pattern])
        sin, sout, sctl = ctx.socket(in_type), ctx.socket(out_type), None
        worker = None
        try:
            for s in (sin, sout):
                s.setsockopt(zmq.LINGER, 0)
                s.setsockopt(zmq.SNDHWM, QUEUE_MESSAGES)
                s.setsockopt(zmq.RCVHWM, QUEUE_MESSAGES)
            sin.setsockopt(zmq.MAXMSGSIZE, MAX_IQ_MESSAGE_BYTES)
            # the receiver side only sends requests (req-rep) or nothing: 64 KiB is plenty
            sout.setsockopt(zmq.MAXMSGSIZE, 1 << 16)
            if self.pattern == "pub-sub":
                sin.setsockopt(zmq.SUBSCRIBE, b"")
            if self.pattern == "req-rep":
                sin.setsockopt(zmq.REQ_RELAXED, 1)  # a lost reply must not wedge the REQ state machine
                sin.setsockopt(zmq.REQ_CORRELATE, 1)
            _bind(sout, self.rx_endpoint, "rx_endpoint (--rx)")
            sin.connect(self.tx_endpoint)
            poller = zmq.Poller()
            if self.control_endpoint:
                sctl = ctx.socket(zmq.REP)
                sctl.setsockopt(zmq.LINGER, 0)
                sctl.setsockopt(zmq.MAXMSGSIZE, 1 << 20)
                _bind(sctl, self.control_endpoint, "control_endpoint (--control)")
                poller.register(sctl, zmq.POLLIN)
            poller.register(sout if self.pattern == "req-rep" else sin, zmq.POLLIN)
            if self.workers == 2 and self.pattern != "req-rep":
                worker = threading.Thread(target=self._channel_worker, args=(sout,), name="emulator-channel",
                                          daemon=True)
                worker.start()
            self._ready.set()
            offset = 0
            while not self._stop.is_set():
                events = dict(poller.poll(self.poll_ms))
                if sctl is not None and sctl in events:
                    self._serve_control(sctl)
                if self.pattern == "req-rep":
                    if sout in events:
                        offset = self._serve_request(sout, sin, offset)
                elif sin in events:
                    if worker is not None:
                        self._enqueue(sin)
                    else:
                        offset = self._forward(sin, sout, offset)
        except BaseException as exc:  # noqa: BLE001 (reported by stop()/the CLI)
            self._error = exc
            self._ready.set()
            raise
        finally:
            self._stop.set()
            if worker is not None:
                worker.join(5.0)
            for s in (sin, sout, sctl):
                if s is not None:
                    s.close(0)
            if own_ctx:
                ctx.term()

    def _serve_control(self, sctl: Any) -> None:
        """One control request, one JSON reply (REP must answer every request, whatever it held)."""
        frames = sctl.recv_multipart()
        reply = self._handle_control(frames)
        try:
            data = json.dumps(_sanitize(reply), allow_nan=False).encode()
        except (ValueError, TypeError, RecursionError) as exc:
            self._internal(exc)
            data = json.dumps({"ok": False, "error": "internal error: the reply could not be encoded"}).encode()
        sctl.send(data)

    def _enqueue(self, sin: Any) -> None:
        """workers=2, socket thread: one message in, handed to the channel thread (waits while it is busy:
        back-pressure reaches the transmitter through ZeroMQ's queue, nothing is dropped here)."""
        got = self._accept(sin.recv_multipart(copy=False))
        if got is None or len(got[0]) == 0:
            return
        while not self._stop.is_set():
            try:
                self._queue.put(got, timeout=self.poll_ms / 1000)
                return
            except queue.Full:
                continue

    def _channel_worker(self, sout: Any) -> None:
        """workers=2, channel thread: impair each queued block and send it on."""
        if self._rt_granted:
            _realtime_thread(self.rt_priority)
        offset = 0
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                got = self._queue.get(timeout=self.poll_ms / 1000)
            except queue.Empty:
                continue
            offset = self._impair_and_send(got, sout, offset)

    def _forward(self, sin: Any, sout: Any, offset: int) -> int:
        """push-pull / pub-sub: one message in, its impaired samples out."""
        frames = sin.recv_multipart(copy=False)  # zmq.Frames: decoding makes the one copy the channel needs
        try:
            got = self._accept(frames)
            if got is None or len(got[0]) == 0:
                return offset
        except Exception as exc:  # noqa: BLE001 (a bug must cost one message, not the stream)
            self._internal(exc)
            return offset
        return self._impair_and_send(got, sout, offset)

    def _impair_and_send(self, got: tuple, sout: Any, offset: int) -> int:
        try:
            samples, tags, key = got
            out = self._process(samples)
            self._check_pace()
            try:
                frames_out = self._encode(out, tags, offset, key)
            except ZmqIqError as exc:  # a tag that parsed but cannot be written back (a symbol past 64 KiB)
                self.counters["tags_dropped"] += len(tags)
                self.last_reject = f"tags dropped, samples passed: {exc}"
                frames_out = self._encode(out, [], offset, key)
        except Exception as exc:  # noqa: BLE001 (a bug must cost one message, not the stream)
            self._internal(exc)
            return offset
        self._send_out(sout, frames_out, len(out))
        return offset + len(out)

    def _send_out(self, sout: Any, frames: list[bytes], n: int) -> None:
        """Send, waiting up to send_timeout_ms for a receiver (back-pressure, as a gr-zeromq sink does);
        past that the message is dropped and counted so the stream and the control socket stay alive."""
        import zmq

        deadline = time.perf_counter() + self.send_timeout_ms / 1000
        while True:
            try:
                sout.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
                self.counters["messages_out"] += 1
                self.counters["samples_out"] += n
                return
            except zmq.Again:
                if self._stop.is_set() or time.perf_counter() > deadline:
                    self.counters["dropped"] += 1
                    return
                sout.poll(self.poll_ms, zmq.POLLOUT)

    def _serve_request(self, sout: Any, sin: Any, offset: int) -> int:
        """One lock-step exchange: a receiver's request pulls samples from the transmitter through the channel.

        A 4-byte request is GNU Radio's uint32 "items wanted" (capped at MAX_REQUEST_ITEMS: REP may answer
        fewer); any other one-frame request (srsRAN's one byte) asks for one block of `request_items`.
        Whatever the transmitter answers passes through (srsRAN sends its own block size); a transmitter
        that stays silent is zero-filled and counted as a gap. REP must answer every request: a refused
        one gets an empty message (no items) and is counted in `rejected` with the reason in `last_reject`.
        """
        import zmq

        frames = sout.recv_multipart()
        try:
            raw = frames[0]
            n = 0
            if len(frames) != 1:
                self._reject(f"request of {len(frames)} frames; a request is one frame (uint32 items wanted)")
            elif len(raw) == 4:
                n = decode_request(raw)
                if n == 0:
                    self._reject("request of 4 bytes asks for no items (send a uint32 count >= 1)")
            elif raw:
                n = self.request_items
            else:
                self._reject("request of 0 bytes asks for no items (send a uint32 count >= 1)")
            if n > MAX_REQUEST_ITEMS:
                self.counters["capped_requests"] += 1
                n = MAX_REQUEST_ITEMS
            if n == 0:
                sout.send(b"")  # an empty message carries no items
                return offset
            sin.send(encode_request(n))
            samples = None
            if sin.poll(self.upstream_timeout_ms, zmq.POLLIN):
                got = self._accept(sin.recv_multipart())
                samples = got[0] if got is not None else None
            if samples is None:  # the transmitter is silent: zero-fill, as srsRAN does for gaps
                self.counters["gaps"] += 1
                samples = np.zeros(n, np.complex64)
            out = self._process(samples)
            self._check_pace()
            reply = self._encode(out, [], offset, None)
        except Exception as exc:  # noqa: BLE001 (REP still owes an answer)
            self._internal(exc)
            sout.send(b"")
            return offset
        sout.send_multipart(reply)
        self.counters["messages_out"] += 1
        self.counters["samples_out"] += len(out)
        return offset + len(out)

    def _reject(self, why: str) -> None:
        self.counters["rejected"] += 1
        self.last_reject = why

    # ------------------------------------------------------------------------------------------ thread
    def start(self, timeout_s: float = 5.0) -> EmulatorService:
        """Run in a daemon thread; returns once the sockets are bound (raises if binding failed)."""
        if self._thread is not None:
            raise RuntimeError("EmulatorService already started; stop() it first")
        from sagin_hil.phy.channel.emulator import warm_up

        warm_up()  # here, not inside the thread: a cold compile must not count against timeout_s
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_quietly, name="emulator-service", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"EmulatorService did not start within {timeout_s} s")
        if self._error is not None:
            raise RuntimeError(f"EmulatorService failed to start: {self._error}") from self._error
        return self

    def _run_quietly(self) -> None:
        try:
            self.run()
        except BaseException:  # noqa: BLE001 (kept in self._error)
            pass

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and close the sockets."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> EmulatorService:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _realtime_thread(priority: int) -> bool:
    """SCHED_FIFO at `priority` for the calling thread; False where the OS refuses it or has no such call."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(priority))
    except OSError:  # EPERM without CAP_SYS_NICE / rtprio; EINVAL where the policy is missing
        return False
    return True


def _bind(sock: Any, endpoint: str, option: str) -> None:
    import zmq

    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        raise BindError(option, endpoint, exc.strerror) from None


def _sanitize(obj: Any) -> Any:
    """Strict-JSON form: numpy scalars to Python, non-finite floats to "inf" / "-inf" / "nan"."""
    if isinstance(obj, dict):
        return {str(k): _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)
