"""A scenario-driven channel follows the scenario's time even when blocks jump ahead (bursts seconds apart)."""

import numpy as np
import pytest

from sagin_hil.datatypes import SampleBlock
from sagin_hil.phy.channel.emulator import ChannelEmulator
from sagin_hil.phy.channel.scenario import Scenario


def test_delay_and_doppler_follow_a_jump_in_time():
    sc = Scenario.default()
    fs = 8e6
    em = ChannelEmulator.for_link(sc, "leo0", "uav0", fs, seed=0)
    burst = np.ones(64, np.complex64)
    em.process(SampleBlock(burst, fs, start_time_s=5.0))
    em.process(SampleBlock(burst, fs, start_time_s=40.0))  # 35 s later: the LEO is hundreds of km closer
    want = sc.link_state("leo0", "uav0", 40.0)
    before = sc.link_state("leo0", "uav0", 5.0)
    assert abs(before.delay_s - want.delay_s) > 1e-5  # the jump matters: > 80 samples of delay
    assert em.current_delay_s() == pytest.approx(want.delay_s, abs=1.0 / fs)
    assert em.params.doppler_hz == pytest.approx(want.doppler_hz, rel=1e-3)


def test_contiguous_blocks_equal_one_call():
    sc = Scenario.default()
    fs = 4e6
    x = (np.random.default_rng(1).standard_normal(40_000) * (1 + 1j)).astype(np.complex64)
    one = ChannelEmulator.for_link(sc, "leo0", "uav0", fs, seed=3).process(SampleBlock(x, fs, start_time_s=12.0))
    em = ChannelEmulator.for_link(sc, "leo0", "uav0", fs, seed=3)
    a = em.process(SampleBlock(x[:12345], fs, start_time_s=12.0))
    b = em.process(SampleBlock(x[12345:], fs, start_time_s=a.end_time_s))
    np.testing.assert_array_equal(np.concatenate([a.samples, b.samples]), one.samples)
