"""The report explains itself: decision trail, timeline, measured BLER with intervals, run settings, controllers."""

import csv
import json
import math

import numpy as np
import pytest

from sagin_hil.flowgraphs import report
from sagin_hil.flowgraphs.report import (
    TASK_COLUMNS, LinkTrace, TaskRecord, aggregate_bler_points, build_summary, clopper_pearson, timeline_numbers,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

WHY = "highest predicted SCC <0.81> & deadline met"

LA_TRAIL = {
    "route": "leo0->uav0->user0",
    "snr_db": {"leo0->uav0": 20.67, "uav0->user0": 21.04},
    "snr_source": {"leo0->uav0": "measured", "uav0->user0": "predicted"},
    "mcs": {"leo0->uav0": "64qam-3/4", "uav0->user0": "16qam-1/2"},
    "candidates": {
        "mode1": {"bits_per_pixel": 3.0, "delay_s": 0.0516, "psnr_db": 43.31, "scc": 0.8142, "delivers": True},
        "jscc-1/12": {"bandwidth_ratio": 1 / 12, "delay_s": 0.0212, "psnr_db": 27.5, "scc": 0.61,
                      "delivers": True},
        "mode3_1": {"bits_per_pixel": 0.1, "delay_s": math.inf, "psnr_db": 21.0, "scc": 0.0, "delivers": False},
    },
    "choice": "mode1",
    "why": WHY,
    "feasible": True,
    "routes_considered": ["leo0->uav0->user0", "leo0->uav1->user0"],
}

TIMELINE = [
    {"stage": "encode", "start_s": 10.0, "duration_s": 0.0308},
    {"stage": "hop", "link": "leo0->uav0", "start_s": 10.0308, "duration_s": 0.0141, "air_s": 0.00715,
     "propagation_s": 0.00345, "retransmissions": 1, "mcs": "64qam-3/4", "snr_db": 20.4},
    {"stage": "hop", "link": "uav0->user0", "start_s": 10.0449, "duration_s": 0.00715051, "air_s": 0.00715,
     "propagation_s": 5.1e-7, "retransmissions": 0, "mcs": "16qam-1/2", "snr_db": 23.16},
    {"stage": "decode", "start_s": 10.05205051, "duration_s": 0.0064},
]


def _record(i, **kw):
    img = np.full((16, 16), 30 * i, np.uint8)
    base = dict(
        task_id=i, name=f"img{i}", route="leo0->uav0->user0", mode="mode1", mcs="64qam-3/4 / 16qam-1/2",
        compression_bpp=3.0, bits=196608, air_time_s=0.0143, delay_s=0.5 + 0.05845051, deadline_s=6.61, psnr_db=41.8,
        ssim=0.97, quality_min_db=28.0, scc=0.77, met_deadline=True, met_quality=True, retransmissions=1,
        sent_image=img, received_image=img,
    )
    base.update(kw)
    return TaskRecord(**base)


def _trace(link="leo0->uav0", points=()):
    t = np.linspace(0.0, 232.0, 50)
    return LinkTrace(link, t, 20 + 3 * np.sin(np.pi * t / 232), 4e5 * np.cos(np.pi * t / 232),
                     measured_t_s=[10.0, 10.03], measured_snr_db=[20.7, 20.4], blocks=sum(p["blocks"] for p in points),
                     block_errors=sum(p["errors"] for p in points), bler_points=list(points))


META = {"description": "unit", "run_id": "unit-20260101-000000-abcdef", "seed": 4242, "version": "9.8.7",
        "timing": "measured", "radio": {"kind": "emulated", "gain_db": 3}, "controller": "link-adaptation",
        "controllers": {"link-adaptation": {"tasks": 1, "met_deadline": 1, "met_quality": 1, "met_both": 1,
                                            "mean_scc": 0.77, "mean_psnr_db": 41.8, "mean_delay_s": 0.56,
                                            "fallbacks": 0}},
        "resolved_flowgraph": {"name": "unit", "seed": 4242}, "wall_time_s": 1.0, "symbol_rate_hz": 8e6}


def _binom_cdf(k, n, p):
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def _bisect(f, lo=0.0, hi=1.0):
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("k,n", [(0, 100), (5, 50), (3, 7), (100, 100)])
def test_clopper_pearson_matches_the_binomial_definition(k, n):
    lo, hi = clopper_pearson(k, n)
    # upper bound: P(X <= k | hi) = 0.025; lower bound: P(X >= k | lo) = 0.025
    want_hi = 1.0 if k == n else _bisect(lambda p: _binom_cdf(k, n, p) - 0.025)
    want_lo = 0.0 if k == 0 else _bisect(lambda p: 0.025 - (1 - _binom_cdf(k - 1, n, p)))
    assert lo == pytest.approx(want_lo, abs=1e-9) and hi == pytest.approx(want_hi, abs=1e-9)


def test_clopper_pearson_known_values():
    assert clopper_pearson(0, 100) == (0.0, pytest.approx(0.0362, abs=5e-5))  # 1 - 0.025^(1/100)
    lo, hi = clopper_pearson(5, 50)
    assert (round(lo, 4), round(hi, 4)) == (0.0333, 0.2181)
    assert clopper_pearson(0, 0) == (0.0, 1.0)


def test_bler_points_pool_per_mcs_and_bin_and_skip_analog():
    pts = [("a", {"mcs": "qpsk-1/2", "snr_db": 2.1, "blocks": 60, "errors": 3, "nominal": True}),
           ("b", {"mcs": "qpsk-1/2", "snr_db": 1.9, "blocks": 40, "errors": 2, "nominal": False}),
           ("a", {"mcs": "qpsk-1/2", "snr_db": 6.0, "blocks": 100, "errors": 0, "nominal": True}),
           ("a", {"mcs": "analog", "snr_db": 5.0, "blocks": 0, "errors": 0, "nominal": True}),
           ("a", {"mcs": "analog", "snr_db": 5.0, "blocks": 3, "errors": 1, "nominal": True}),
           ("a", {"mcs": "16qam-1/2", "snr_db": float("nan"), "blocks": 10, "errors": 10, "nominal": True})]
    out = aggregate_bler_points(pts)
    assert [p["mcs"] for p in out] == ["16qam-1/2", "qpsk-1/2", "qpsk-1/2"]
    unknown, low, high = out
    assert unknown["snr_db"] is None and unknown["bler"] == 1.0 and unknown["ci95"][1] == 1.0
    assert (low["blocks"], low["errors"], low["sends"], low["links"]) == (100, 5, 2, ["a", "b"])
    assert low["snr_db"] == pytest.approx((2.1 * 60 + 1.9 * 40) / 100)
    assert low["ci95"] == pytest.approx(list(clopper_pearson(5, 100)))
    assert high["errors"] == 0 and high["ci95"][0] == 0.0 and high["ci95"][1] == pytest.approx(0.0362, abs=5e-5)
    assert high["table_bler"] is not None and 0.0 <= high["table_bler"] <= 1.0  # the shipped table has qpsk-1/2


def test_timeline_numbers_split_hops_and_find_the_wait():
    n = timeline_numbers(TIMELINE, 0.5 + 0.05845051)
    assert n["wait_s"] == pytest.approx(0.5, abs=1e-9)  # arrived at 9.5, encoded from 10.0
    assert n["encode_s"] == pytest.approx(0.0308) and n["decode_s"] == pytest.approx(0.0064)
    assert n["air_s"] == pytest.approx(0.0143) and n["retransmissions"] == 1
    assert n["hops"][0]["arq_wait_s"] == pytest.approx(0.0141 - 0.00715 - 0.00345)
    assert n["hops"][1]["arq_wait_s"] == 0.0  # rounding residue below a nanosecond is no ARQ wait
    assert timeline_numbers([], 1.0) is None and timeline_numbers(None, None) is None
    assert timeline_numbers([{"stage": "hop"}], None)["hops"][0]["air_s"] == 0.0  # missing keys count as zero


def test_report_shows_trail_timeline_bler_and_settings(tmp_path):
    rec = _record(0, predicted={"delay_s": 0.0516, "psnr_db": 43.31, "scc": 0.8142}, trail=LA_TRAIL,
                  timeline=TIMELINE)
    first = _trace("leo0->uav0", [{"mcs": "64qam-3/4", "snr_db": 20.4, "blocks": 100, "errors": 0, "nominal": True},
                                  {"mcs": "64qam-3/4", "snr_db": 15.8, "blocks": 50, "errors": 5, "nominal": True}])
    second = _trace("uav0->user0", [{"mcs": "analog", "snr_db": 23.0, "blocks": 0, "errors": 0, "nominal": True}])
    summary = build_summary("unit", [rec], [first, second], dict(META))
    index = write_report(tmp_path, summary, [rec], [first, second])
    page = index.read_text()

    # the decision trail: choice, reason (escaped), sounded SNR and its source, MCS per hop, candidates
    assert "mode1 &#10004;" in page and "jscc-1/12" in page and "mode3_1" in page
    assert html_escaped(WHY) in page and WHY not in page
    for text in ("20.67", "21.04", "measured", "predicted", "64qam-3/4", "16qam-1/2", "43.31", "0.8142",
                 "51.6 ms", "routes_considered", "leo0-&gt;uav1-&gt;user0"):
        assert text in page, text
    # the hop numbers: air, propagation, ARQ wait, retransmissions, encode, decode, the wait before encoding
    for text in ("7.15 ms", "3.45 ms", "510 ns", "3.5 ms", "30.8 ms", "6.4 ms", "500 ms", "558 ms"):
        assert text in page, text
    # run settings
    for text in ("4242", "9.8.7", "unit-20260101-000000-abcdef", "emulated", "gain_db", "resolved flowgraph"):
        assert text in page, text
    # measured BLER with intervals, in the page and in summary.json
    data = json.loads((tmp_path / "summary.json").read_text())
    pts = data["links"][0]["bler_points"]
    assert [(p["snr_bin_db"], p["blocks"], p["errors"]) for p in pts] == [(16.0, 50, 5), (20.0, 100, 0)]
    assert pts[1]["ci95"][0] == 0.0 and pts[1]["ci95"][1] == pytest.approx(0.0362, abs=5e-5)
    assert data["links"][1]["bler_points"] == []  # analog bursts carry no code blocks
    assert data["links"][0]["bler_ci95"] == pytest.approx(list(clopper_pearson(5, 150)))
    assert len(data["bler_points"]) == 2 and "0.0362" in page
    assert data["tasks"][0]["trail"]["candidates"]["mode3_1"]["delay_s"] is None  # strict JSON: inf -> null
    # tasks.csv keeps its columns
    assert tuple(next(csv.reader(open(tmp_path / "tasks.csv")))) == TASK_COLUMNS
    for png in ("timeline.png", "bler.png", "pass.png", "tasks.png", "images.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC, png
        assert png in page
    assert not (tmp_path / "rates.png").exists()  # one controller, no relay frames: no comparison


def html_escaped(text):
    import html

    return html.escape(text)


def test_ao_trail_and_controller_comparison(tmp_path):
    def frame(scale):
        return {"users": {"user0": {"task_id": 0, "kind": "semantic", "predicted_rate_bps": 17.5e6 * scale,
                                    "measured_rate_bps": 17.4e6 * scale, "phy_rate_bps": 8.7e6 * scale,
                                    "semantic_gain": 2.0},
                          "user2": {"task_id": 1, "kind": "conventional", "predicted_rate_bps": 3.1e6 * scale,
                                    "measured_rate_bps": 3.0e6 * scale, "phy_rate_bps": 2.0e6 * scale,
                                    "semantic_gain": 1.0}},
                "sum_rate_bps": 37.8e6 * scale, "phy_sum_rate_bps": 19.4e6 * scale,
                "predicted_sum_rate_bps": 38.1e6 * scale}

    def metrics(scale):
        f = frame(scale)
        return {"tasks": 2, "met_deadline": 1, "met_quality": 1, "met_both": 1, "mean_scc": 0.3,
                "mean_psnr_db": 20.0, "mean_delay_s": float("nan"), "fallbacks": 0, "frames": [f],
                **{k: f[k] for k in ("sum_rate_bps", "phy_sum_rate_bps", "predicted_sum_rate_bps")}}

    served = _record(0, mode="mode3_2", predicted={"rate_bps": 17.5e6, "equivalent_rate_bps": 35e6,
                                                   "semantic_gain": 2.0, "snr_gap_db": 0.0},
                     trail={"route": "leo0->uav0->user0", "choice": "mode3_2", "controller": "ao",
                            "why": "AO over bandwidth, power, position: 3 rounds", "user_kind": "semantic"},
                     timeline=TIMELINE)
    unserved = _record(1, route="leo0->uav0->user2", mcs="not served", delay_s=float("nan"), met_deadline=False,
                       received_image=None, predicted={"rate_bps": 0.0},
                       trail={"route": "leo0->uav0->user2", "choice": "mode1", "controller": "ao", "why": "AO",
                              "served": False, "why_not_served": "no power or bandwidth on uav0->user2"})
    meta = {**META, "controller": "ao", "controllers": {"ao": metrics(1.0), "ao-fixed-power": metrics(0.8)}}
    summary = build_summary("relay", [served, unserved], [_trace()], meta)
    write_report(tmp_path, summary, [served, unserved], [_trace()])
    page = (tmp_path / "index.html").read_text()
    assert "Controllers compared" in page and "ao-fixed-power" in page
    for text in ("38.100", "37.800", "19.400", "30.480", "AO over bandwidth, power, position: 3 rounds",
                 "not served", "no power or bandwidth on uav0-&gt;user2", "17.400 at the measured SNR"):
        assert text in page, text
    for png in ("rates.png", "users.png", "timeline.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC, png
    assert json.loads((tmp_path / "summary.json").read_text())["controllers"]["ao"]["mean_delay_s"] is None


def test_a_bare_record_still_writes_the_report(tmp_path):
    rec = _record(0, sent_image=None, received_image=None)  # no trail, timeline or predictions
    bare = LinkTrace("leo0->uav0", np.linspace(0, 10, 5), np.zeros(5), np.zeros(5))
    summary = build_summary("bare", [rec], [bare], {})
    index = write_report(tmp_path, summary, [rec], [bare])
    page = index.read_text()
    assert "no timeline" in page and "Run settings" in page
    assert json.loads((tmp_path / "summary.json").read_text())["links"][0]["bler_points"] == []
    assert len(list(csv.DictReader(open(tmp_path / "tasks.csv")))) == 1
    assert not (tmp_path / "bler.png").exists() and not (tmp_path / "timeline.png").exists()
    # odd trail values (not dicts, unknown keys) render as text instead of breaking the page
    odd = _record(1, trail={"snr_db": "n/a", "candidates": {"mode1": "skipped"}, "choice": None, "extra": [1, 2]},
                  timeline=[{"stage": "hop", "link": "x->y"}, "junk"])
    write_report(tmp_path / "odd", build_summary("odd", [odd], [], {}), [odd], [])
    assert "skipped" in (tmp_path / "odd" / "index.html").read_text()


def test_a_failing_plot_or_page_never_loses_the_data(tmp_path, monkeypatch):
    rec = _record(0, trail=LA_TRAIL, timeline=TIMELINE)
    summary = build_summary("unit", [rec], [_trace()], dict(META))

    def boom(*_):
        raise RuntimeError("no plot today")

    monkeypatch.setattr(report, "_plot_timeline", boom)
    monkeypatch.setattr(report, "_trails_html", boom)
    page = write_report(tmp_path / "a", summary, [rec], [_trace()]).read_text()
    assert not (tmp_path / "a" / "timeline.png").exists() and "timeline.png" not in page
    assert "could not be rendered: no plot today" in page and "pass.png" in page
    monkeypatch.setattr(report, "_html", boom)
    page = write_report(tmp_path / "b", summary, [rec], [_trace()]).read_text()
    assert "could not be rendered" in page and "summary.json" in page
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["tasks"][0]["trail"]["choice"] == "mode1"
    assert (tmp_path / "b" / "tasks.csv").exists()


def test_pass_plot_spans_the_visibility_window_and_marks_tasks(tmp_path, monkeypatch):
    figs = []
    close = report.plt.close
    monkeypatch.setattr(report.plt, "close", lambda fig=None: (figs.append(fig), close(fig)))
    first = _trace()  # t_s over 0 .. 232 s: the satellite's visibility window
    relay = LinkTrace("uav0->user0", np.linspace(0.0, 600.0, 20), np.full(20, 23.0), np.zeros(20),
                      measured_t_s=[10.05], measured_snr_db=[23.2])
    report._plot_pass([first, relay], tmp_path / "pass.png", [_record(0, timeline=TIMELINE)])
    assert (tmp_path / "pass.png").read_bytes()[:8] == PNG_MAGIC
    ax = figs[-1].axes[0]
    lo, hi = ax.get_xlim()
    assert lo <= 0.0 and 232.0 <= hi < 260.0  # the whole window, not the relay's 600 s grid
    assert any(t.get_text() == "T0" for t in ax.texts)  # the task carried at 10 s is marked
