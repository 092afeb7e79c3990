"""gr-zeromq IQ wire format: byte layout, round trips, malformed messages, real ZeroMQ sockets."""

import struct

import numpy as np
import pytest

from sagin_hil.hil.zmq_iq import (
    IqTag,
    ZmqIqError,
    decode_iq,
    decode_iq_frames,
    decode_request,
    encode_iq,
    encode_iq_frames,
    encode_request,
    pmt_deserialize,
    pmt_serialize,
)


def _tone(n, f=0.01):
    return np.exp(2j * np.pi * f * np.arange(n)).astype(np.complex64)


def test_raw_message_is_interleaved_float32():
    x = np.array([1 + 2j, -3.5 + 0.25j], np.complex64)
    msg = encode_iq(x)
    assert msg == struct.pack("<4f", 1.0, 2.0, -3.5, 0.25)
    y, tags = decode_iq(msg)
    np.testing.assert_array_equal(y, x)
    assert tags == [] and y.flags.writeable


def test_tag_header_layout_and_round_trip():
    x = _tone(100)
    tags = [IqTag(1000, "rx_freq", 2.4e9), IqTag(1050, "burst", True), IqTag(1099, "n", (1, "a", 2.5))]
    msg = encode_iq(x, tags, offset=1000)
    magic, version, offset, ntags = struct.unpack_from("<HBQQ", msg)
    assert (magic, version, offset, ntags) == (0x5FF0, 1, 1000, 3)
    # first tag: offset then the symbol PMT 0x02, len 7 (big-endian), "rx_freq", then a double 0x04
    assert msg[19:27] == struct.pack("<Q", 1000)
    assert msg[27:37] == b"\x02\x00\x07rx_freq"
    assert msg[37:46] == b"\x04" + struct.pack(">d", 2.4e9)
    assert len(msg) - 800 > 19
    y, got = decode_iq(msg, pass_tags=True)
    np.testing.assert_array_equal(y, x)
    assert got == tags


def test_empty_header_is_sent_with_pass_tags():
    msg = encode_iq(_tone(4), pass_tags=True)
    assert len(msg) == 19 + 32
    y, tags = decode_iq(msg, pass_tags=True)
    assert len(y) == 4 and tags == []


@pytest.mark.parametrize(
    "value", [True, False, None, "sym", 7, -(2**40), 2**63 + 5, 1.5, 2 - 3j, (1, (2.0, "x")), [1, None]]
)
def test_pmt_round_trip(value):
    raw = pmt_serialize(value)
    back, pos = pmt_deserialize(raw)
    assert pos == len(raw) and back == value


def test_malformed_messages_raise_clear_errors():
    with pytest.raises(ZmqIqError, match="whole number of 8-byte"):
        decode_iq(b"\x00" * 12)
    with pytest.raises(ZmqIqError, match="too short"):
        decode_iq(b"\x00" * 8, pass_tags=True)
    with pytest.raises(ZmqIqError, match="magic"):
        decode_iq(encode_iq(_tone(8)), pass_tags=True)
    bad = bytearray(encode_iq(_tone(2), [IqTag(0, "k", 1.0)]))
    with pytest.raises(ZmqIqError, match="truncated"):
        decode_iq(bytes(bad[:30]), pass_tags=True)
    bad[2] = 9  # version
    with pytest.raises(ZmqIqError, match="version 9"):
        decode_iq(bytes(bad), pass_tags=True)
    with pytest.raises(ZmqIqError, match="complex"):
        encode_iq(np.ones(4, np.float32))
    with pytest.raises(ZmqIqError, match="pass_tags=False"):
        encode_iq(_tone(2), [IqTag(0, "k", 1)], pass_tags=False)
    with pytest.raises(ZmqIqError, match="1 frame or 2"):
        decode_iq_frames([b"", b"", b""])
    with pytest.raises(ZmqIqError, match="4 bytes"):
        decode_request(b"\x01\x00")


def test_pub_sub_with_key_and_req_rep_over_real_sockets():
    zmq = pytest.importorskip("zmq")
    ctx = zmq.Context.instance()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    rep, req = ctx.socket(zmq.REP), ctx.socket(zmq.REQ)
    try:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub.setsockopt(zmq.SUBSCRIBE, b"leo0")
        sub.setsockopt(zmq.RCVTIMEO, 3000)
        sub.connect(f"tcp://127.0.0.1:{port}")
        x = _tone(256)
        import time

        deadline = time.monotonic() + 3.0
        got = None
        while got is None and time.monotonic() < deadline:  # PUB drops until the subscription arrives
            pub.send_multipart(encode_iq_frames(x, key="leo0"))
            if sub.poll(100):
                got = decode_iq_frames(sub.recv_multipart())
        assert got is not None
        y, tags, key = got
        assert key == b"leo0" and tags == []
        np.testing.assert_array_equal(y, x)

        rport = rep.bind_to_random_port("tcp://127.0.0.1")
        req.connect(f"tcp://127.0.0.1:{rport}")
        req.send(encode_request(100))
        assert rep.poll(3000)
        wanted = decode_request(rep.recv())
        rep.send(encode_iq(x[:wanted]))
        assert req.poll(3000)
        y2, _ = decode_iq(req.recv())
        np.testing.assert_array_equal(y2, x[:100])
    finally:
        for s in (pub, sub, rep, req):
            s.close(linger=0)
