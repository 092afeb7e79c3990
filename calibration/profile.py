"""Calibration profiles: a fitted channel written as TOML, and the channel emulator that reproduces it (the twin).

    [source]    the recordings (path, sha512), when and by what they were fitted, bursts, duration
    [waveform]  sample rate, carrier, samples per symbol, roll-off of the recorded bursts
    [channel]   es_n0_db and the ChannelParams fields: doppler_hz, doppler_rate_hz_per_s, delay_s,
                delay_rate_s_per_s, k_factor_db, max_doppler_hz, cfo_ppm
    [ci95]      each fitted value's 95 % interval

`twin_params(profile, waveform)` turns it into ChannelParams for a given transmit waveform: the emulator
counts SNR per sample against the waveform's mean power, so Es/N0 is converted with that waveform's symbol
energy at unit power (measured on the waveform itself by the calibration's own estimator).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from sagin_hil.phy.channel.emulator import CALIBRATION_CHANNEL_KEYS, load_calibration_profile

__all__ = ["write_profile", "load_profile", "twin_params", "symbol_energy_at_unit_power"]

# one reader serves this layer and the emulator service (which may not import this layer)
load_profile = load_calibration_profile


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return '"inf"' if v > 0 else '"-inf"'
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_profile(path: str | Path, fit, rec) -> Path:
    """Write the fit of recording `rec` (calibration.channel_fit) as a profile; returns the path."""
    from sagin_hil import __version__

    fs, fc = rec.sample_rate_hz, rec.carrier_hz
    v = {k: fit.value(k) for k in fit.values}
    doppler = v["doppler_hz"] or 0.0
    mid_s = fit.duration_s / 2
    channel = {
        "es_n0_db": v["snr_db"],
        "doppler_hz": doppler,
        "doppler_rate_hz_per_s": v["doppler_rate_hz_s"] or 0.0,
        # the delay at the start of the recording, drifting with the mean Doppler over it (tau' = -f_D / f_c)
        "delay_s": (v["delay_samples"] or 0.0) / fs,
        "delay_rate_s_per_s": -(doppler + (v["doppler_rate_hz_s"] or 0.0) * mid_s) / fc if fc else 0.0,
        "k_factor_db": v["k_factor_db"],
        "max_doppler_hz": v["max_doppler_hz"] or 0.0,
        "cfo_ppm": (v["cfo_hz"] or 0.0) / fc * 1e6 if fc else 0.0,
    }
    data_path = Path(str(rec.path).replace(".sigmf-meta", ".sigmf-data"))
    lines = [f"# Channel twin fitted by sagin-hil calibrate channel on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
             "[source]", f"recording = {_toml_value(str(rec.path))}",
             f"sha512 = {_toml_value(hashlib.sha512(data_path.read_bytes()).hexdigest())}",
             f"fitted_by = {_toml_value('sagin-hil ' + __version__)}", f"bursts = {fit.bursts}",
             f"duration_s = {_toml_value(fit.duration_s)}", f"notes = {_toml_value(fit.notes)}", "",
             "[waveform]", f"sample_rate_hz = {_toml_value(fs)}", f"carrier_hz = {_toml_value(fc or 0.0)}",
             f"sps = {rec.sps}", f"rolloff = {_toml_value(rec.rolloff)}", "", "[channel]"]
    lines += [f"{k} = {_toml_value(float(channel[k]))}" for k in CALIBRATION_CHANNEL_KEYS]
    lines += ["", "[ci95]"]
    lines += [f"{k} = {_toml_value(fit.values[k]['ci95'])}" for k in fit.values if fit.values[k]["ci95"] is not None]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines) + "\n")
    return p


def symbol_energy_at_unit_power(wave: np.ndarray, sps: int, rolloff: float) -> float:
    """Es of a transmit waveform normalised to unit mean power: |h|^2 of its bursts' preambles, measured
    noise-free by the calibration's estimator (a packet's guards and tails make it differ from sps)."""
    from sagin_hil.calibration.channel_fit import _fine, _matched_filter
    from sagin_hil.phy.frame import preamble_symbols
    from sagin_hil.phy.sync import BurstDetector

    x = np.asarray(wave, np.complex128) / math.sqrt(float(np.mean(np.abs(wave) ** 2)))
    pre = np.asarray(preamble_symbols(), np.complex128)
    y = _matched_filter(x, sps, rolloff)
    d = BurstDetector(pre, sps, threshold=0.5).find(y, 0)
    if d is None:
        raise ValueError("the waveform has no burst with this project's preamble")
    return float(abs(_fine(x, d.index + d.frac, d.cfo_cpsym, pre, sps, rolloff)[2]) ** 2)


def twin_params(profile: dict[str, Any], wave: np.ndarray):
    """ChannelParams reproducing the profile's channel for the transmit waveform `wave` (unit mean power)."""
    from sagin_hil.phy.channel.emulator import ChannelParams

    wf = profile["waveform"]
    es = symbol_energy_at_unit_power(wave, int(wf["sps"]), float(wf["rolloff"]))
    return ChannelParams.from_calibration(profile, es)
