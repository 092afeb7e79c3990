"""The emulator service over real ZeroMQ sockets: patterns, chaining, malformed input, control, GNU Radio."""

import json
import subprocess
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from sagin_hil.datatypes import SampleBlock
from sagin_hil.hil.emulator_service import EmulatorService
from sagin_hil.hil.zmq_iq import IqTag, decode_iq, decode_iq_frames, encode_iq, encode_request
from sagin_hil.phy.channel.emulator import ChannelEmulator, ChannelParams
from sagin_hil.phy.channel.scenario import Scenario
from sagin_hil.hil.ports import free_endpoint

FS = 1e6




def signal(n, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)


def recv_samples(sock, n, timeout_s=10.0, pass_tags=False):
    got, deadline = [], time.time() + timeout_s
    while sum(len(g) for g in got) < n:
        assert sock.poll(int(max(1, (deadline - time.time()) * 1000))), "no samples arrived"
        got.append(decode_iq_frames(sock.recv_multipart(), pass_tags)[0])
    return np.concatenate(got)


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def test_two_services_chain_leo_uav_user(ctx):
    sc = Scenario.default()
    e_tx, e_mid, e_out = free_endpoint(), free_endpoint(), free_endpoint()
    a = ChannelEmulator.for_link(sc, "leo0", "uav0", FS, seed=1, doppler_scale=0.0)
    b = ChannelEmulator.for_link(sc, "uav0", "user0", FS, seed=2)
    push = ctx.socket(zmq.PUSH)
    push.bind(e_tx)
    pull = ctx.socket(zmq.PULL)
    with EmulatorService(a, e_tx, e_mid, start_time_s=60.0), EmulatorService(b, e_mid, e_out, start_time_s=60.0):
        pull.connect(e_out)
        x = signal(50_000)
        for chunk in np.array_split(x, 7):
            push.send(encode_iq(chunk))
        y = recv_samples(pull, len(x))
    # the same hops offline, in one call each: identical samples (chunking does not matter)
    ref_a = ChannelEmulator.for_link(sc, "leo0", "uav0", FS, seed=1, doppler_scale=0.0)
    ref_b = ChannelEmulator.for_link(sc, "uav0", "user0", FS, seed=2)
    mid = ref_a.process(SampleBlock(x, FS, 25e9, 60.0))
    assert np.array_equal(y, ref_b.process(mid).samples)
    d = int(sc.link_state("leo0", "uav0", 60.0).delay_s * FS)
    assert np.mean(np.abs(y[: d - 5]) ** 2) < 0.1 * np.mean(np.abs(y[d + 5 :]) ** 2)  # noise, then the signal


def test_malformed_message_is_rejected_and_counted(ctx):
    e_tx, e_out, e_ctl = free_endpoint(), free_endpoint(), free_endpoint()
    push, pull, req = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL), ctx.socket(zmq.REQ)
    push.bind(e_tx)
    em = ChannelEmulator(FS, 0.0, ChannelParams(delay_s=3 / FS))
    with EmulatorService(em, e_tx, e_out, control_endpoint=e_ctl) as svc:
        pull.connect(e_out)
        req.connect(e_ctl)
        x = signal(3000, 1)
        push.send(encode_iq(x[:1000]))
        push.send(b"\x00" * 12)  # 12 bytes: not a whole number of complex64 items
        push.send(encode_iq(x[1000:]))
        y = recv_samples(pull, 3000)
        req.send_json({"cmd": "stats"})
        stats = req.recv_json()["stats"]
    assert stats["rejected"] == 1 and "12 bytes" in stats["last_reject"]
    assert stats["messages_in"] == 2 and stats["samples_out"] == 3000 and not svc.running
    assert np.array_equal(y[3:], x[:-3])  # the stream went on as if the bad message had not been sent


def test_control_socket_changes_parameters_while_streaming(ctx):
    e_tx, e_out, e_ctl = free_endpoint(), free_endpoint(), free_endpoint()
    push, pull, req = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL), ctx.socket(zmq.REQ)
    push.bind(e_tx)
    em = ChannelEmulator(FS, 0.0, ChannelParams(doppler_hz=1000.0))
    with EmulatorService(em, e_tx, e_out, control_endpoint=e_ctl):
        pull.connect(e_out)
        req.connect(e_ctl)
        ones = np.ones(20_000, np.complex64)
        push.send(encode_iq(ones))
        y1 = recv_samples(pull, len(ones))
        req.send_json({"cmd": "set", "params": {"doppler_hz": -3000.0}})
        reply = req.recv_json()
        assert reply["ok"] and reply["params"]["doppler_hz"] == -3000.0
        push.send(encode_iq(ones))
        y2 = recv_samples(pull, len(ones))
        for bad, needle in ((b"not json", "Expecting value"), (b'{"cmd": "fly"}', "unknown cmd"),
                            (b'{"cmd": "set", "params": {"snr": 3}}', "unknown channel parameter")):
            req.send(bad)
            reply = json.loads(req.recv())
            assert not reply["ok"] and needle in reply["error"]
        req.send_json({"cmd": "params"})
        assert req.recv_json()["params"]["doppler_hz"] == -3000.0
    f1 = np.angle(y1[1:] * np.conj(y1[:-1])) * FS / (2 * np.pi)
    f2 = np.angle(y2[1:] * np.conj(y2[:-1])) * FS / (2 * np.pi)
    assert np.allclose(f1, 1000.0, atol=0.01) and np.allclose(f2, -3000.0, atol=0.01)
    # phase continuous across the change: no jump between the last old and the first new sample
    assert np.angle(y2[0] * np.conj(y1[-1])) * FS / (2 * np.pi) == pytest.approx(1000.0, abs=0.01)


def test_pub_sub_with_tags(ctx):
    e_tx, e_out = free_endpoint(), free_endpoint()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    pub.bind(e_tx)
    em = ChannelEmulator(FS, 0.0, ChannelParams(gain_db=-6.0))
    with EmulatorService(em, e_tx, e_out, pattern="pub-sub", pass_tags=True):
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(e_out)
        time.sleep(0.3)  # PUB/SUB drop messages until the subscriptions have propagated
        x = signal(4000, 2)
        pub.send(encode_iq(x, [IqTag(10, "burst", 1.5)], offset=0))
        assert sub.poll(5000)
        y, tags = decode_iq(sub.recv(), pass_tags=True)
    assert np.allclose(y, x * 10 ** (-6 / 20), atol=1e-6)
    assert tags == [IqTag(10, "burst", 1.5, False)]


def test_req_rep_srsran_style(ctx):
    e_tx, e_out = free_endpoint(), free_endpoint()
    rep, req = ctx.socket(zmq.REP), ctx.socket(zmq.REQ)
    rep.bind(e_tx)  # the transmitter answers requests, as srsRAN's ZMQ radio does
    x = signal(6000, 3)
    em = ChannelEmulator(FS, 0.0, ChannelParams(delay_s=5 / FS))
    with EmulatorService(em, e_tx, e_out, pattern="req-rep", upstream_timeout_ms=300) as svc:
        req.connect(e_out)
        sent, out = 0, []
        for want in (1000, 2000, 3000):
            req.send(encode_request(want))
            assert rep.poll(5000)
            n = int(np.frombuffer(rep.recv(), np.uint32)[0])
            rep.send(encode_iq(x[sent : sent + n]))
            sent += n
            assert req.poll(5000)
            out.append(decode_iq(req.recv())[0])
        req.send(encode_request(500))  # the transmitter stays silent: zero-filled, counted as a gap
        assert req.poll(5000)
        gap = decode_iq(req.recv())[0]
        assert rep.poll(5000) and len(rep.recv()) == 4  # the late transmitter answers the stale request;
        rep.send(encode_iq(np.ones(500, np.complex64)))  # REQ_CORRELATE makes the service drop that reply
        req.send(b"\xff")  # srsRAN's one-byte request: one block (1 ms), the transmitter's answer passes whole
        assert rep.poll(5000) and int(np.frombuffer(rep.recv(), np.uint32)[0]) == 1000
        rep.send(encode_iq(x[:1920]))
        assert req.poll(5000)
        block = decode_iq(req.recv())[0]
        req.send(b"\x00\x00\x00\x00")  # a uint32 count of 0
        assert req.poll(5000) and req.recv() == b""
        stats = svc.stats()
    y = np.concatenate(out)
    assert [len(o) for o in out] == [1000, 2000, 3000] and np.array_equal(y[5:], x[:-5])
    assert len(gap) == 500 and stats["gaps"] == 1 and len(block) == 1920
    assert stats["rejected"] == 1 and "no items" in stats["last_reject"]


def test_bad_endpoints_are_named():
    em = ChannelEmulator(FS)
    with pytest.raises(ValueError, match="pattern = 'push-push'"):
        EmulatorService(em, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", pattern="push-push")
    with pytest.raises(ValueError, match="tx_endpoint = '5555'"):
        EmulatorService(em, "5555", "tcp://127.0.0.1:2")
    busy = free_endpoint()
    ctx = zmq.Context.instance()
    holder = ctx.socket(zmq.PULL)
    holder.bind(busy)
    try:
        with pytest.raises(RuntimeError, match="failed to start"):
            EmulatorService(em, free_endpoint(), busy).start()
    finally:
        holder.close(0)



def test_free_ports_lie_outside_the_ephemeral_range_and_are_never_handed_out_twice():
    """What the kernel gives outgoing connections cannot take a port between free_port() and its bind."""
    from sagin_hil.hil.ports import ephemeral_range, free_port

    lo, hi = ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == 200 and not any(lo <= p <= hi for p in ports)
    ctx = zmq.Context.instance()
    socks = [ctx.socket(zmq.PULL) for _ in range(3)]
    try:
        for s, port in zip(socks, ports):
            s.bind(f"tcp://127.0.0.1:{port}")  # free when handed out
    finally:
        for s in socks:
            s.close(0)


def test_free_ports_skip_the_fixed_port_pluto_emu_binds_by_default(monkeypatch):
    """A service started later on its default port (iiod's 30431) must not find a test's port there."""
    from sagin_hil.hil import ports

    monkeypatch.setattr(ports, "_LOWEST", 30430)
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (30433, 65535))  # candidates: 30430-30432
    monkeypatch.setattr(ports, "_handed_out", set())
    got = {ports.free_port(attempts=100) for _ in range(2)}
    assert 30431 not in got and got <= {30430, 30432}
    with pytest.raises(RuntimeError, match="no free TCP port"):
        ports.free_port(attempts=50)  # both others handed out, 30431 reserved


GR_FLOWGRAPH = textwrap.dedent("""
    import sys, time
    import numpy as np
    from gnuradio import blocks, gr, zeromq
    tx_ep, rx_ep, n, out_path, pattern = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    rng = np.random.default_rng(0)
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)
    np.save(out_path + ".in.npy", x)
    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist(), False)
    sink_type, source_type = {"push-pull": (zeromq.push_sink, zeromq.pull_source),
                              "req-rep": (zeromq.rep_sink, zeromq.req_source)}[pattern]
    sink = sink_type(gr.sizeof_gr_complex, 1, tx_ep, 100, False, -1)  # sinks bind
    rx = source_type(gr.sizeof_gr_complex, 1, rx_ep, 100, False, -1)  # sources connect
    head = blocks.head(gr.sizeof_gr_complex, n)
    vs = blocks.vector_sink_c()
    tb.connect(src, sink)
    tb.connect(rx, head, vs)
    tb.start()
    deadline = time.time() + 20
    while len(vs.data()) < n and time.time() < deadline:
        time.sleep(0.05)
    tb.stop(); tb.wait()
    np.save(out_path + ".out.npy", np.array(vs.data(), np.complex64))
""")


def _have_gnuradio_zeromq():
    try:
        return subprocess.run(["/usr/bin/python3", "-c", "import gnuradio.zeromq"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.mark.skipif(not _have_gnuradio_zeromq(), reason="GNU Radio with gr-zeromq not installed (apt install gnuradio)")
@pytest.mark.parametrize("pattern", ["push-pull", "req-rep"])
def test_gnuradio_flowgraph_is_transmitter_and_receiver(tmp_path: Path, pattern):
    e_tx, e_out = free_endpoint(), free_endpoint()
    params = ChannelParams(delay_s=12.5 / FS, doppler_hz=2500.0, gain_db=-3.0)
    with EmulatorService(ChannelEmulator(FS, 0.0, params), e_tx, e_out, pattern=pattern) as svc:
        proc = subprocess.run(["/usr/bin/python3", "-c", GR_FLOWGRAPH, e_tx, e_out, "30000", str(tmp_path / "gr"),
                               pattern], capture_output=True, text=True, timeout=60)
        stats = svc.stats()
    assert proc.returncode == 0, proc.stderr[-2000:]
    x, y = np.load(tmp_path / "gr.in.npy"), np.load(tmp_path / "gr.out.npy")
    assert len(y) == len(x) and stats["rejected"] == 0 and stats["messages_in"] >= 1
    if pattern == "req-rep":  # requests that met a silent transmitter were zero-filled: skip those
        assert stats["samples_out"] >= len(x)
        x = np.concatenate([np.zeros(stats["samples_out"] - stats["samples_in"], np.complex64), x])[: len(x)]
    assert np.array_equal(y, ChannelEmulator(FS, 0.0, params).process(x))


def test_cli_serve_streams_and_stops_on_control(ctx):
    import sys

    e_tx, e_out, e_ctl = free_endpoint(), free_endpoint(), free_endpoint()
    push, pull, req = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL), ctx.socket(zmq.REQ)
    push.bind(e_tx)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagin_hil", "emulator", "serve", "--link", "uav0->user0", "--tx", e_tx, "--rx", e_out,
         "--control", e_ctl, "--sample-rate", str(FS), "--snr-db", "20", "--signal-power", "1.0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        pull.connect(e_out)
        req.connect(e_ctl)
        x = signal(20_000, 4)
        push.send(encode_iq(x))
        y = recv_samples(pull, len(x), timeout_s=60.0)
        req.send_json({"cmd": "stop"})
        assert req.poll(10_000) and req.recv_json()["ok"]
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err
    assert "uav0 -> user0" in out and "'samples_out': 20000" in out
    snr = 10 * np.log10(1.0 / np.mean(np.abs(y - ChannelEmulator.for_link(
        Scenario.default(), "uav0", "user0", FS, snr_db=None).process(x)) ** 2))
    assert snr == pytest.approx(20.0, abs=0.3)


def test_cli_errors_and_link_budget():
    from typer.testing import CliRunner

    from sagin_hil.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["emulator", "serve", "--tx", "tcp://127.0.0.1:1", "--rx", "tcp://127.0.0.1:2",
                              "--link", "leo0:uav0"])
    assert res.exit_code == 2 and "TX->RX" in res.output
    res = runner.invoke(app, ["emulator", "serve", "--tx", "tcp://127.0.0.1:1", "--rx", "tcp://127.0.0.1:2",
                              "--link", "leo0-"])  # what the shell leaves of an unquoted leo0->uav0
    assert res.exit_code == 2 and "quote it" in res.output
    res = runner.invoke(app, ["emulator", "serve", "--tx", "tcp://127.0.0.1:1", "--rx", "tcp://127.0.0.1:2",
                              "--link", "leo0->user0"])
    assert res.exit_code == 2 and "through a UAV" in res.output
    res = runner.invoke(app, ["emulator", "link-budget", "--link", "leo0->uav0", "--start", "120", "--stop", "120"])
    assert res.exit_code == 0 and "22.1" in res.output  # SNR overhead: 0 dBW + 40 dB - 177.9 dB + 160 dB


def test_fuzzed_messages_never_stop_the_stream(ctx):
    """Random payloads (any length, any bytes, tag headers on) are rejected or passed, never fatal."""
    rng = np.random.default_rng(5)
    e_tx, e_out = free_endpoint(), free_endpoint()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.bind(e_tx)
    with EmulatorService(ChannelEmulator(FS), e_tx, e_out, pass_tags=True) as svc:
        pull.connect(e_out)
        for _ in range(200):
            push.send(rng.integers(0, 256, rng.integers(0, 64), dtype=np.uint8).tobytes())
        x = signal(1000, 6)
        push.send(encode_iq(x, [], offset=0))
        y = recv_samples(pull, 1000, pass_tags=True)
        stats = svc.stats()
        assert svc.running
    assert np.array_equal(y[-1000:], x)
    assert stats["rejected"] + stats["messages_in"] == 201 and stats["rejected"] > 150


def test_cli_busy_port_names_the_option_and_link_budget_json():
    """`emulator serve` on a taken --rx or --control port says which option to change; link-budget has
    --json and a piped table that is not cut."""
    from typer.testing import CliRunner

    from sagin_hil.cli import app

    runner = CliRunner()
    busy = free_endpoint()
    holder = zmq.Context.instance().socket(zmq.PULL)
    holder.bind(busy)
    try:
        res = runner.invoke(app, ["emulator", "serve", "--tx", free_endpoint(), "--rx", busy])
        assert res.exit_code == 1
        assert f"cannot bind --rx {busy}: Address already in use" in res.output
        assert "pass a free port with --rx" in res.output
        res = runner.invoke(app, ["emulator", "serve", "--tx", free_endpoint(), "--rx", free_endpoint(), "--control", busy])
        assert res.exit_code == 1 and f"cannot bind --control {busy}" in res.output
        assert "pass a free port with --control" in res.output
    finally:
        holder.close(0)
    res = runner.invoke(app, ["emulator", "link-budget", "--link", "leo0->uav0", "--start", "0", "--stop", "60", "--json"])
    assert res.exit_code == 0
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["t_s"] for r in rows] == [0.0, 30.0, 60.0] and rows[0]["tx"] == "leo0" and rows[0]["visible"] is True
    assert rows[0]["snr_db"] == pytest.approx(Scenario.default().link_state("leo0", "uav0", 0.0).snr_db)
    res = runner.invoke(app, ["emulator", "link-budget", "--link", "leo0->uav0", "--start", "0", "--stop", "0"])
    assert "Mbit/s" in res.output and "…" not in res.output  # piped: every column whole
