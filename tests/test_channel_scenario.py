"""Scenario geometry, visibility (Eq. 7-8), link budget (Eq. 1, 4-6), Doppler (TR 38.811) and CSI (Eq. 2)."""

import math

import numpy as np
import pytest
from scipy.special import j0

from sagin_hil.phy.channel import geometry as geo
from sagin_hil.phy.channel.csi import OutdatedCsi, csi_correlation
from sagin_hil.phy.channel.link_budget import free_space_path_loss_db, isl_rate_bps
from sagin_hil.phy.channel.scenario import Scenario, ScenarioError, load_scenario

C = geo.SPEED_OF_LIGHT_M_S


def one_pass(altitude_km=600.0, carrier_hz=2e9, rotation=False, min_elev=0.0, inclination=53.0, **extra):
    d = dict(
        name="pass", duration_s=1400.0, earth_rotation=rotation, min_elevation_deg=min_elev,
        space_air=dict(carrier_hz=carrier_hz),
        satellites=[dict(name="s", altitude_km=altitude_km, inclination_deg=inclination, zenith_time_s=700.0)],
        uavs=[dict(name="u", position_m=[0, 0, 0], altitude_min_m=0.0)], **extra,
    )
    return Scenario.from_dict(d, source="test")


def test_default_scenario_matches_reference():
    sc = Scenario.default()
    assert (len(sc.satellites), len(sc.uavs), len(sc.users)) == (5, 3, 8)
    c = sc.config
    assert c.space_air.carrier_hz == 25e9 and c.space_air.bandwidth_hz == 10e6 and c.space_air.noise_dbm == -130
    assert c.satellites[0].altitude_km == 750 and c.satellites[0].antenna_gain_db == 40
    assert c.satellites[0].tx_power_w == 1.0 and c.uavs[0].tx_power_w == 0.2
    assert all(sc.position_enu(u, 0.0)[2] == 50.0 for u in sc.uavs)
    # LEO spacing 250-500 km along the orbit (REFERENCE sec. 1)
    gaps = [sc.distance_m(a, b, 0.0) for a, b in zip(sc.satellites, sc.satellites[1:])]
    assert all(250e3 <= g <= 500e3 for g in gaps), gaps
    t0, t1 = sc.visibility_window("leo0", "uav0")
    assert 0.0 <= t0 < 10.0 and 200.0 < t1 - t0 < 240.0


def test_scenario_round_trips_through_toml_dict(tmp_path):
    sc = Scenario.default()
    again = Scenario.from_dict(sc.to_dict(), source="copy")
    assert again.config == sc.config
    assert again.link_state("leo2", "uav1", 150.0) == sc.link_state("leo2", "uav1", 150.0)


def test_eq7_eq8_match_reference_numbers():
    arc = geo.visibility_arc_m(750e3, 40.0)
    assert arc == pytest.approx(1683e3, rel=0.01)
    assert geo.visibility_duration_s(750e3, 40.0, speed_m_s=7.8e3) == pytest.approx(216.0, rel=0.01)


@pytest.mark.parametrize("altitude_km, tau", [(750.0, 40.0), (600.0, 10.0), (1200.0, 25.0)])
def test_visibility_window_agrees_with_eq8(altitude_km, tau):
    sc = one_pass(altitude_km, rotation=False, min_elev=tau)
    t0, t1 = sc.visibility_window("s", "u")
    assert sc.elevation_deg("s", "u", t0 + 1e-3) >= tau > sc.elevation_deg("s", "u", t0 - 1e-3)
    # Eq. 8 with the circular speed: the direct geometry over a non-rotating Earth agrees exactly
    assert t1 - t0 == pytest.approx(geo.visibility_duration_s(altitude_km * 1e3, tau), rel=2e-4)
    # a turning Earth changes it by the ground speed ratio only (a few per cent)
    rot = one_pass(altitude_km, rotation=True, min_elev=tau)
    r0, r1 = rot.visibility_window("s", "u")
    assert r1 - r0 == pytest.approx(t1 - t0, rel=0.06)


def _max_doppler(sc):
    t0, t1 = sc.visibility_window("s", "u")
    states = [sc.link_state("s", "u", t) for t in np.linspace(t0 + 1e-3, t1 - 1e-3, 1500)]
    return max(abs(s.doppler_hz) for s in states), max(abs(s.doppler_rate_hz_per_s) for s in states)


@pytest.mark.parametrize(
    "altitude_km, carrier_hz, tr_shift_hz, tr_rate_hz_s",
    [(600.0, 2e9, 48e3, 544.0), (600.0, 20e9, 480e3, 5.44e3), (1500.0, 2e9, 40e3, 180.0)],
)
def test_doppler_reproduces_tr38811(altitude_km, carrier_hz, tr_shift_hz, tr_rate_hz_s):
    """TR 38.811 Table 5.3.4.3.2-7 for a UE the satellite passes straight over."""
    shift, rate = _max_doppler(one_pass(altitude_km, carrier_hz))
    assert shift == pytest.approx(tr_shift_hz, rel=0.05)
    assert rate == pytest.approx(tr_rate_hz_s, rel=0.07)
    # and exactly the closed forms of that geometry: f/c w R_E at the horizon, f/c r R_E w^2 / h overhead
    r = geo.EARTH_RADIUS_M + altitude_km * 1e3
    w = math.sqrt(geo.MU_EARTH_M3_S2 / r**3)
    assert shift == pytest.approx(carrier_hz / C * w * geo.EARTH_RADIUS_M, rel=2e-3)
    assert rate == pytest.approx(carrier_hz / C * r * geo.EARTH_RADIUS_M * w**2 / (altitude_km * 1e3), rel=1e-3)


def test_doppler_and_delay_follow_the_range():
    sc = Scenario.default()
    t, h = 60.0, 1e-3
    st = sc.link_state("leo0", "uav1", t)
    rr = (sc.distance_m("leo0", "uav1", t + h) - sc.distance_m("leo0", "uav1", t - h)) / (2 * h)
    assert st.doppler_hz == pytest.approx(-25e9 * rr / C, rel=1e-5)
    assert st.delay_s == pytest.approx(st.distance_m / C, rel=1e-12)
    later, earlier = sc.link_state("leo0", "uav1", t + 0.5), sc.link_state("leo0", "uav1", t - 0.5)
    assert later.doppler_hz - earlier.doppler_hz == pytest.approx(st.doppler_rate_hz_per_s, rel=1e-4)


def test_space_air_link_budget_eq1_eq3():
    sc = Scenario.default()
    st = sc.link_state("leo0", "uav0", 115.0)  # overhead
    fspl = 20 * math.log10(4 * math.pi * st.distance_m * 25e9 / C)
    assert st.distance_m == pytest.approx(750e3 - 50.0, rel=1e-4) and st.elevation_deg > 89.0
    assert st.rx_power_dbw == pytest.approx(0.0 + 40.0 - fspl, abs=1e-9)
    assert st.snr_db == pytest.approx(st.rx_power_dbw - (-160.0), abs=1e-9)
    assert st.rate_bps == pytest.approx(10e6 * math.log2(1 + 10 ** (st.snr_db / 10)))
    assert st.visible and math.isinf(st.k_factor_db)
    low = sc.link_state("leo0", "uav0", 300.0)
    assert low.elevation_deg < 40.0 and not low.visible and low.snr_db < st.snr_db


def test_air_ground_eq5_eq6():
    sc = Scenario.default()
    st = sc.link_state("uav0", "user0", 0.0)
    d = st.distance_m
    mu = 10.0
    gain = 1e-6 * (mu / (mu + 1) * d**-2.0 + 1 / (mu + 1) * d**-2.6)
    assert st.rx_power_dbw == pytest.approx(10 * math.log10(0.2 * gain), abs=1e-9)
    interf = sum(
        0.2 * 1e-6 * (mu / (mu + 1) * dd**-2.0 + 1 / (mu + 1) * dd**-2.6)
        for dd in (sc.distance_m(u, "user0", 0.0) for u in ("uav1", "uav2"))
    )
    assert st.interference_dbw == pytest.approx(10 * math.log10(interf), abs=1e-9)
    assert st.snr_db == pytest.approx(10 * math.log10(0.2 * gain / (1e-16 + interf)), abs=1e-9)
    assert st.k_factor_db == 10.0
    quiet = Scenario.from_dict({**sc.to_dict(), "air_ground": {**sc.to_dict()["air_ground"], "interference": False}})
    assert quiet.link_state("uav0", "user0", 0.0).snr_db > st.snr_db


def test_isl_eq4_and_earth_blocking():
    sc = Scenario.default()
    st = sc.link_state("leo0", "leo1", 0.0)
    snr = 1.0 * 1e4 / (1.380649e-23 * 354.81 * 10e6 * (4 * math.pi * st.distance_m * 25e9 / C) ** 2)
    assert st.snr_db == pytest.approx(10 * math.log10(snr), abs=1e-9)
    assert sc.isl_rate_bps("leo0", "leo1", 0.0) == pytest.approx(isl_rate_bps(1.0, 40.0, st.distance_m, 25e9, 10e6))
    far = dict(name="s2", altitude_km=750.0, raan_deg=0.0, phase_deg=180.0, inclination_deg=0.0)
    near = dict(name="s1", altitude_km=750.0, raan_deg=0.0, phase_deg=0.0, inclination_deg=0.0)
    sc2 = Scenario.from_dict(dict(satellites=[near, far], uavs=[dict(name="u", position_m=[0, 0, 50])]))
    assert not sc2.link_state("s1", "s2", 0.0).visible and sc2.isl_rate_bps("s1", "s2", 0.0) == 0.0


def test_fspl_known_value():
    assert free_space_path_loss_db(750e3, 25e9) == pytest.approx(177.90, abs=0.01)


def test_uav_motion_gives_doppler():
    d = dict(
        satellites=[dict(name="s", altitude_km=750.0, zenith_time_s=0.0)],
        uavs=[dict(name="u", waypoints=[[0, -1000, 0, 50], [200, 1000, 0, 50]])],  # 10 m/s east
        users=[dict(name="g", position_m=[5000.0, 0.0, 50.0])],
        earth_rotation=False,
    )
    sc = Scenario.from_dict(d)
    st = sc.link_state("u", "g", 100.0)  # heading straight at the user, same height
    assert st.doppler_hz == pytest.approx(2e9 * 10.0 / C, rel=1e-6)
    assert np.allclose(sc.position_enu("u", 150.0), [500.0, 0.0, 50.0])


def test_csi_delta_eq2():
    sc = Scenario.default()
    st = sc.link_state("leo0", "uav0", 100.0)
    assert sc.csi_delta("leo0", "uav0", 100.0, 1e-3) == pytest.approx(j0(2 * math.pi * st.max_doppler_hz * 1e-3))
    assert sc.csi_delta("leo0", "uav0", 100.0) == pytest.approx(j0(2 * math.pi * st.max_doppler_hz * st.delay_s))
    assert csi_correlation(100.0, 0.0) == 1.0


def test_outdated_csi_statistics():
    rng = np.random.default_rng(1)
    h_hat = (rng.standard_normal(200_000) + 1j * rng.standard_normal(200_000)) / math.sqrt(2)
    delta = csi_correlation(50.0, 2e-3)
    h = OutdatedCsi(delta, seed=2)(h_hat)
    rho = np.vdot(h_hat, h).real / len(h)
    assert rho == pytest.approx(delta, abs=0.01)
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, rel=0.01)
    snr = OutdatedCsi(0.0, seed=3).snr_db(10.0, size=100_000)  # fully outdated: Rayleigh around the plan
    assert np.mean(10 ** (snr / 10)) == pytest.approx(10.0, rel=0.02)
    with pytest.raises(ValueError, match="delta = 1.5"):
        OutdatedCsi(1.5)


def test_tle_orbit():
    iss = (
        "1 25544U 98067A   19343.69339541  .00001764  00000-0  38792-4 0  9991",
        "2 25544  51.6439 211.2001 0007417  17.6667  85.6398 15.50103472202482",
    )
    sc = Scenario.from_dict(dict(satellites=[dict(name="iss", tle=list(iss))], uavs=[dict(name="u", position_m=[0, 0, 50])]))
    pos, vel = sc.state_eci("iss", 0.0)
    assert 380e3 < np.linalg.norm(pos) - geo.EARTH_RADIUS_M < 440e3
    assert np.linalg.norm(vel) == pytest.approx(7.66e3, rel=0.01)
    st = sc.link_state("iss", "u", 1000.0)
    rr = (sc.distance_m("iss", "u", 1000.001) - sc.distance_m("iss", "u", 999.999)) / 2e-3
    assert st.doppler_hz == pytest.approx(-25e9 * rr / C, rel=1e-4)


def test_validation_errors_name_file_key_and_value(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[satellites]]\nname = "s"\naltitude_km = -5.0\nzenith_time_s = 0.0\n[[uavs]]\nname = "u"\nposition_m = [0, 0, 50]\n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(bad)
    msg = str(err.value)
    assert "bad.toml" in msg and "satellites[0].altitude_km" in msg and "-5.0" in msg and "greater than 100" in msg
    with pytest.raises(ScenarioError, match=r"carrier_hzz.*Extra inputs"):
        Scenario.from_dict({**Scenario.default().to_dict(), "space_air": {"carrier_hzz": 1e9}})
    with pytest.raises(ScenarioError, match=r"uavs\[0\].*max_speed_mps = 10"):
        Scenario.from_dict(dict(satellites=[dict(name="s", altitude_km=750.0, zenith_time_s=0.0)],
                                uavs=[dict(name="u", waypoints=[[0, 0, 0, 50], [1, 100, 0, 50]])]))
    with pytest.raises(ScenarioError, match=r"altitude 80.0 m is outside \[45.0, 60.0\]"):
        Scenario.from_dict(dict(satellites=[dict(name="s", altitude_km=750.0, zenith_time_s=0.0)],
                                uavs=[dict(name="u", position_m=[0, 0, 80])]))
    with pytest.raises(ScenarioError, match="exactly one orbit"):
        Scenario.from_dict(dict(satellites=[dict(name="s", altitude_km=750.0)], uavs=[dict(name="u", position_m=[0, 0, 50])]))
    with pytest.raises(ScenarioError, match="through a UAV"):
        Scenario.default().link_state("leo0", "user0", 0.0)
    with pytest.raises(ScenarioError, match="no node named 'leo9'"):
        Scenario.default().link_state("leo9", "uav0", 0.0)
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path / "missing.toml")


def test_move_uav_respects_limits():
    sc = Scenario.default()
    arrive = sc.move_uav("uav0", (100.0, 0.0, 55.0), t_s=10.0)
    assert arrive == pytest.approx(10.0 + math.hypot(100.0, 5.0) / 10.0)
    assert np.allclose(sc.position_enu("uav0", 10.0), [0, 0, 50]) and np.allclose(sc.position_enu("uav0", 30.0), [100, 0, 55])
    st = sc.link_state("uav0", "user0", 12.0)  # flying towards user0 (east): positive Doppler
    assert st.doppler_hz > 0
    with pytest.raises(ScenarioError, match=r"altitude 80.0 m is outside \[45.0, 60.0\]"):
        sc.move_uav("uav1", (0.0, 0.0, 80.0), t_s=0.0)
    with pytest.raises(ScenarioError, match=r"max_speed_mps = 10"):
        sc.move_uav("uav1", (3100.0, 0.0, 50.0), t_s=0.0, speed_mps=30.0)
    with pytest.raises(ScenarioError, match="not a UAV"):
        sc.move_uav("leo0", (0.0, 0.0, 50.0), t_s=0.0)
