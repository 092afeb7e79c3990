"""`sagin-hil bench world`: the link abstraction against the sample level, on the same plans.

The sagin-000 flowgraph is run at sample level under link adaptation. For every task the abstraction
(controllers.abstraction.Predictor, the prediction the Gymnasium environment steps with) predicts the same
plan (the route, mode and budget the controller chose, at the SNRs it had sounded); its delay and PSNR
are set against what the sample-level run measured. Beside it: the environment's throughput (steps per
second, one thread, a vector of 64) and the sample-level runner's (tasks per second) on the same machine.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from sagin_hil.benchmarks import benchmark_entry, report_progress

__all__ = ["bench_world", "abstraction_errors", "profile_interpolation_errors"]


def profile_interpolation_errors(n_images: int = 8, size: int = 256) -> np.ndarray:
    """|PSNR predicted - measured| (dB) of JPEG 2000 at budgets halfway (in log bpp) between the profile grid's
    points, on held-out images: the quality model's error where a controller's budget falls off the grid."""
    from sagin_hil.codecs.base import Budget
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import psnr
    from sagin_hil.codecs.modes import MIN_MODE1_BITS, RateQualityTable
    from sagin_hil.codecs.profile import PROFILE_BPP_GRID, measure_quality_profile
    from sagin_hil.codecs.registry import get_codec

    codec = get_codec("jpeg2000")
    grid = np.asarray(PROFILE_BPP_GRID)
    mids = np.sqrt(grid[1:] * grid[:-1])
    errors = []
    for _, img in load_images(n=n_images, size=size, split="eval"):
        prof = measure_quality_profile(img)
        predicted = RateQualityTable(prof.bpp, prof.psnr_db).psnr_at(mids)
        for bpp, want in zip(mids, predicted):
            pay = codec.encode(img, Budget(bits=max(int(bpp * size * size), MIN_MODE1_BITS)))
            errors.append(abs(float(psnr(img, codec.decode(pay.data))) - float(want)))
    return np.asarray(errors)


def abstraction_errors(summary: dict[str, Any], n_pixels: int, target_bler: float = 0.1) -> dict[str, Any]:
    """Per task of a link-adaptation run's summary: the abstraction's delay and PSNR for its plan (with the
    image's own quality profile when the run measured one) against the measured ones. Returns arrays "psnr_err_db" (predicted - measured) and "delay_err_rel"
    (|predicted - measured| / measured), over the tasks that were carried."""
    from sagin_hil.controllers.abstraction import Predictor

    tasks = [t for t in summary["tasks"] if t.get("trail", {}).get("snr_db") and t["bits"] > 0]
    modes = sorted({t["mode"] for t in tasks})
    pred = Predictor(modes=modes, target_bler=target_bler, n_pixels=n_pixels)
    n_hops = max(len(t["trail"]["snr_db"]) for t in tasks)
    snr, rate, prop, on = (np.zeros((len(tasks), n_hops)) for _ in range(4))
    for i, t in enumerate(tasks):
        hops = [s for s in t["timeline"] if s["stage"] == "hop"]
        for j, (link, s) in enumerate(t["trail"]["snr_db"].items()):
            snr[i, j] = -50.0 if s is None else s
            rate[i, j] = summary["symbol_rate_hz"]
            prop[i, j] = next(h["propagation_s"] for h in hops if h["link"] == link)
            on[i, j] = 1
    # the images' own quality, as the controller planned with it (tasks.quality_profile); else the mean image
    grid = pred.quality.psnr_db
    curve = np.array([t["quality_profile"]["psnr_db"] if t.get("quality_profile") else grid for t in tasks])
    own = np.array([[(t.get("quality_profile") or {}).get("mode_psnr_db", {}).get(m, np.nan) for m in modes]
                    for t in tasks])
    out = pred.predict(np.array([modes.index(t["mode"]) for t in tasks]), snr, rate, prop, on.astype(bool),
                       np.array([t["deadline_s"] for t in tasks]), np.array([t["quality_min_db"] for t in tasks]),
                       curve_db=curve, mode_psnr_db=own)
    measured_delay = np.array([t["delay_s"] for t in tasks])
    measured_psnr = np.array([t["psnr_db"] for t in tasks])
    return {"psnr_err_db": out["psnr_db"] - measured_psnr,
            "delay_err_rel": np.abs(out["delay_s"] - measured_delay) / measured_delay,
            "predicted_delay_s": out["delay_s"], "measured_delay_s": measured_delay,
            "predicted_psnr_db": out["psnr_db"], "measured_psnr_db": measured_psnr}


def bench_world(quick: bool = False) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    from sagin_hil.controllers.env import measure_env_throughput
    from sagin_hil.flowgraphs.config import load_flowgraph
    from sagin_hil.flowgraphs.runner import run_flowgraph

    count = 6 if quick else 24
    fg = load_flowgraph("sagin-000").with_overrides(sets=[f"tasks.count={count}", "controller.compare=[]"])
    report_progress(f"sagin-000 at sample level, {count} tasks", 0, 4)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = run_flowgraph(fg, out_dir=Path(tmp)).summary
        runner_tasks_per_s = count / (time.perf_counter() - t0)
    report_progress("the abstraction on the same plans", 1, 4)
    err = abstraction_errors(summary, fg.images.size_px ** 2, fg.controller.options.get("target_bler", 0.1))
    report_progress("the images' quality profiles between grid points", 2, 4)
    interp = profile_interpolation_errors(n_images=3 if quick else 8)
    report_progress("environment throughput, 64 environments", 3, 4)
    steps_per_s = measure_env_throughput(n_envs=64, steps=100 if quick else 400)
    report_progress("done", 4, 4)
    abs_psnr, rel_delay = np.abs(err["psnr_err_db"]), err["delay_err_rel"]
    ours = {
        "steps_per_s": float(steps_per_s),
        "psnr_err_db_median": float(np.median(abs_psnr)), "psnr_err_db_p90": float(np.percentile(abs_psnr, 90)),
        "delay_err_rel_median": float(np.median(rel_delay)), "delay_err_rel_p90": float(np.percentile(rel_delay, 90)),
        "tasks": int(abs_psnr.size),
        "psnr_interp_err_db_median": float(np.median(interp)), "psnr_interp_err_db_p90": float(np.percentile(interp, 90)),
    }
    peer = {"steps_per_s": float(runner_tasks_per_s)}
    return {"benchmarks": [benchmark_entry(
        "world", ours, {"sample-level runner": peer}, {"sample-level runner": steps_per_s / runner_tasks_per_s},
        note=("ours: the link abstraction (controllers.abstraction) predicting each task of a sample-level "
              "sagin-000 run under link adaptation (same route, mode, budget and sounded SNRs, each image's own "
              "quality profile); errors are |predicted - measured| per task (PSNR in dB, delay relative). "
              "psnr_interp_err_*: the quality profile's error at JPEG 2000 budgets between its grid points on "
              "held-out images (where a controller's budget falls off the grid). steps_per_s: SaginVecEnv, 64 "
              "environments, one thread; the peer's: tasks the sample-level runner carries per second. A "
              "step and a task are not the same work: the ratio says how much faster the abstraction "
              "explores, not a like-for-like speed-up."),
        settings={"flowgraph": "sagin-000", "tasks": count, "image_px": fg.images.size_px},
    )]}
