"""ZmqRadio: two radios wired back to back over ZeroMQ (gr-zeromq wire format), every socket pattern."""


import numpy as np
import pytest

pytest.importorskip("zmq")

from sagin_hil.hil.radio import RadioConfig, RadioError, open_radio  # noqa: E402
from sagin_hil.hil.ports import free_port  # noqa: E402
from sagin_hil.hil.zmq_iq import decode_iq, encode_iq  # noqa: E402


def _pair(pattern, pass_tags=False, timeout_s=3.0):
    a, b = free_port(), free_port()
    common = dict(kind="zmq", zmq_pattern=pattern, zmq_pass_tags=pass_tags, sample_rate_hz=1e6, timeout_s=timeout_s)
    # each radio binds its TX and connects its RX to the other's TX: a loopback "cable"
    r1 = open_radio(RadioConfig(uri=f"tcp://127.0.0.1:{b}", tx_uri=f"tcp://127.0.0.1:{a}", **common))
    r2 = open_radio(RadioConfig(uri=f"tcp://127.0.0.1:{a}", tx_uri=f"tcp://127.0.0.1:{b}", **common))
    return r1, r2


@pytest.mark.parametrize("pass_tags", [False, True])
def test_push_pull_carries_samples_exactly_and_in_order(pass_tags):
    r1, r2 = _pair("push-pull", pass_tags)
    try:
        x = (np.random.default_rng(1).standard_normal(5000) * (1 + 1j) / 4).astype(np.complex64)
        r1.tx(x[:3000])
        r1.tx(x[3000:])
        got = np.concatenate([r2.rx(1234).samples, r2.rx(3766).samples])  # cut anywhere
        np.testing.assert_array_equal(got, x)
    finally:
        r1.close()
        r2.close()


def test_pub_sub_cyclic_stream():
    r1, r2 = _pair("pub-sub")
    try:
        tone = np.exp(2j * np.pi * np.arange(100) / 100).astype(np.complex64)
        r1.tx(tone, cyclic=True)  # re-sent every 100 us until stopped
        y = r2.rx(1000).samples
        k = int(np.argmin(np.abs(tone - y[0])))
        np.testing.assert_allclose(y, np.roll(np.tile(tone, 11), -k)[:1000], atol=1e-6)
    finally:
        r1.close()
        r2.close()


def test_req_rep_lockstep():
    r1, r2 = _pair("req-rep")
    try:
        import threading

        x = np.arange(2000).astype(np.complex64)
        th = threading.Thread(target=r1.tx, args=(x,))
        th.start()
        y = r2.rx(2000).samples  # asks for what it still needs; REP answers in pieces
        th.join()
        np.testing.assert_array_equal(y, x)
    finally:
        r1.close()
        r2.close()


def test_lost_samples_are_counted_from_tag_header_offsets():
    import zmq

    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    radio = open_radio(RadioConfig(kind="zmq", uri=f"tcp://127.0.0.1:{port}", zmq_pass_tags=True, timeout_s=3))
    try:
        push.send(encode_iq(np.ones(100, np.complex64), pass_tags=True, offset=0))
        push.send(encode_iq(np.ones(100, np.complex64), pass_tags=True, offset=500))  # 400 lost upstream
        res = radio.rx(200)
        assert res.overflows == 1
    finally:
        radio.close()
        push.close(linger=0)


def test_timeout_keeps_partial_and_malformed_message_is_named():
    import zmq

    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    radio = open_radio(RadioConfig(kind="zmq", uri=f"tcp://127.0.0.1:{port}", timeout_s=0.3))
    try:
        push.send(encode_iq(np.full(50, 1 + 2j, np.complex64)))
        with pytest.raises(RadioError, match="no IQ from .* within 0.3 s") as info:
            radio.rx(100)
        np.testing.assert_array_equal(info.value.partial.samples, np.full(50, 1 + 2j, np.complex64))
        push.send(b"\x00" * 12)
        with pytest.raises(RadioError, match="malformed IQ message"):
            radio.rx(10)
        with pytest.raises(RadioError, match="no tx_uri"):
            radio.tx(np.ones(4, np.complex64))
    finally:
        radio.close()
        push.close(linger=0)
    assert decode_iq(encode_iq(np.ones(2, np.complex64)))[0].shape == (2,)


def test_through_the_channel_emulator_service():
    """ZmqRadio -> EmulatorService (ChannelEmulator, 5 kHz Doppler, 0.5 ms delay) -> ZmqRadio."""
    service_mod = pytest.importorskip("sagin_hil.hil.emulator_service")
    from sagin_hil.phy.channel.emulator import ChannelEmulator, ChannelParams

    fs = 1e6
    a, b = free_port(), free_port()
    em = ChannelEmulator(fs, 2.4e9, ChannelParams(doppler_hz=5e3, delay_s=500e-6))
    common = dict(kind="zmq", sample_rate_hz=fs, timeout_s=5.0)
    tx = open_radio(RadioConfig(uri=f"tcp://127.0.0.1:{free_port()}", tx_uri=f"tcp://127.0.0.1:{a}", **common))
    service = service_mod.EmulatorService(em, f"tcp://127.0.0.1:{a}", f"tcp://127.0.0.1:{b}").start()
    rx = open_radio(RadioConfig(uri=f"tcp://127.0.0.1:{b}", **common))
    try:
        x = np.exp(2j * np.pi * 10e3 * np.arange(20000) / fs).astype(np.complex64)
        tx.tx(x)
        y = rx.rx(20000).samples
        assert np.all(np.abs(y[:490]) < 1e-6)  # the 0.5 ms delay: nothing has arrived yet
        z = y[600:]
        f = np.angle(np.sum(z[1:] * np.conj(z[:-1]))) * fs / (2 * np.pi)
        assert abs(f - 15e3) < 1.0  # 10 kHz tone + 5 kHz Doppler
        assert np.mean(np.abs(z)) == pytest.approx(1.0, rel=1e-3)
    finally:
        rx.close()
        service.stop()
        tx.close()


def test_busy_tx_port_is_named_with_the_fix():
    """A second radio on a taken tx_uri used to raise AttributeError from its own clean-up."""
    import zmq

    holder = zmq.Context.instance().socket(zmq.PUSH)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    try:
        with pytest.raises(RadioError) as info:
            open_radio(RadioConfig(kind="zmq", uri=f"tcp://127.0.0.1:{free_port()}", tx_uri=f"tcp://127.0.0.1:{port}"))
        msg = str(info.value)
        assert f"cannot bind tx_uri 'tcp://127.0.0.1:{port}': Address already in use" in msg
        assert "set tx_uri to a free one" in msg
    finally:
        holder.close(linger=0)


SRSRAN_FS = 1.92e6  # srsRAN's 6-PRB base rate: 1920 samples per 1 ms subframe


def test_srsran_receiver_pulls_1920_sample_blocks_from_our_transmitter():
    """srsRAN's ZMQ RX is a REQ that sends one byte (0xFF) and takes whatever fc32 block comes back."""
    import threading

    import zmq

    port = free_port()
    radio = open_radio(RadioConfig(kind="zmq", zmq_pattern="req-rep", uri=f"tcp://127.0.0.1:{free_port()}",
                                   tx_uri=f"tcp://127.0.0.1:{port}", sample_rate_hz=SRSRAN_FS, timeout_s=5))
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(f"tcp://127.0.0.1:{port}")
    x = (np.random.default_rng(3).standard_normal(5760) * (1 + 1j) / 4).astype(np.complex64)
    th = threading.Thread(target=radio.tx, args=(x,))
    th.start()
    try:
        blocks = []
        for _ in range(3):
            req.send(b"\xff")
            assert req.poll(5000)
            blocks.append(np.frombuffer(req.recv(), np.complex64))  # raw fc32, as srsRAN reads it
        th.join(5)
        assert [len(b) for b in blocks] == [1920, 1920, 1920]
        np.testing.assert_array_equal(np.concatenate(blocks), x)
    finally:
        req.close()
        radio.close()


def test_our_receiver_pulls_from_an_srsran_transmitter():
    """srsRAN's ZMQ TX is a REP that reads a one-byte request (a longer one is truncated to its first byte)
    and answers with one subframe of fc32; our 4-byte request works and the block size is whatever comes."""
    import threading

    import zmq

    port = free_port()
    rep = zmq.Context.instance().socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    rep.bind(f"tcp://127.0.0.1:{port}")
    stream = (np.random.default_rng(4).standard_normal(1920 * 4) * (1 - 1j) / 4).astype(np.complex64)
    stop = threading.Event()

    def srsran_tx():
        k = 0
        while not stop.is_set() and k < 4:
            if rep.poll(50):
                rep.recv()
                rep.send(stream[1920 * k : 1920 * (k + 1)].tobytes())
                k += 1

    th = threading.Thread(target=srsran_tx)
    th.start()
    radio = open_radio(RadioConfig(kind="zmq", zmq_pattern="req-rep", uri=f"tcp://127.0.0.1:{port}",
                                   sample_rate_hz=SRSRAN_FS, timeout_s=5))
    try:
        y = np.concatenate([radio.rx(5000).samples, radio.rx(2680).samples])  # cut mid-block: leftovers kept
        np.testing.assert_array_equal(y, stream[:7680])
    finally:
        stop.set()
        th.join(2)
        radio.close()
        rep.close()
