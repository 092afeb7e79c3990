"""Hostile input at the emulated Pluto's iiod server, over TCP, checked with the real pyadi-iio / libiio stack.

First the messages of issue 20 (an xadc WRITE taken as the radio's rate, a DDS tone's read-only rate that
raised KeyError, an over-long WRITE, too many connections, a cold kernel); then hypothesis fuzzing of the
command parser: random and mutated command lines, each batch on its own connection and followed by a
VERSION that must be answered on that same connection. `make fuzz` sends FUZZ_MESSAGES (100,000).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

adi = pytest.importorskip("adi", reason="pyadi-iio (with pylibiio 0.25 and libiio0) is needed")

from sagin_hil.hil.iiod import start_pluto_emulator  # noqa: E402
from sagin_hil.hil.iiod.context import load_pluto_context  # noqa: E402
from sagin_hil.hil.iiod.server import MAX_CONNECTIONS, MAX_WRITE_BYTES, PROTOCOL_VERSION  # noqa: E402

pytestmark = pytest.mark.radio
FUZZ_MESSAGES = int(os.environ.get("FUZZ_MESSAGES", "100000"))
FAST_MESSAGES = 300
REPORT_DIR = Path(os.environ.get("FUZZ_REPORT_DIR", "runs/fuzz"))
VERSION_LINE = PROTOCOL_VERSION.encode() + b"\n"


@pytest.fixture
def server():
    srv = start_pluto_emulator(seed=7)
    yield srv
    srv.close()


def connect(srv, timeout_s: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout_s)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST: no TIME_WAIT pile-up
    return s


def exchange(s: socket.socket, data: bytes, lines: int = 1) -> bytes:
    s.sendall(data)
    out = b""
    while out.count(b"\n") < lines:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"the server closed the connection after {out!r}")
        out += chunk
    return out


def rx_works(srv) -> None:
    """The valid request: pyadi-iio (libiio underneath) configures the radio and receives samples."""
    sdr = adi.Pluto(srv.uri)
    try:
        sdr.sample_rate = 2_500_000
        sdr.rx_lo = 2_400_000_000
        sdr.gain_control_mode_chan0 = "manual"
        sdr.rx_hardwaregain_chan0 = 30
        sdr.rx_buffer_size = 4096
        x = sdr.rx()
        assert len(x) == 4096 and np.all(np.isfinite(x))
        assert sdr.sample_rate == 2_500_000
    finally:
        sdr.rx_destroy_buffer()
        sdr.close()


# ============================================================================ the messages of the issue
def test_xadc_sampling_frequency_is_not_the_radios_rate(server):
    with connect(server) as s:
        rate = exchange(s, b"READ iio:device0 INPUT voltage0 sampling_frequency\r\n", 2)
        assert exchange(s, b"WRITE iio:device1 sampling_frequency 1\r\n0") == b"-22\n"  # 0 S/s: refused
        assert exchange(s, b"WRITE iio:device1 sampling_frequency 6\r\n500000") == b"6\n"  # the xadc's own
        assert exchange(s, b"READ iio:device1 sampling_frequency\r\n", 2) == b"6\n500000\n"
        assert exchange(s, b"READ iio:device0 INPUT voltage0 sampling_frequency\r\n", 2) == rate  # untouched
        assert exchange(s, b"OPEN iio:device3 1024 00000003\r\n") == b"0\n"
        head = exchange(s, b"READBUF iio:device3 4096\r\n", 2)
        assert head.startswith(b"4096\n00000003\n")
    rx_works(server)


def test_dds_tone_rate_is_read_only_not_a_dropped_connection(server):
    with connect(server) as s:
        # listed in the context, without a *_available list: this raised KeyError and dropped the client
        assert exchange(s, b"WRITE iio:device2 OUTPUT altvoltage0 sampling_frequency 7\r\n1000000") == b"-22\n"
        assert exchange(s, b"WRITE iio:device2 OUTPUT altvoltage9 sampling_frequency 1\r\n1") == b"-2\n"
        assert exchange(s, b"WRITE iio:device3 nosuchattr 1\r\n1") == b"-2\n"
        assert exchange(s, b"READ iio:device1 DEBUG nosuchattr\r\n") == b"-2\n"
        assert exchange(s, b"VERSION\r\n") == VERSION_LINE  # same connection, still served
    assert server.internal_errors == 0
    rx_works(server)


def test_over_long_write_is_refused_and_the_session_goes_on(server):
    n = MAX_WRITE_BYTES + 1
    with connect(server) as s:
        assert exchange(s, b"WRITE iio:device0 calib_mode %d\r\n" % n + b"x" * n) == b"-27\n"  # EFBIG
        assert exchange(s, b"READ iio:device0 calib_mode\r\n", 2) == b"4\nauto\n"
    rx_works(server)


def test_connections_are_capped_and_the_slots_come_back(server):
    held = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        for s in held:
            assert exchange(s, b"VERSION\r\n") == VERSION_LINE
        extra = connect(server)
        extra.settimeout(5)
        assert extra.recv(16) == b""  # closed at once, not a thread parked for it
        extra.close()
        assert server.connections_refused == 1
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    while server._conns and time.monotonic() < deadline:
        time.sleep(0.02)
    rx_works(server)  # pyadi-iio opens two connections: the slots were released


def test_kernel_is_ready_before_the_first_client():
    """In a fresh process the channel kernel has machine code as soon as the emulated Pluto listens, so a
    cold numba cache can no longer make pyadi-iio's first rx() exceed libiio's 5 s timeout."""
    code = (
        "from sagin_hil.phy.channel.kernels import channel_kernel\n"
        "from sagin_hil.hil.iiod import start_pluto_emulator\n"
        "assert not channel_kernel.signatures\n"
        "srv = start_pluto_emulator()\n"
        "print(len(channel_kernel.signatures)); srv.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "1", out.stderr[-2000:]


# ============================================================================ fuzzing
_CTX = load_pluto_context()
DEVICES = [d.id for d in _CTX.devices] + [d.name for d in _CTX.devices] + ["iio:device9", "x" * 40, "0"]
CHANNELS = sorted({c.id for d in _CTX.devices for c in d.channels}) + ["voltage9", "altvoltage7"]
ATTRS = sorted({a for d in _CTX.devices for a in d.attrs + d.debug_attrs + d.buffer_attrs}
               | {a for d in _CTX.devices for c in d.channels for a in c.attrs}) + ["nope", "../etc"]
VALUES = [b"0", b"1", b"-1", b"2400000000", b"30720000", b"1000000", b"520833", b"nan", b"inf", b"1e400", b"abc",
          b"manual", b"fast_attack", b"sleep", b"0x80000088 4", b"0x80000088", b"0xZZ", b"", b" ", b"\x00",
          b"FIR Rx: 128,4 Tx: 128,4", b"RX 3 GAIN -6 DEC 4\nTX 3 GAIN 0 INT 4\n" + b"1,1\n" * 16, b"9" * 400]

word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789:_-.", max_size=12)
number = st.sampled_from([b"0", b"1", b"4", b"400", b"4096", b"65536", b"-1", b"99999999999999999999", b"x",
                          b"%d" % (1 << 26 | 4)]) | st.integers(0, 70_000).map(lambda n: b"%d" % n)
address = st.tuples(st.sampled_from(DEVICES) | word,
                    st.sampled_from([(), ("DEBUG",), ("BUFFER",), ("INPUT",), ("OUTPUT",), ("input",)]),
                    st.sampled_from(CHANNELS) | word, st.sampled_from(ATTRS) | word)


def _addr(a) -> list[bytes]:
    dev, mod, ch, attr = a
    words = [dev.encode()] + [m.encode() for m in mod]
    if mod and mod[0].upper() in ("INPUT", "OUTPUT"):
        words.append(ch.encode())
    return words + [attr.encode()]


def _write(a, value: bytes, lie: int) -> bytes:
    n = len(value) + lie if len(value) + lie >= 0 else len(value)
    return b"WRITE " + b" ".join(_addr(a)) + b" %d\r\n" % n + value


command = st.one_of(
    st.sampled_from([b"VERSION", b"PRINT", b"ZPRINT", b"BINARY", b"HELP", b"TIMEOUT 5000", b"TIMEOUT", b"TIMEOUT x",
                     b"OPEN iio:device3 4096 00000003", b"OPEN iio:device2 1024 00000003 CYCLIC",
                     b"OPEN iio:device2 1024 00000003", b"OPEN iio:device3 0 00000003", b"OPEN iio:device3 10 zz",
                     b"OPEN iio:device3 10 ffffffff", b"OPEN iio:device1 10 00000001", b"CLOSE iio:device3",
                     b"CLOSE iio:device2", b"CLOSE iio:device0", b"GETTRIG iio:device3", b"SETTRIG iio:device3 t",
                     b"SET iio:device3 BUFFERS_COUNT 4", b"SET iio:device3 BUFFERS_COUNT 0",
                     b"SET iio:device3 BUFFERS_COUNT 999"]).map(lambda c: c + b"\r\n"),
    address.map(lambda a: b"READ " + b" ".join(_addr(a)) + b"\r\n"),
    st.builds(_write, address, st.sampled_from(VALUES) | st.binary(max_size=40), st.sampled_from([0, 0, 0, 0, -1])),
    st.builds(lambda d, n: b"READBUF %s %s\r\n" % (d, n), st.sampled_from([b"iio:device3", b"iio:device2", b"x"]), number),
    # WRITEBUF's payload bytes hold no newline: when refused they make one junk line, not commands
    st.builds(lambda d, n: b"WRITEBUF %s %d\r\n" % (d, n) + b"\x00" * n, st.sampled_from([b"iio:device2", b"iio:device3"]),
              st.sampled_from([0, 3, 4, 8, 4096])),
    st.binary(max_size=200).filter(lambda b: b"exit" not in b.lower() and b"write" not in b.lower()),
    st.text(max_size=60).map(lambda t: t.encode() + b"\n").filter(lambda b: b"exit" not in b.lower() and b"write" not in b.lower()),
    st.integers(4000, 9000).map(lambda n: b"A" * n + b"\n"),  # over-long lines
)


def _settings(n: int):
    return settings(max_examples=n, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))


def fuzz_iiod(srv, n_messages: int) -> dict:
    counts = {"messages": 0, "examples": 0, "synced": 0, "reconnects": 0}

    @_settings(max(10, min(500, n_messages // 5)))
    @given(st.lists(command, min_size=1, max_size=10))
    def run(batch):
        with connect(srv) as s:
            s.sendall(b"".join(batch))
            counts["messages"] += len(batch)
            # newlines fill any WRITE payload a mutated length still waits for, then the valid request
            s.sendall(b"\n" * 512 + b"VERSION\r\n")
            got, deadline = b"", time.monotonic() + 20
            while not got.endswith(VERSION_LINE) and time.monotonic() < deadline:
                try:
                    chunk = s.recv(1 << 20)
                except socket.timeout:
                    continue
                assert chunk, f"connection dropped after {b''.join(batch)!r:.300}"
                got += chunk
            assert got.endswith(VERSION_LINE), f"no VERSION answer after {b''.join(batch)!r:.300}"
        counts["synced"] += 1
        counts["examples"] += 1

    t0 = time.perf_counter()
    while counts["messages"] < n_messages:
        run()
    counts["wall_s"] = round(time.perf_counter() - t0, 1)
    counts["internal_errors"] = srv.internal_errors
    counts["commands_served"] = srv.commands_served
    assert srv._thread.is_alive()
    deadline = time.monotonic() + 10  # the last batch's connection releases the RX buffer as it closes
    while (srv._rx_owner is not None or srv._conns) and time.monotonic() < deadline:
        time.sleep(0.02)
    rx_works(srv)
    return counts


def test_iiod_fuzz_fast(server):
    counts = fuzz_iiod(server, FAST_MESSAGES)
    assert counts["messages"] >= FAST_MESSAGES and counts["internal_errors"] == 0


@pytest.mark.fuzz
@pytest.mark.timeout(3600)
def test_iiod_fuzz_long(server):
    counts = fuzz_iiod(server, FUZZ_MESSAGES)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / "iiod.json").write_text(json.dumps(counts, indent=2))
    print(f"fuzz iiod: {counts}")
    assert counts["messages"] >= FUZZ_MESSAGES and counts["internal_errors"] == 0
