"""Co-channel UAVs interfere at sample level (Eq. 6 of [P000]): their own waveforms, through their own channels,
at their path gains; the receiver measures the SINR the link budget predicts for that waveform."""

import tomllib
from importlib import resources

import numpy as np
import pytest

from sagin_hil.flowgraphs.config import PhyConfig
from sagin_hil.flowgraphs.hops import EmulatedHop
from sagin_hil.phy.channel.scenario import Scenario


def _scenario(x_interferer_m: float, interference: bool = True) -> Scenario:
    ref = tomllib.loads((resources.files("sagin_hil.phy.channel") / "scenarios" / "default.toml").read_text())
    ref["uavs"][1]["position_m"] = [x_interferer_m, 80.0, 50.0]
    ref["air_ground"]["k_factor_db"] = 30.0  # nearly line of sight: the SINR, not the fading, is measured
    ref["air_ground"]["interference"] = interference
    return Scenario.from_dict(ref)


@pytest.mark.parametrize("x_m", [300.0, 800.0])
def test_the_measured_sinr_is_the_budgets_for_an_rrc_shaped_interferer(x_m):
    """The budget treats the interference as white over the band B = Rs (1 + rolloff); an interferer shaped
    like our own signal passes our matched filter more than white noise does, by (1 - rolloff/4)(1 + rolloff)
    (0.69 dB at rolloff 0.25). The receiver's Es/N0 estimate must land there, several dB below the
    interference-free SNR."""
    sc, t, phy = _scenario(x_m), 60.0, PhyConfig()
    hop = EmulatedHop(sc, "uav0", "user0", phy, seed=3)
    assert [other for other, *_ in hop.interferers] == ["uav1", "uav2"]
    sinr_db = sc.link_state("uav0", "user0", t).snr_db + 10 * np.log10(1 + phy.rolloff)  # Es/(N0 + I0)
    snr_db = sc.link_state("uav0", "user0", t, interference=False).snr_db + 10 * np.log10(1 + phy.rolloff)
    shaped_db = 10 * np.log10((1 - phy.rolloff / 4) * (1 + phy.rolloff))
    data = bytes(np.random.default_rng(1).integers(0, 256, 8000, dtype=np.uint8))
    measured = np.mean([hop.send(data, "bpsk-1/2", t + k, 0).report.snr_db for k in range(3)])
    assert measured == pytest.approx(sinr_db - shaped_db, abs=0.4)
    assert snr_db - measured > 5.0  # the interference, not the noise, sets it


def test_without_interference_no_other_uav_is_heard():
    sc, t = _scenario(300.0, interference=False), 60.0
    hop = EmulatedHop(sc, "uav0", "user0", PhyConfig(), seed=3)
    assert hop.interferers == []
    data = bytes(np.random.default_rng(1).integers(0, 256, 8000, dtype=np.uint8))
    measured = hop.send(data, "bpsk-1/2", t, 0).report.snr_db
    limited = _scenario(300.0).link_state("uav0", "user0", t).snr_db  # the SINR were uav1 heard: ~1.7 dB
    assert measured > limited + 20
