"""Real-time pacing of the channel emulator and its service: late blocks are reported, two workers pass
the stream exactly as one does."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pytest
import zmq

from sagin_hil.hil.emulator_service import EmulatorService
from sagin_hil.hil.zmq_iq import decode_iq_frames
from sagin_hil.phy.channel.emulator import LATE_AFTER_S, ChannelEmulator, ChannelParams
from sagin_hil.hil.ports import free_endpoint




def test_a_paced_emulator_waits_for_the_wall_clock_and_is_never_late():
    em = ChannelEmulator(1e6, params=ChannelParams(snr_db=20, signal_power=1.0), realtime=True)
    x = np.ones(20_000, np.complex64)
    t0 = time.perf_counter()
    for _ in range(5):
        em.process(x)
    assert time.perf_counter() - t0 >= 0.099  # 100 ms of samples take 100 ms (the first block starts the clock)
    rt = em.stats()["realtime"]
    assert rt["late_blocks"] == 0 and rt["max_lag_s"] <= LATE_AFTER_S


def test_an_emulator_that_cannot_keep_up_reports_it():
    em = ChannelEmulator(1e12, params=ChannelParams(snr_db=20, signal_power=1.0), realtime=True)  # 1 TS/s
    x = np.ones(1 << 16, np.complex64)
    for _ in range(4):
        em.process(x)
        time.sleep(0.03)  # a stall, as a loaded machine would cause
    rt = em.stats()["realtime"]
    assert rt["late_blocks"] >= 3 and rt["max_lag_s"] > LATE_AFTER_S and rt["lag_s"] > 0
    assert ChannelEmulator(1e6).stats()["realtime"] is None  # virtual time: nothing to report


@pytest.mark.parametrize("workers", [1, 2])
def test_service_two_workers_pass_every_block_in_order_and_warn_when_behind(workers, caplog):
    ctx = zmq.Context()
    e_tx, e_rx = free_endpoint(), free_endpoint()
    push = ctx.socket(zmq.PUSH)
    push.bind(e_tx)
    pull = ctx.socket(zmq.PULL)
    em = ChannelEmulator(1e9, realtime=True)  # transparent, at a rate no machine holds
    blocks = [np.full(1000 + i, i + 1, np.complex64) for i in range(30)]
    try:
        with caplog.at_level(logging.WARNING), EmulatorService(em, e_tx, e_rx, workers=workers) as svc:
            pull.connect(e_rx)
            for b in blocks:
                push.send(b.tobytes())
                time.sleep(0.002)
            got = []
            while len(got) < len(blocks):
                assert pull.poll(10_000), "a block did not come out"
                got.append(decode_iq_frames(pull.recv_multipart(), False)[0])
            stats = svc.stats()
        for a, b in zip(got, blocks):
            assert np.array_equal(a, b)  # exact, in order: the channel thread keeps the stream's order
        assert stats["workers"] == workers and stats["realtime"]["late_blocks"] > 0
        assert any("behind real time" in r.getMessage() for r in caplog.records)
    finally:
        ctx.destroy(linger=0)


def test_service_warns_again_after_the_lag_statistics_are_reset(caplog):
    """`bench emulator` forgets the warm-up's late blocks (reset_lag): late blocks after that are warned
    about again, however many the warm-up had (its check, driven by hand: no timing involved)."""
    em = ChannelEmulator(1e6, realtime=True)
    svc = EmulatorService(em, free_endpoint(), free_endpoint())
    with caplog.at_level(logging.WARNING):
        em.late_blocks = 200  # the warm-up: the first block waited for the connections
        svc._check_pace()
        em.reset_lag()
        caplog.clear()
        em.late_blocks = 2  # two late blocks in the measurement
        svc._late_logged_at -= 1.0  # a second later (the service warns once a second at most)
        svc._check_pace()
    assert any("2 late blocks" in r.getMessage() for r in caplog.records)


def test_service_rejects_a_bad_worker_count():
    with pytest.raises(ValueError, match="workers"):
        EmulatorService(ChannelEmulator(1e6), free_endpoint(), free_endpoint(), workers=3)


@pytest.mark.parametrize("bad", [-1, 100, True, "10", 2.5])
def test_service_rejects_a_bad_rt_priority(bad):
    with pytest.raises(ValueError, match=r"rt_priority = .*SCHED_FIFO priority 1-99"):
        EmulatorService(ChannelEmulator(1e6), free_endpoint(), free_endpoint(), rt_priority=bad)


@pytest.mark.parametrize("workers", [1, 2])
def test_rt_priority_is_granted_or_refused_aloud(workers, caplog):
    """Where the OS allows it the service's threads run SCHED_FIFO; where it does not, a warning says so and
    stats() reports it; either way the stream passes."""
    ctx = zmq.Context()
    e_tx, e_rx = free_endpoint(), free_endpoint()
    push = ctx.socket(zmq.PUSH)
    push.bind(e_tx)
    pull = ctx.socket(zmq.PULL)
    em = ChannelEmulator(1e6, realtime=True)
    try:
        with caplog.at_level(logging.WARNING), EmulatorService(em, e_tx, e_rx, workers=workers, rt_priority=5) as svc:
            pull.connect(e_rx)
            granted = svc.stats()["rt_priority"]["granted"]
            assert svc.stats()["rt_priority"]["asked"] == 5 and isinstance(granted, bool)
            policy = os.sched_getscheduler(svc._thread.native_id)
            assert policy == (os.SCHED_FIFO if granted else os.SCHED_OTHER)
            assert granted or any("not permitted" in r.getMessage() for r in caplog.records)
            x = np.arange(1000, dtype=np.complex64)
            push.send(x.tobytes())
            assert pull.poll(10_000)
            assert np.array_equal(decode_iq_frames(pull.recv_multipart(), False)[0], x)
    finally:
        ctx.destroy(linger=0)


def test_pace_bench_streams_between_two_radio_processes_at_the_rate():
    """`bench emulator`'s run at 2 MS/s for 1.5 s: each radio end in a process of its own, the output paced to
    the rate (a paced service delivers the rate, give or take the one 33-ms block in flight), nothing dropped,
    the machine's load and the scheduling reported."""
    from sagin_hil.hil.pace_bench import pace_run

    r = pace_run(dict(snr_db=20.0, signal_power=1.0, doppler_hz=1e3, delay_s=1e-4), 1.5, rate_hz=2e6, rt_priority=0)
    assert r["msps"] == pytest.approx(2.0, rel=0.05) and r["dropped"] == 0
    assert r["wall_s"] >= 1.5 and 0 < r["cpu_cores"] <= (os.cpu_count() or 1)
    assert r["rt_priority_granted"] is None and r["held"] == (r["late_blocks"] == 0 and r["msps"] >= 1.98)


def test_pace_bench_says_why_its_service_process_died():
    """A service that cannot start (here a scheduling priority out of range) ends the run at once with its
    own error, instead of leaving the bench waiting for blocks that never come."""
    from sagin_hil.hil.pace_bench import pace_run

    with pytest.raises(RuntimeError, match=r"service process exited with code 1: ValueError: rt_priority = 200"):
        pace_run(dict(snr_db=20.0, signal_power=1.0), 1.0, rate_hz=2e6, rt_priority=200)


def test_cli_refuses_a_bad_rt_priority_by_name():
    from typer.testing import CliRunner

    from sagin_hil.cli import app

    res = CliRunner().invoke(app, ["emulator", "serve", "--link", "leo0->uav0", "--tx", free_endpoint(), "--rx",
                                   free_endpoint(), "--rt-priority", "200"])
    assert res.exit_code == 2 and "rt_priority = 200" in " ".join(res.output.split())
