"""SigMF recordings of bursts for calibration: written by runs (`sagin-hil run --record DIR`), by
`synthesize` (a burst train through the channel emulator with chosen parameters), or by other tools.

Layout: cf32_le samples on the transmitter's time line (sample k of a capture left the transmitter at the
capture's time + k / fs), one capture per contiguous stretch, one annotation per burst ("core:label":
"burst", "sagin:tx_sample" = the recording sample where the burst's waveform started to be sent, plus its
MCS and sequence number), and in the global section the waveform (sagin:sps, sagin:rolloff), the link and,
when known, the predicted delay (sagin:predicted_delay_s) that resolves a delay longer than the burst spacing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BurstRecordingWriter", "synthesize", "burst_offsets", "sounding_burst", "recording_paths"]


def recording_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(meta, data) paths of a SigMF recording named by its base, its .sigmf-meta or its .sigmf-data (SigMF's
    naming, as hil.recording writes it: calibration reads recordings without depending on the radio layer)."""
    p = Path(path)
    base = p.with_suffix("") if p.suffix in (".sigmf-meta", ".sigmf-data", ".sigmf") else p
    return base.with_name(base.name + ".sigmf-meta"), base.with_name(base.name + ".sigmf-data")


def _iso(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class BurstRecordingWriter:
    """Append captures of received samples with their bursts' transmit samples to NAME.sigmf-data/-meta.

    The metadata is rewritten after every capture (a crash keeps what was recorded) and carries the data
    file's sha512 once closed.
    """

    def __init__(self, path: str | os.PathLike, sample_rate_hz: float, carrier_hz: float, sps: int,
                 rolloff: float, link: str = "", description: str = "", extra: dict[str, Any] | None = None):
        from sagin_hil import __version__

        self.meta_path, self.data_path = recording_paths(path)
        self.meta_path.parent.mkdir(parents=True, exist_ok=True)
        self._data = open(self.data_path, "wb")
        self._n = 0
        self._global = {
            "core:datatype": "cf32_le", "core:version": "1.0.0", "core:sample_rate": float(sample_rate_hz),
            "core:description": description or f"received samples of {link or 'a link'}",
            "core:recorder": f"sagin-hil {__version__}",
            "core:extensions": [{"name": "sagin", "version": "1.0.0", "optional": True}],
            "sagin:sps": int(sps), "sagin:rolloff": float(rolloff),
            "sagin:link": link, **(extra or {}),
        }
        self._carrier = float(carrier_hz)
        self._captures: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []

    def append(self, samples: np.ndarray, time_s: float, bursts: list[tuple[int, int, dict[str, Any]]],
               capture: dict[str, Any] | None = None) -> None:
        """One capture: `samples` received from scenario time `time_s`; bursts = [(tx offset within the
        capture, length in samples, {"mcs", "seq", ...})]; `capture`: more fields of its capture segment."""
        x = np.ascontiguousarray(samples, np.complex64)
        self._data.write(x.astype("<c8").tobytes())
        self._data.flush()
        self._captures.append({"core:sample_start": self._n, "core:frequency": self._carrier,
                               "core:datetime": _iso(time_s), "sagin:time_s": float(time_s), **(capture or {})})
        for off, count, info in bursts:
            self._annotations.append({"core:sample_start": self._n + int(off), "core:sample_count": int(count),
                                      "core:label": "burst", "sagin:tx_sample": self._n + int(off),
                                      **{f"sagin:{k}": v for k, v in info.items()}})
        self._n += x.size
        self._write_meta()

    def _write_meta(self, sha512: str | None = None) -> None:
        glob = dict(self._global, **({"core:sha512": sha512} if sha512 else {}))
        meta = {"global": glob, "captures": self._captures, "annotations": self._annotations}
        tmp = self.meta_path.with_name(self.meta_path.name + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, self.meta_path)

    def close(self) -> Path:
        if not self._data.closed:
            self._data.close()
            digest = hashlib.sha512(self.data_path.read_bytes()).hexdigest()
            self._write_meta(digest)
        return self.meta_path

    def __enter__(self) -> BurstRecordingWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def burst_offsets(wave: np.ndarray, sps: int, rolloff: float) -> list[int]:
    """Where each burst of a clean transmitted waveform starts (sample offsets), found by the calibration's
    own detector on the noise-free wave (a packet of several fragments has one burst per fragment)."""
    from sagin_hil.calibration.channel_fit import _matched_filter, reference_offset_samples
    from sagin_hil.phy.frame import preamble_symbols
    from sagin_hil.phy.sync import BurstDetector

    pre = preamble_symbols()
    det = BurstDetector(np.asarray(pre, np.complex128), sps, threshold=0.5)
    y = _matched_filter(wave, sps, rolloff)
    out, pos = [], 0
    while (d := det.find(y, pos)) is not None:
        out.append(int(round(d.index + d.frac - reference_offset_samples(sps, rolloff))))
        pos = d.index + pre.size * sps
    return out


def sounding_burst(sps: int, rolloff: float = 0.25) -> np.ndarray:
    """The preamble alone, RRC-shaped with unit-energy pulses and scaled so that Es = sps (unit power per
    sample while it is on): the shortest burst the calibration can measure, for channel sounding."""
    from sagin_hil.calibration.channel_fit import SPAN_SYMBOLS
    from sagin_hil.phy.frame import preamble_symbols
    from sagin_hil.phy.pulse import rrc_taps

    up = np.zeros(preamble_symbols().size * sps, np.complex128)
    up[::sps] = preamble_symbols() * np.sqrt(sps)
    return np.convolve(up, rrc_taps(rolloff, sps, SPAN_SYMBOLS)).astype(np.complex64)


def synthesize(path: str | os.PathLike, params, carrier_hz: float = 2.4e9, symbol_rate_hz: float = 250e3,
               sps: int = 4, duration_s: float = 2.0, burst_period_s: float = 2e-3, waveform: str = "sounding",
               mcs: str = "qpsk-1/2", payload_bytes: int = 16, seed: int = 0,
               predicted_delay_s: float | None = None) -> Path:
    """A burst train (one burst every burst_period_s) through a ChannelEmulator with `params`
    (phy.channel.ChannelParams, snr_db per sample with signal_power 1) written as a burst recording; returns
    the .sigmf-meta path. waveform "sounding": the preamble alone (Es/N0 = snr_db + 10 log10 sps); "packets":
    the link's packets of `payload_bytes` at `mcs`. The truth stays with the caller."""
    from sagin_hil.datatypes import SampleBlock
    from sagin_hil.phy.channel.emulator import ChannelEmulator
    from sagin_hil.phy.link import LinkConfig, PacketTransmitter

    if waveform not in ("sounding", "packets"):
        raise ValueError(f"waveform = {waveform!r}; choose 'sounding' or 'packets'")
    fs = symbol_rate_hz * sps
    link = LinkConfig(symbol_rate_hz=symbol_rate_hz, sps=sps)
    tx = PacketTransmitter(link)
    rng = np.random.default_rng(seed)
    period = int(round(burst_period_s * fs))
    n_bursts = int(duration_s / burst_period_s)
    stream = np.zeros(n_bursts * period, np.complex64)
    bursts = []
    sounding = sounding_burst(sps, link.rolloff) if waveform == "sounding" else None
    for k in range(n_bursts):
        w = sounding if sounding is not None else tx.modulate(
            rng.integers(0, 256, payload_bytes, dtype=np.uint8).tobytes(), mcs, k % 65536)
        if w.size > period:
            raise ValueError(f"a burst is {w.size} samples, longer than the burst period of {period}; raise "
                             "burst_period_s (or lower payload_bytes)")
        stream[k * period: k * period + w.size] = w
        bursts.append((k * period, w.size, {"waveform": waveform} if sounding is not None else
                       {"waveform": waveform, "mcs": mcs, "seq": k % 65536, "payload_bytes": payload_bytes}))
    em = ChannelEmulator(fs, carrier_hz, params, seed=seed + 1)
    out = np.concatenate([em.process(SampleBlock(stream[i:i + (1 << 16)], fs, start_time_s=i / fs)).samples
                          for i in range(0, stream.size, 1 << 16)])
    extra = {"sagin:predicted_delay_s": predicted_delay_s} if predicted_delay_s is not None else {}
    with BurstRecordingWriter(path, fs, carrier_hz, sps, link.rolloff, "synthetic", f"synthesized {waveform} bursts",
                              extra) as w:
        w.append(out, 0.0, bursts)
    return w.meta_path
