"""Hostile input at the channel-emulator service, over real ZeroMQ sockets.

First every message of issue 20 on its own (each answered with a clear error, the service then answering a
valid request correctly); then hypothesis fuzzing of the control socket (the `sagin-hil emulator serve`
process), the IQ input (raw and with gr-zeromq tag headers: the tag parser) and the REQ/REP side.
The fast subset runs in `make test`; `make fuzz` (marker `fuzz`) sends FUZZ_MESSAGES (100,000) hostile
messages to each service and writes the counts to runs/fuzz/<service>.json.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sagin_hil.hil.emulator_service import MAX_CONTROL_BYTES, MAX_REQUEST_ITEMS, EmulatorService
from sagin_hil.hil.zmq_iq import (
    MAX_PMT_DEPTH,
    IqTag,
    ZmqIqError,
    decode_iq,
    decode_iq_frames,
    encode_iq,
    encode_request,
    pmt_serialize,
)
from sagin_hil.phy.channel.emulator import MAX_ABS_SAMPLE, ChannelEmulator, ChannelParams
from sagin_hil.phy.channel.scenario import Scenario
from sagin_hil.hil.ports import free_endpoint

FS = 1e6
FUZZ_MESSAGES = int(os.environ.get("FUZZ_MESSAGES", "100000"))  # per service, `make fuzz`
FAST_MESSAGES = 300  # per service in `make test`
REPORT_DIR = Path(os.environ.get("FUZZ_REPORT_DIR", "runs/fuzz"))
PARAM_NAMES = [f.name for f in dataclasses.fields(ChannelParams)]




def fuzz_settings(n: int):
    # no shrinking: a failure prints its example; shrinking against a live service would take long
    return settings(max_examples=n, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))


def examples_per_run(n_messages: int) -> int:
    """Hypothesis examples per call (a batch is ~4 messages); calls repeat until n_messages were sent."""
    return max(10, min(500, n_messages // 4))


def run_until(run, counts: dict, n_messages: int) -> None:
    """Call the hypothesis test `run` (fresh random examples each call) until n_messages were sent."""
    t0 = time.perf_counter()
    while counts["messages"] < n_messages:
        run()
    counts["wall_s"] = round(time.perf_counter() - t0, 1)


def report(service: str, counts: dict) -> None:
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / f"{service}.json").write_text(json.dumps(counts, indent=2))
    print(f"fuzz {service}: {counts}")


def sanitized(x: np.ndarray) -> np.ndarray:
    """What the emulator makes of an input block: NaN/inf zeroed, huge I/Q clipped."""
    iq = x.astype(np.complex64).view(np.float32).reshape(-1, 2).copy()
    iq[~np.isfinite(iq).all(axis=1)] = 0
    np.clip(iq, -MAX_ABS_SAMPLE, MAX_ABS_SAMPLE, out=iq)
    return iq.view(np.complex64).ravel()


def signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


class Stream:
    """A transparent (or given) emulator service in a thread, with the transmitter's PUSH, the receiver's
    PULL and a control REQ."""

    def __init__(self, ctx, em=None, pass_tags=False):
        self.e_tx, self.e_out, self.e_ctl = free_endpoint(), free_endpoint(), free_endpoint()
        self.push, self.pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        self.req = ctx.socket(zmq.REQ)
        for s in (self.push, self.pull, self.req):
            s.setsockopt(zmq.LINGER, 0)
        self.push.bind(self.e_tx)
        self.em = em or ChannelEmulator(FS)
        self.pass_tags = pass_tags
        self.svc = EmulatorService(self.em, self.e_tx, self.e_out, control_endpoint=self.e_ctl, pass_tags=pass_tags)

    def __enter__(self):
        self.svc.start()
        self.pull.connect(self.e_out)
        self.req.connect(self.e_ctl)
        return self

    def __exit__(self, *exc):
        self.svc.stop()

    def control(self, frames: list[bytes], timeout_s: float = 10.0) -> dict:
        self.req.send_multipart(frames)
        assert self.req.poll(int(timeout_s * 1000)), f"no control reply to {frames!r:.200}"
        return json.loads(self.req.recv())

    def recv(self, timeout_s: float = 10.0) -> tuple[np.ndarray, list]:
        assert self.pull.poll(int(timeout_s * 1000)), "no samples came out"
        samples, tags, _ = decode_iq_frames(self.pull.recv_multipart(), self.pass_tags)
        return samples, tags

    def roundtrip(self, x: np.ndarray) -> np.ndarray:
        self.push.send(encode_iq(x, [] if self.pass_tags else None, offset=0) if self.pass_tags else encode_iq(x))
        got, n = [], 0
        while n < len(x):
            y, _ = self.recv()
            got.append(y)
            n += len(y)
        return np.concatenate(got)


def assert_answers_correctly(s: Stream) -> None:
    """The service thread is alive, its control answers, and a valid block crosses the channel correctly."""
    assert s.svc.running and s.svc._error is None
    r = s.control([b'{"cmd": "params"}'])
    assert r["ok"], r
    params = {k: float(v) if v in ("inf", "-inf", "nan") else v for k, v in r["params"].items()}
    ChannelParams(**params)  # what the service holds is valid
    x = signal(512, 99)
    y = s.roundtrip(x)
    assert np.all(np.isfinite(y.view(np.float32)))
    if s.em.params == ChannelParams():  # transparent: the samples come out as they went in
        assert np.array_equal(y, x)


# ============================================================================ the messages of the issue
def test_two_frame_control_request_is_answered_not_fatal(ctx):
    with Stream(ctx) as s:
        r = s.control([b'{"cmd": "stats"}', b'{"cmd": "stats"}'])
        assert not r["ok"] and "one frame" in r["error"] and "2 frames" in r["error"]
        assert_answers_correctly(s)


def test_json_nested_100000_deep_is_refused(ctx):
    with Stream(ctx) as s:
        r = s.control([b"[" * 100_000 + b"]" * 100_000])  # 200 kB: refused for its size before parsing
        assert not r["ok"] and "200000 bytes exceeds 65536" in r["error"]
        r = s.control([b"[" * 30_000 + b"]" * 30_000])
        assert not r["ok"] and "nested 30000 deep; at most 16 levels" in r["error"]
        r = s.control([b'{"cmd": "set", "params": {"snr_db": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}}"])
        assert not r["ok"] and "nested" in r["error"]
        r = s.control([b'{"cmd": "' + b"x" * (MAX_CONTROL_BYTES + 1) + b'"}'])
        assert not r["ok"] and f"exceeds {MAX_CONTROL_BYTES} bytes" in r["error"]
        assert_answers_correctly(s)


@pytest.mark.parametrize("params, needle", [
    ({"snr_db": 1e6}, "snr_db = 1000000.0 is outside [-100, 200] dB"),
    ({"snr_db": -1e6}, "snr_db = -1000000.0 is outside [-100, 200] dB"),
    ({"gain_db": 1e300}, "gain_db = 1e+300 is outside [-300, 200] dB"),
    ({"phase_noise_dbc_hz": 1e300}, "phase_noise_dbc_hz = 1e+300 is outside [-200, 0] dBc/Hz"),
    ({"delay_s": 1e7}, "delay_s = 10000000.0 is outside [0, 1] s"),
    ({"delay_s": 0.5, "max_doppler_hz": 1.0}, None),  # valid at 1 MS/s: half a million samples of history
    ({"snr_db": "x"}, "snr_db = 'x' must be a number in [-100, 200] dB"),
    ({"n_sinusoids": 6.0}, "n_sinusoids = 6.0 must be an even integer in [4, 1024]"),
    ({"bogus": 1}, "unknown channel parameter(s) ['bogus']"),
    ({"doppler_hz": "nan"}, "doppler_hz = 'nan' must be a number"),
    ({"blocked": 1}, "blocked = 1 must be true or false"),
])
def test_absurd_or_mistyped_parameters_are_refused_before_storing(ctx, params, needle):
    """On the CLI's ScenarioChannel, which used to keep a bad override and die on the next block."""
    em = ChannelEmulator.for_link(Scenario.default(), "uav0", "user0", FS, snr_db=20.0, signal_power=1.0)
    with Stream(ctx, em) as s:
        before = s.control([b'{"cmd": "params"}'])["params"]
        overrides = dict(em.overrides)
        r = s.control([json.dumps({"cmd": "set", "params": params}).encode()])
        if needle is None:
            assert r["ok"], r
        else:
            assert not r["ok"] and needle in r["error"], r
            assert s.control([b'{"cmd": "params"}'])["params"] == before  # nothing was stored
            assert em.overrides == overrides
        for _ in range(3):  # blocks cross the scenario's parameter refreshes
            y = s.roundtrip(signal(20_000, 1))
            assert len(y) == 20_000 and np.all(np.isfinite(y.view(np.float32)))
        assert_answers_correctly(s)


def test_delay_beyond_the_history_is_refused_with_the_rate():
    em = ChannelEmulator(61.44e6)
    with pytest.raises(ValueError, match=r"delay_s = 0.5 .* 30720000 samples at 6.144e\+07 samples/s; .* at most "
                                         r"16777216 samples"):
        em.update(delay_s=0.5)
    with pytest.raises(ValueError, match=r"phase step of .* rad per sample .* at most 0.1 rad"):
        ChannelEmulator(1e3).update(phase_noise_dbc_hz=-10.0)
    assert em.params == ChannelParams()
    # a drifting delay is held at the end of the history, never grown without bound: 4096 samples short of
    # it and drifting 0.01 sample per sample, it would pass it after 409,600 samples
    em.update(delay_s=((1 << 24) - 4096) / em.sample_rate_hz, delay_rate_s_per_s=1e-2)
    for _ in range(2):
        em.process(np.ones(1 << 20, np.complex64))
    from sagin_hil.phy.channel.kernels import RING_PAD  # the ring: a power of two plus a mirrored head

    assert em._state.ring.shape[0] - RING_PAD <= 2 * (1 << 24)
    assert em.current_delay_s() * em.sample_rate_hz == 1 << 24


def test_inf_sample_does_not_poison_the_noise_level(ctx):
    """One inf (or a finite 2e19: its float32 square is inf) used to make every later sample inf/NaN."""
    em = ChannelEmulator(FS, 0.0, ChannelParams(snr_db=10.0), seed=3)
    with Stream(ctx, em) as s:
        s.roundtrip(signal(10_000, 1))
        bad = signal(10_000, 2)
        bad[100], bad[200], bad[300] = np.inf, complex(np.nan, 0), complex(2e19, 0)
        y_bad = s.roundtrip(bad)
        x = signal(100_000, 3)
        y = s.roundtrip(x)
        stats = s.control([b'{"cmd": "stats"}'])["stats"]["emulator"]
    assert np.all(np.isfinite(y_bad.view(np.float32))) and np.all(np.isfinite(y.view(np.float32)))
    assert stats["nonfinite_samples"] == 2 and stats["clipped_samples"] == 1
    # 2e19 was clipped to 1e15: it raises the measured mean power (a real, if absurd, sample) but stays
    # finite; the noise level follows the power measured so far, never inf
    assert math.isfinite(stats["input_power"])


def test_inf_sample_then_steady_snr():
    """With the huge sample absent, an inf one costs nothing: the SNR after it is the SNR asked for."""
    em = ChannelEmulator(FS, 0.0, ChannelParams(snr_db=10.0), seed=4)
    em.process(signal(50_000, 1))
    x = signal(50_000, 2)
    x[10] = np.inf
    em.process(x)
    x = signal(200_000, 3)
    y = em.process(x)
    snr = 10 * np.log10(np.mean(np.abs(x) ** 2) / np.mean(np.abs(y - x) ** 2))
    assert snr == pytest.approx(10.0, abs=0.1) and em.nonfinite_samples == 1


def test_req_rep_two_frame_and_huge_requests(ctx):
    e_tx, e_out = free_endpoint(), free_endpoint()
    rep, dealer = ctx.socket(zmq.REP), ctx.socket(zmq.DEALER)
    rep.bind(e_tx)
    with EmulatorService(ChannelEmulator(FS), e_tx, e_out, pattern="req-rep", upstream_timeout_ms=300) as svc:
        dealer.connect(e_out)
        dealer.send_multipart([b"", encode_request(10), encode_request(10)])  # two frames after the envelope
        assert dealer.poll(5000)
        assert dealer.recv_multipart() == [b"", b""]  # REP's answer: no items
        assert "2 frames" in svc.stats()["last_reject"]
        dealer.send_multipart([b"", b"\xff\xff\xff\xff"])  # 4294967295 items: served with the cap, not 32 GiB
        assert rep.poll(5000)
        assert struct.unpack("=I", rep.recv())[0] == MAX_REQUEST_ITEMS
        rep.send(encode_iq(np.ones(1000, np.complex64)))
        assert dealer.poll(5000)
        assert len(decode_iq(dealer.recv_multipart()[-1])[0]) == 1000
        x = signal(700, 5)  # and a valid request is served exactly (transparent channel)
        dealer.send_multipart([b"", encode_request(700)])
        assert rep.poll(5000) and struct.unpack("=I", rep.recv())[0] == 700
        rep.send(encode_iq(x))
        assert dealer.poll(5000)
        assert np.array_equal(decode_iq(dealer.recv_multipart()[-1])[0], x)
        stats = svc.stats()
    assert stats["capped_requests"] == 1 and stats["rejected"] == 1 and svc._error is None


def test_tag_nested_5000_pairs_is_rejected_and_the_stream_goes_on(ctx):
    deep = struct.pack("<HBQQ", 0x5FF0, 1, 0, 1) + struct.pack("<Q", 0) + b"\x07" * 5000 + b"\x06" * 5001
    with pytest.raises(ZmqIqError, match=f"nested deeper than {MAX_PMT_DEPTH}"):
        decode_iq(deep, pass_tags=True)
    with Stream(ctx, pass_tags=True) as s:
        s.push.send(deep + np.ones(8, np.complex64).tobytes())
        x = signal(300, 7)
        s.push.send(encode_iq(x, [IqTag(5, "burst", (1, [2.0, "x"]))], offset=0))
        y, tags = s.recv()
        stats = s.control([b'{"cmd": "stats"}'])["stats"]
        assert np.array_equal(y, x) and tags == [IqTag(5, "burst", (1, [2.0, "x"]), False)]
        assert stats["rejected"] == 1 and "nested deeper" in stats["last_reject"]
        assert_answers_correctly(s)


def test_kernels_are_compiled_when_the_service_starts():
    """In a fresh process: after start() the kernel already has its machine code (compiled or loaded from
    numba's cache), so no client's first block waits for the compiler."""
    code = (
        "from sagin_hil.hil.emulator_service import EmulatorService\n"
        "from sagin_hil.phy.channel.emulator import ChannelEmulator\n"
        "from sagin_hil.phy.channel.kernels import channel_kernel\n"
        "assert not channel_kernel.signatures\n"
        "svc = EmulatorService(ChannelEmulator(1e6), 'tcp://127.0.0.1:1', 'tcp://127.0.0.1:*').start()\n"
        "print(len(channel_kernel.signatures)); svc.stop()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "1", out.stderr[-2000:]


# ============================================================================ fuzzing: strategies
weird_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([1e6, -1e6, 1e300, -1e300, 1e7, 6.0, 0, 1, -1, 0.5, "x", "inf", "-inf", "nan", None, True, False,
                     [], {}, [1, 2], "NTN-TDL-A", "NTN-TDL-Z", 1e-9, 2e-3, 100.0]),
    st.text(max_size=8),
)
params_map = st.dictionaries(st.sampled_from(PARAM_NAMES + ["bogus", "", "snr"]) | st.text(max_size=6),
                             weird_value, max_size=4)
command = st.sampled_from(["stats", "params", "set", "set", "set", "fly", "", 5, None]) | st.text(max_size=6)
json_request = st.builds(
    lambda c, p, extra: {**extra, "cmd": c, **({"params": p} if p is not None else {})},
    command, st.none() | params_map, st.dictionaries(st.text(max_size=4), weird_value, max_size=2),
).filter(lambda d: d.get("cmd") != "stop")  # a stop is obeyed, by design


def _json(obj) -> bytes:
    return json.dumps(obj).encode()  # NaN / Infinity tokens included: json.loads reads them


def _mutate(raw: bytes, edits: list[tuple[int, int]]) -> bytes:
    b = bytearray(raw)
    for pos, val in edits:
        if not b:
            break
        i = pos % (len(b) + 1)
        if val < 86:
            b[i % len(b)] = val * 3 % 256
        elif val < 172:
            b.insert(i, val)
        else:
            del b[i % len(b)]
    return bytes(b)


control_message = st.one_of(
    json_request.map(_json),
    json_request.map(_json),
    st.binary(max_size=200),
    st.tuples(json_request.map(_json), st.lists(st.tuples(st.integers(0, 10**4), st.integers(0, 255)),
                                                min_size=1, max_size=4)).map(lambda t: _mutate(*t)),
    st.integers(1, 120_000).map(lambda d: b"[" * d + b"]" * d),
    st.integers(1, 5_000).map(lambda d: b'{"cmd": "set", "params": {"snr_db": ' + b"[" * d + b"]" * d + b"}}"),
    st.integers(MAX_CONTROL_BYTES - 16, MAX_CONTROL_BYTES + 64).map(lambda n: b'{"cmd": "' + b"s" * n + b'"}'),
    st.sampled_from([b"", b"null", b"[]", b"{}", b'"stats"', b"1e999", b'{"cmd": {"cmd": "stats"}}',
                     b'{"cmd": "set", "params": {"snr_db": 1e999}}', b"\xff\xfe\x00"]),
)
control_frames = st.one_of(control_message.map(lambda m: [m]), control_message.map(lambda m: [m]),
                           st.lists(control_message, min_size=2, max_size=3))


def _iq_bytes(values: list[float]) -> bytes:
    a = np.array(values + [0.0] * (len(values) % 2), np.float32)
    return a.tobytes()


special_float = st.sampled_from([0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 3.4e38, -3.4e38, 1.8e19,
                                 2e19, 1e15, 1.1e15, 1e-45, 1e-38]) | st.floats(width=32)
raw_iq = st.lists(special_float, max_size=64).map(_iq_bytes)
pmt_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.complex_numbers(allow_nan=True),
    lambda inner: st.tuples(inner, inner) | st.lists(inner, min_size=2, max_size=2) | st.tuples(inner),
    max_leaves=8,
)
iq_tag = st.builds(IqTag, st.integers(0, 2**64 - 1), st.text(max_size=8), pmt_value, pmt_value)


def _tagged(values: list[float], tags: list[IqTag], offset: int) -> bytes:
    x = np.frombuffer(_iq_bytes(values), np.complex64)
    return encode_iq(x, tags, offset=offset)


def _deep_tag(depth: int, kind: int) -> bytes:
    body = (b"\x07" * depth + b"\x06" * (depth + 1)) if kind == 0 else (b"\x0c\x00\x00\x00\x01" * depth + b"\x06")
    return struct.pack("<HBQQ", 0x5FF0, 1, 0, 1) + struct.pack("<Q", 0) + body + b"\x06\x06"


tagged_iq = st.one_of(
    st.builds(_tagged, st.lists(special_float, max_size=32), st.lists(iq_tag, max_size=3), st.integers(0, 2**64 - 1)),
    st.tuples(st.builds(_tagged, st.lists(special_float, max_size=16), st.lists(iq_tag, max_size=2),
                        st.integers(0, 2**40)),
              st.lists(st.tuples(st.integers(0, 10**3), st.integers(0, 255)), min_size=1, max_size=4)
              ).map(lambda t: _mutate(*t)),
    st.builds(_deep_tag, st.integers(1, 6000), st.integers(0, 1)),
    st.builds(lambda n, v, m: struct.pack("<HBQQ", m, v, 0, n), st.integers(0, 2**64 - 1), st.integers(0, 255),
              st.sampled_from([0x5FF0, 0x5FF0, 0, 0xFFFF])),
    st.binary(max_size=80),
)


def _frames(payload: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(payload.map(lambda p: [p]), payload.map(lambda p: [p]), payload.map(lambda p: [p]),
                     st.tuples(st.binary(max_size=6), payload).map(list),  # a PUB key frame
                     st.lists(st.binary(max_size=24), min_size=3, max_size=4))


# ============================================================================ fuzzing: control socket
class CliService:
    """`sagin-hil emulator serve` as a separate process, as a user runs it."""

    def __init__(self, ctx):
        self.e_tx, self.e_out, self.e_ctl = free_endpoint(), free_endpoint(), free_endpoint()
        self.push, self.pull, self.req = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL), ctx.socket(zmq.REQ)
        for s in (self.push, self.pull, self.req):
            s.setsockopt(zmq.LINGER, 0)
        self.req.setsockopt(zmq.REQ_RELAXED, 1)
        self.push.bind(self.e_tx)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sagin_hil", "emulator", "serve", "--link", "uav0->user0", "--tx", self.e_tx,
             "--rx", self.e_out, "--control", self.e_ctl, "--sample-rate", str(FS), "--snr-db", "20",
             "--signal-power", "1.0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.pull.connect(self.e_out)
        self.req.connect(self.e_ctl)
        self.control([b'{"cmd": "stats"}'], timeout_s=120)

    def control(self, frames, timeout_s=10.0):
        self.req.send_multipart(frames)
        assert self.req.poll(int(timeout_s * 1000)), f"no control reply to {frames!r:.300} (exit {self.proc.poll()})"
        return json.loads(self.req.recv())

    def check(self):
        """Alive, answering, holding valid parameters, and streaming."""
        assert self.proc.poll() is None, self.proc.stderr.read()[-3000:]
        r = self.control([_json({"cmd": "set", "params": {"gain_db": -1.5}})])
        assert r["ok"] and r["params"]["gain_db"] == -1.5, r
        r = self.control([b'{"cmd": "params"}'])
        ChannelParams(**{k: float(v) if v in ("inf", "-inf", "nan") else v for k, v in r["params"].items()})
        before = self.control([b'{"cmd": "stats"}'])["stats"]["samples_out"]
        self.push.send(encode_iq(signal(2000, 1)))
        got = 0
        while got < 2000:
            assert self.pull.poll(30_000), "no samples came out"
            y = decode_iq(self.pull.recv())[0]
            assert np.all(np.isfinite(y.view(np.float32)))
            got += len(y)
        assert self.control([b'{"cmd": "stats"}'])["stats"]["samples_out"] == before + 2000

    def close(self):
        if self.proc.poll() is None:
            self.req.send_json({"cmd": "stop"})
            self.req.poll(5000)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.returncode


def fuzz_control(ctx, n_messages: int) -> dict:
    svc = CliService(ctx)
    counts = {"messages": 0, "errors": 0, "ok": 0, "examples": 0}
    try:
        @fuzz_settings(examples_per_run(n_messages))
        @given(st.lists(control_frames, min_size=1, max_size=8))
        def run(batch):
            for frames in batch:
                r = svc.control(frames)
                counts["messages"] += 1
                assert isinstance(r, dict) and isinstance(r.get("ok"), bool), r
                if r["ok"]:
                    counts["ok"] += 1
                else:
                    counts["errors"] += 1
                    assert isinstance(r["error"], str) and 0 < len(r["error"]) < 600, r
                    assert "Traceback" not in r["error"] and "internal error" not in r["error"], r
            counts["examples"] += 1
            r = svc.control([b'{"cmd": "params"}'])  # a valid request after every batch
            assert r["ok"], r

        run_until(run, counts, n_messages)
        svc.check()
    finally:
        code = svc.close()
    counts["exit_code_after_stop"] = code
    counts["process_exits_during_fuzz"] = 0  # check() asserted the process was alive at the end
    return counts


def test_control_socket_fuzz_fast(ctx):
    counts = fuzz_control(ctx, FAST_MESSAGES)
    assert counts["messages"] >= FAST_MESSAGES and counts["exit_code_after_stop"] == 0


@pytest.mark.fuzz
@pytest.mark.timeout(3600)
def test_control_socket_fuzz_long(ctx):
    counts = fuzz_control(ctx, FUZZ_MESSAGES)
    report("emulator-control", counts)
    assert counts["messages"] >= FUZZ_MESSAGES and counts["exit_code_after_stop"] == 0


# ============================================================================ fuzzing: IQ input and tags
def fuzz_iq(ctx, n_messages: int, pass_tags: bool) -> dict:
    counts = {"messages": 0, "rejected": 0, "blocks": 0, "examples": 0}
    payload = tagged_iq if pass_tags else st.one_of(raw_iq, raw_iq, st.binary(max_size=100))
    with Stream(ctx, pass_tags=pass_tags) as s:
        seq = [0]

        @fuzz_settings(examples_per_run(n_messages))
        @given(st.lists(_frames(payload), min_size=1, max_size=8))
        def run(batch):
            expected = []
            for frames in batch:
                s.push.send_multipart(frames)
                counts["messages"] += 1
                try:
                    x, tags, _ = decode_iq_frames(frames, pass_tags)
                except ZmqIqError:
                    counts["rejected"] += 1
                    continue
                if len(x):
                    expected.append((sanitized(x), tags))
            seq[0] += 1  # a sentinel block marks the end of the batch
            sentinel = np.full(16, seq[0], np.complex64)
            s.push.send(encode_iq(sentinel, [], offset=0) if pass_tags else encode_iq(sentinel))
            for want, tags in expected:
                y, got_tags = s.recv()
                assert np.all(np.isfinite(y.view(np.float32)))
                assert np.array_equal(y, want), (y[:4], want[:4])
                if pass_tags:
                    assert repr(got_tags) == repr([IqTag(t.offset, t.key, t.value, t.srcid) for t in tags])
                counts["blocks"] += 1
            y, _ = s.recv()
            assert np.array_equal(y, sentinel), "a block was lost or added"
            counts["examples"] += 1

        run_until(run, counts, n_messages)
        assert s.svc.counters["rejected"] == counts["rejected"]
        assert_answers_correctly(s)
    return counts


@pytest.mark.parametrize("pass_tags", [False, True])
def test_iq_input_fuzz_fast(ctx, pass_tags):
    counts = fuzz_iq(ctx, FAST_MESSAGES, pass_tags)
    assert counts["messages"] >= FAST_MESSAGES and counts["blocks"] > 0


@pytest.mark.fuzz
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("pass_tags", [False, True])
def test_iq_input_fuzz_long(ctx, pass_tags):
    counts = fuzz_iq(ctx, FUZZ_MESSAGES, pass_tags)
    report("emulator-iq-tags" if pass_tags else "emulator-iq", counts)
    assert counts["messages"] >= FUZZ_MESSAGES


@fuzz_settings(300)
@given(tagged_iq)
def test_tag_parser_refuses_or_parses(raw):
    """The pure parser: any bytes give samples and tags, or ZmqIqError naming the problem; nothing else."""
    try:
        x, tags = decode_iq(raw, pass_tags=True)
    except ZmqIqError as exc:
        assert str(exc)
        return
    assert x.dtype == np.complex64 and all(isinstance(t, IqTag) for t in tags)


@fuzz_settings(200)
@given(st.lists(iq_tag, max_size=4), st.integers(0, 2**64 - 1))
def test_tags_round_trip(tags, offset):
    x = signal(8)
    y, got = decode_iq(encode_iq(x, tags, offset=offset), pass_tags=True)
    assert np.array_equal(x, y) and repr(got) == repr(tags)


def test_pmt_serialize_refuses_deep_values():
    v = None
    for _ in range(MAX_PMT_DEPTH + 2):
        v = [v, None]
    with pytest.raises(ZmqIqError, match="nested deeper"):
        pmt_serialize(v)


# ============================================================================ fuzzing: REQ/REP
def fuzz_req_rep(ctx, n_messages: int) -> dict:
    counts = {"messages": 0, "upstream_messages": 0, "replies": 0, "examples": 0}
    e_tx, e_out = free_endpoint(), free_endpoint()
    rep, dealer = ctx.socket(zmq.REP), ctx.socket(zmq.DEALER)
    for sck in (rep, dealer):
        sck.setsockopt(zmq.LINGER, 0)
    rep.bind(e_tx)
    answers: deque = deque()
    stop = threading.Event()

    def transmitter():  # the TX side: answers each request with the next planned (hostile) answer
        while not stop.is_set():
            if rep.poll(50):
                want = rep.recv()
                frames = answers.popleft() if answers else [encode_iq(np.zeros(struct.unpack("=I", want)[0] if len(want) == 4 else 1, np.complex64))]
                rep.send_multipart(frames)

    tx = threading.Thread(target=transmitter, daemon=True)
    request = st.one_of(
        st.integers(1, 4096).map(encode_request), st.integers(1, 4096).map(encode_request),
        st.sampled_from([b"\xff", b"\x00", b"", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03",
                         b"\x01\x00\x00\x00\x00"]),
        st.binary(max_size=12),
    )
    req_frames = st.one_of(request.map(lambda r: [r]), request.map(lambda r: [r]), st.lists(request, min_size=2, max_size=3))
    answer = _frames(st.one_of(raw_iq, st.binary(max_size=40)))
    with EmulatorService(ChannelEmulator(FS), e_tx, e_out, pattern="req-rep", upstream_timeout_ms=2000) as svc:
        tx.start()
        dealer.connect(e_out)
        try:
            @fuzz_settings(examples_per_run(n_messages))
            @given(st.lists(st.tuples(req_frames, answer), min_size=1, max_size=6))
            def run(batch):
                for frames, ans in batch:
                    answers.append(ans)
                    dealer.send_multipart([b""] + frames)
                    counts["messages"] += 1
                    assert dealer.poll(10_000), f"no reply to request {frames!r:.100}"
                    reply = dealer.recv_multipart()
                    assert reply[0] == b"" and len(reply) == 2, reply[:3]  # exactly one answer per request
                    y = decode_iq(reply[1])[0]
                    assert np.all(np.isfinite(y.view(np.float32)))
                    counts["replies"] += 1
                answers.clear()  # answers a refused request never asked for
                x = signal(100, counts["examples"])
                answers.append([encode_iq(x)])
                dealer.send_multipart([b"", encode_request(100)])
                assert dealer.poll(10_000)
                assert np.array_equal(decode_iq(dealer.recv_multipart()[-1])[0], x)  # transparent, exact
                counts["examples"] += 1

            run_until(run, counts, n_messages)
            assert svc.running and svc._error is None
            counts["upstream_messages"] = svc.counters["messages_in"] + svc.counters["rejected"]
        finally:
            stop.set()
            tx.join(2)
    return counts


def test_req_rep_fuzz_fast(ctx):
    counts = fuzz_req_rep(ctx, FAST_MESSAGES)
    assert counts["replies"] == counts["messages"] >= FAST_MESSAGES


@pytest.mark.fuzz
@pytest.mark.timeout(3600)
def test_req_rep_fuzz_long(ctx):
    counts = fuzz_req_rep(ctx, FUZZ_MESSAGES)
    report("emulator-req-rep", counts)
    assert counts["replies"] == counts["messages"] >= FUZZ_MESSAGES
