"""The link-adapted JPEG 2000 + LDPC baseline of `bench codec`: MCS choice from an outdated report, its
margin calibration, the report's channel, and the packet PHY on Rician fading."""

import math

import numpy as np
import pytest

from sagin_hil.flowgraphs.codec_bench import (FEEDBACK_DELAY_S, MARGINS_DB, AdaptedMcs, DigitalImageLink,
                                              PacketPhyChannel, PilotChannel, calibrate_margin)
from sagin_hil.phy.mcs import MCS_TABLE, get_mcs

NAMES = [m.name for m in MCS_TABLE]


def test_adapted_mcs_thresholds_rise_with_spectral_efficiency_and_margin_backs_off():
    ad0, ad3 = AdaptedMcs(0.0, NAMES), AdaptedMcs(3.0, NAMES)
    thr = {m: t for m, t in ad0.thresholds_db.items() if math.isfinite(t)}
    assert len(thr) >= 3
    se = {m: get_mcs(m).spectral_efficiency for m in thr}
    assert all(thr[a] < thr[b] for a in thr for b in thr if se[a] < se[b])  # (equal efficiencies may swap)
    assert ad0.floor == min(NAMES, key=lambda m: get_mcs(m).spectral_efficiency)
    assert ad0.choose(-30.0) == ad0.floor
    assert get_mcs(ad0.choose(40.0)).spectral_efficiency == max(m.spectral_efficiency for m in MCS_TABLE
                                                                if math.isfinite(ad0.thresholds_db[m.name]))
    for report in np.arange(-5.0, 30.0, 0.7):  # a margin is exactly a lower report
        assert ad3.choose(report) == ad0.choose(report - 3.0)
        m = ad0.choose(report)
        assert m == ad0.floor or ad0.thresholds_db[m] <= report


def test_report_measures_the_snr_and_on_rician_it_fades():
    """AWGN: the report (|h|^2 / N0 on one 16-symbol pilot block) sits near the true 10 dB: the LS gain's
    noise is CN(0, N0 / 16), so in dB the report's standard deviation is 8.69 sqrt(N0 / 32) = 0.49 dB at
    10 dB (0.5 below); 12 draws: each within 5 of those, their mean within 4 / sqrt(12). Rician K = 6 dB:
    |h|^2 of a single instant has a standard deviation of about 2.5 dB in log, so the reports spread by more
    than 1 dB across draws."""
    x = np.exp(2j * np.pi * np.random.default_rng(0).random(4096)).astype(np.complex64)
    awgn = np.array([PilotChannel("awgn", 10.0, seed=s).with_report(x)[3] for s in range(12)])
    sd = 0.5
    assert np.all(np.abs(awgn - 10.0) < 5 * sd) and abs(awgn.mean() - 10.0) < 4 * sd / math.sqrt(12)
    fading = [PilotChannel("rician", 10.0, seed=s).with_report(x)[3] for s in range(12)]
    assert np.std(fading) > 1.0
    y, nv, est, _ = PilotChannel("rician", 25.0, seed=1).with_report(x)
    # the frame itself is still equalised: median error within 3 dB of its own mean SNR's noise (the median
    # of the noise alone lies 1.6 dB below; the rest is interpolation error between pilot blocks)
    assert 10 * np.log10(np.median(np.abs(y - x) ** 2)) < -est + 3.0


def test_channel_seeds_never_repeat_across_snr_points_images_and_fading_draws():
    """Every (SNR point, image, fading draw) the bench can ask for meets a channel of its own, draws beyond
    the tenth included, and none is a margin calibration's seed (10**6 + 1000 * si + t)."""
    from sagin_hil.flowgraphs.codec_bench import RICIAN_DRAWS, _CALIBRATION_SEED, _seed

    seeds = [_seed(si, ii, d) for si in range(12) for ii in range(8) for d in range(max(RICIAN_DRAWS, 40))]
    assert len(set(seeds)) == len(seeds)
    assert all(_seed(si, ii) == 1000 * si + ii for si in range(12) for ii in range(8))  # the fixed-MCS curves'
    assert not set(seeds) & {_CALIBRATION_SEED + 1000 * si + t for si in range(12) for t in range(1000)}


def test_margin_calibration_is_the_smallest_margin_meeting_the_target():
    links = {m: DigitalImageLink(m, 2048) for m in ("bpsk-1/2", "qpsk-1/2", "16qam-1/2", "16qam-3/4")}
    cal = calibrate_margin(links, [6.0, 10.0], trials=2, target_bler=0.1)
    bler = cal["bler_by_margin"]
    assert set(bler) == set(MARGINS_DB) and all(0.0 <= v <= 1.0 for v in bler.values())
    m = cal["margin_db"]
    assert bler[m] <= 0.1 or m == MARGINS_DB[-1]
    assert all(bler[s] > 0.1 for s in MARGINS_DB if s < m)


def test_feedback_delay_ages_the_csi_per_eq_2():
    from sagin_hil.flowgraphs.codec_bench import RICIAN_DOPPLER_HZ, _csi_delta
    from scipy.special import j0

    assert _csi_delta() == pytest.approx(j0(2 * math.pi * RICIAN_DOPPLER_HZ * FEEDBACK_DELAY_S))


def test_packet_phy_channel_on_rician_follows_the_fading():
    """Through the packet PHY on Rician (K 6 dB, 300 Hz) at 15 dB the receiver interpolates the channel
    between pilot blocks: the median squared symbol error stays near the noise (-16.6 dB median at 15 dB),
    and the SNR it gives the decoder is that of the mean error the fades leave (within 1 dB), below 15 dB."""
    rng = np.random.default_rng(3)
    x = ((rng.standard_normal(8192) + 1j * rng.standard_normal(8192)) / np.sqrt(2)).astype(np.complex64)
    y, side, snr_dec = PacketPhyChannel(15.0, seed=2, channel="rician")(x, b"header")
    assert side == b"header" and snr_dec < 15.0
    assert abs(snr_dec - 10 * np.log10(1 / np.mean(np.abs(y - x) ** 2))) < 1.0
    assert 10 * np.log10(np.median(np.abs(y - x) ** 2)) < -16.6 + 4.6
    with pytest.raises(ValueError, match="rician"):
        PacketPhyChannel(15.0, channel="rayleigh")


@pytest.mark.slow
def test_bench_codec_quick_has_the_adapted_baseline_and_the_rician_phy_curve(tmp_path):
    from sagin_hil.benchmarks import validate_results
    from sagin_hil.flowgraphs.codec_bench import bench_codec

    res = validate_results(bench_codec(quick=True, out_dir=tmp_path))
    by = {(c["codec"], c["channel"]): c for c in res["curves"]}
    ad = by[("j2k-ldpc-adapted-1/12", "rician")]
    assert ad["margin_db"] in MARGINS_DB and len(ad["mcs"]) == len(ad["snr_db"]) == len(ad["bler"])
    assert ad["calibration_bler"][f"{ad['margin_db']:g}"] <= 0.1 or ad["margin_db"] == MARGINS_DB[-1]
    assert ("jscc-phy-1/12", "rician") in by and ("j2k-capacity-1/12", "awgn") in by
    entries = {b["name"]: b for b in res["benchmarks"]}
    rician = entries["jscc_vs_j2k_1_12_rician"]["ours"]
    assert {"lead_over_adapted_db_at_0db", "adapted_margin_db"} <= set(rician)
    awgn = entries["jscc_vs_j2k_1_12_awgn"]["ours"]
    assert "gap_to_separation_bound_db_at_5db" in awgn
    # the JSCC with the channel known: its gaps to the bound follow from the two curves; no pilot-estimation
    # noise, so on average over the SNRs it is above the pilot-equalised curve (0.3-0.8 dB below 5 dB)
    csi, bound, pilot = by[("jscc-csi-1/12", "awgn")], by[("j2k-capacity-1/12", "awgn")], by[("jscc-1/12", "awgn")]
    i5 = csi["snr_db"].index(5.0)
    assert awgn["gap_to_separation_bound_known_csi_db_at_5db"] == pytest.approx(bound["psnr_db"][i5] - csi["psnr_db"][i5])
    assert np.mean(np.subtract(csi["psnr_db"], pilot["psnr_db"])) > 0.0
    assert isinstance(awgn["target_met_known_csi"], bool) and isinstance(awgn["target_met_packet_phy"], bool)
    # each curve's per-image PSNR averages to the curve (Rician: each image's mean over its fading draws)
    for key in (("jscc-1/12", "awgn"), ("jscc-1/12", "rician"), ("j2k-capacity-1/12", "awgn"), ("jscc-csi-1/12", "awgn")):
        per = by[key]["psnr_db_by_image"]
        assert len(per) == 2 and all(len(v) == len(by[key]["snr_db"]) for v in per.values())
        np.testing.assert_allclose(np.mean(list(per.values()), axis=0), by[key]["psnr_db"], atol=1e-9)


@pytest.mark.slow
def test_bench_codec_is_reproducible_run_to_run(tmp_path):
    """Every channel draw is seeded, so the same run twice gives the same numbers to the bit: a change in a
    stored row is a change in the code or the weights, never noise."""
    from sagin_hil.flowgraphs.codec_bench import bench_codec

    runs = [bench_codec(quick=True, out_dir=tmp_path / str(i), channels=["awgn", "rician"]) for i in range(2)]
    first, second = ({(c["codec"], c["channel"]): c["psnr_db"] for c in r["curves"]} for r in runs)
    assert first.keys() == second.keys() and len(first) > 10
    assert first == second
