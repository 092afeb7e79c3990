"""`sagin-hil calibrate verify PROFILE REC...`: does the twin reproduce what the recording measured?

For each recording, the same bursts (the waveform its annotations name: sounding preambles, or packets of the
annotated MCS and size with fresh random payloads) are sent through the profile's emulator, and both are
measured the same way:

- EVM: of the preambles (every recording), as the calibration's estimator sees them: sqrt(mean noise /
  mean |h|^2) over bursts; the gap is 20 log10(EVM_twin / EVM_recording) dB;
- BLER: of the packets (packet recordings), decoded by the link's receiver in windows around each burst;
  the gap is the Es/N0 offset at which the twin's BLER equals the recording's (the twin re-run at offsets
  of -1 .. +1 dB, log BLER interpolated), in dB; a recording with no or only failed blocks gives a bound.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

__all__ = ["verify_profile", "OFFSETS_DB"]

OFFSETS_DB = (-1.0, -0.5, 0.0, 0.5, 1.0)


def _preamble_evm(bursts) -> float:
    """RMS error vector of the preambles relative to their mean power: sqrt(mean noise / mean |h|^2)."""
    return float(np.sqrt(np.mean(bursts.noise_var) / np.mean(np.abs(bursts.gain) ** 2)))


def _packet_bler(rec, delay_samples: float) -> tuple[int, int]:
    """(failed blocks, blocks) of the recording's annotated packets, each decoded in a window around it."""
    from sagin_hil.phy.link import LinkConfig, PacketReceiver

    anns = [a for a in rec.meta.get("annotations", []) if a.get("core:label") == "burst" and "sagin:mcs" in a]
    rs = rec.sample_rate_hz / rec.sps
    rx = PacketReceiver(LinkConfig(symbol_rate_hz=rs, sps=rec.sps, rolloff=rec.rolloff))
    margin = 64 * rec.sps
    errors = blocks = 0
    for a in anns:
        lo = int(a["sagin:tx_sample"] + delay_samples) - margin
        hi = lo + int(a["core:sample_count"]) + 2 * margin
        pkt = rx.demodulate(np.asarray(rec.samples[max(lo, 0):hi]))
        if pkt is None or not pkt.header_ok or not pkt.n_blocks:
            errors, blocks = errors + 1, blocks + 1
        else:
            errors += int(np.count_nonzero(~np.asarray(pkt.block_ok)))
            blocks += int(pkt.n_blocks)
    return errors, blocks


def _twin_recording(profile: dict, rec, path, offset_db: float, seed: int):
    """The recording's burst train through the twin (Es/N0 shifted by offset_db), as a new recording."""
    from sagin_hil.calibration.profile import twin_params
    from sagin_hil.calibration.recordings import sounding_burst, synthesize
    from sagin_hil.phy.link import LinkConfig, PacketTransmitter

    anns = [a for a in rec.meta.get("annotations", []) if a.get("core:label") == "burst"]
    if len(anns) < 2:
        raise ValueError(f"{rec.path}: needs >= 2 annotated bursts to rebuild its burst train for the twin")
    first = anns[0]
    waveform = first.get("sagin:waveform", "packets" if "sagin:mcs" in first else "sounding")
    rs = rec.sample_rate_hz / rec.sps
    if waveform == "packets":
        wave = PacketTransmitter(LinkConfig(symbol_rate_hz=rs, sps=rec.sps, rolloff=rec.rolloff)).modulate(
            bytes(int(first.get("sagin:payload_bytes", 16))), first["sagin:mcs"], 0)
    else:
        wave = sounding_burst(rec.sps, rec.rolloff)
    params = twin_params(profile, wave)
    params = dataclasses.replace(params, snr_db=params.snr_db + offset_db)
    period_s = (anns[1]["sagin:tx_sample"] - anns[0]["sagin:tx_sample"]) / rec.sample_rate_hz
    return synthesize(path, params, carrier_hz=rec.carrier_hz or 2.4e9, symbol_rate_hz=rs, sps=rec.sps,
                      duration_s=len(anns) * period_s, burst_period_s=period_s, waveform=waveform,
                      mcs=first.get("sagin:mcs", "qpsk-1/2"), payload_bytes=int(first.get("sagin:payload_bytes", 16)),
                      seed=seed)


def verify_profile(profile: dict, recordings: list, workdir, seed: int = 1) -> dict[str, Any]:
    """Per recording: EVM and BLER measured on it and on the twin, and the gaps in dB (module docstring)."""
    from pathlib import Path

    from sagin_hil.calibration.channel_fit import measure_bursts, read_recording

    out: dict[str, Any] = {}
    for i, path in enumerate(recordings):
        rec = read_recording(path)
        bursts = measure_bursts(rec)
        delay = float(profile["channel"]["delay_s"]) * rec.sample_rate_hz
        row: dict[str, Any] = {"evm_recording": _preamble_evm(bursts)}
        twins = {}
        for off in OFFSETS_DB if any("sagin:mcs" in a for a in rec.meta.get("annotations", [])) else (0.0,):
            twins[off] = read_recording(_twin_recording(profile, rec, Path(workdir) / f"twin{i}_{off:+.1f}", off,
                                                        seed + i))
        row["evm_twin"] = _preamble_evm(measure_bursts(twins[0.0]))
        row["evm_gap_db"] = 20 * math.log10(row["evm_twin"] / row["evm_recording"])
        if len(twins) > 1:
            err, n = _packet_bler(rec, delay)
            row["bler_recording"], row["blocks"] = err / n, n
            curve = {off: _packet_bler(t, delay) for off, t in twins.items()}
            row["bler_twin"] = {f"{off:+.1f} dB": e / m for off, (e, m) in curve.items()}
            row["bler_gap_db"] = _equal_bler_offset(err / n, {off: e / m for off, (e, m) in curve.items()}, n)
        out[str(path)] = row
    return out


def _equal_bler_offset(target: float, curve: dict[float, float], n: int) -> float | None:
    """The Es/N0 offset (dB) where the twin's BLER (falling with offset) crosses `target`, by log-linear
    interpolation; None when the recording's BLER is 0 or 1 or outside the twin's range."""
    if not 0 < target < 1:
        return None
    offs = sorted(curve)
    floor = 0.5 / n  # a zero count is read as half a block
    logs = [math.log10(max(curve[o], floor)) for o in offs]
    lt = math.log10(target)
    for (o0, l0), (o1, l1) in zip(zip(offs, logs), zip(offs[1:], logs[1:])):
        if (l0 - lt) * (l1 - lt) <= 0 and l0 != l1:
            return o0 + (lt - l0) * (o1 - o0) / (l1 - l0)
    return None
