"""The report folder: every file a user opens is written and consistent with the records."""

import csv
import json

import numpy as np

from sagin_hil.flowgraphs.report import TASK_COLUMNS, LinkTrace, TaskRecord, build_summary, write_report


def _record(i, met=True):
    img = np.full((16, 16, 3), 40 * i, np.uint8)
    return TaskRecord(
        task_id=i, name=f"img{i}", route="leo0->uav0->user0", mode="mode1", mcs="qpsk-1/2 / 16qam-3/4",
        compression_bpp=1.0, bits=8000 + i, air_time_s=1e-3, delay_s=0.5 + i, deadline_s=2.0, psnr_db=30.0 - i,
        ssim=0.9, quality_min_db=28.0, scc=0.4, met_deadline=met, met_quality=met, retransmissions=i,
        sent_image=img, received_image=img if met else None,
    )


def test_report_files_agree_with_records(tmp_path):
    records = [_record(0), _record(1, met=False)]
    t = np.linspace(0, 100, 11)
    trace = LinkTrace("leo0->uav0", t, 10 + 0.1 * t, 1e5 - 2e3 * t, measured_t_s=[10.0, 50.0],
                      measured_snr_db=[10.0, 20.0], blocks=50, block_errors=5,
                      constellation=(np.sign(np.random.default_rng(0).standard_normal((400, 2))) @ [1, 1j]) / np.sqrt(2),
                      mcs_of_constellation="qpsk-1/2")
    summary = build_summary("unit", records, [trace], {"description": "d", "wall_time_s": 1.0})
    index = write_report(tmp_path, summary, records, [trace])

    data = json.loads((tmp_path / "summary.json").read_text())
    assert [t["bits"] for t in data["tasks"]] == [8000, 8001]
    assert data["totals"]["met_deadline"] == 1
    link = data["links"][0]
    assert link["bler"] == 0.1
    # mean of 10 and 20 dB in linear power, not in dB
    assert abs(link["mean_snr_db"] - 10 * np.log10((10 + 100) / 2)) < 1e-9
    rows = list(csv.DictReader(open(tmp_path / "tasks.csv")))
    assert tuple(rows[0]) == TASK_COLUMNS and rows[1]["met_quality"] == "False"
    for png in ("pass.png", "constellations.png", "images.png", "tasks.png"):
        assert (tmp_path / png).stat().st_size > 1000, png
        assert png in index.read_text()
    assert 'class="bad"' in index.read_text()  # missed deadlines are flagged in the page
