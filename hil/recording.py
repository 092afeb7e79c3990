"""SigMF recording of anything a Radio receives, and replay of a recording as a Radio (kind "replay").

A recording is NAME.sigmf-data (cf32_le samples, appended as they arrive) plus NAME.sigmf-meta (JSON,
rewritten after every rx so a crash loses nothing already received). Each rx() becomes one capture
segment with its carrier, start time and the radio settings in the "sagin" extension namespace;
overflows and underflows become annotations. Recordings validate with the `sigmf` package and open in
any SigMF reader (inspectrum, GNU Radio's SigMF blocks, sigmf.fromfile).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sagin_hil.hil.radio import Radio, RadioConfig, RadioError, RxResult

__all__ = ["SigMFRecorder", "ReplayRadio", "recording_paths", "SIGMF_NAMESPACE"]

SIGMF_NAMESPACE = "sagin"
_SETTINGS = ("radio", "uri", "tx_carrier_hz", "bandwidth_hz", "tx_gain_db", "rx_gain_db", "scenario", "link")


def recording_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(meta, data) paths for a recording named by its base, its .sigmf-meta or its .sigmf-data."""
    p = Path(path)
    base = p.with_suffix("") if p.suffix in (".sigmf-meta", ".sigmf-data", ".sigmf") else p
    return base.with_name(base.name + ".sigmf-meta"), base.with_name(base.name + ".sigmf-data")


def _iso(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)


class SigMFRecorder:
    """Append RxResults to a SigMF recording.

    Parameters
    ----------
    path: recording base name or .sigmf-meta/.sigmf-data path; an existing recording is replaced.
    config: the RadioConfig (its settings go into the global section), optional.
    description: free text for core:description.
    """

    def __init__(self, path: str | os.PathLike, config: RadioConfig | None = None, description: str = ""):
        self.meta_path, self.data_path = recording_paths(path)
        self.meta_path.parent.mkdir(parents=True, exist_ok=True)
        self._data = open(self.data_path, "wb")
        self._n = 0
        self._captures: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []
        self._rate: float | None = None
        self._global: dict[str, Any] = {
            "core:datatype": "cf32_le",
            "core:version": "1.2.0",
            "core:recorder": "sagin-hil",
            "core:description": description or "sagin-hil radio capture",
            "core:extensions": [{"name": SIGMF_NAMESPACE, "version": "0.1.0", "optional": True}],
        }
        if config is not None:
            self._global["core:hw"] = f"{config.kind} {config.uri}".strip()
            self._global[f"{SIGMF_NAMESPACE}:radio"] = config.kind
            if config.scenario:
                self._global[f"{SIGMF_NAMESPACE}:scenario"] = str(config.scenario)
            if config.link:
                self._global[f"{SIGMF_NAMESPACE}:link"] = config.link

    @property
    def samples_written(self) -> int:
        return self._n

    def append(self, res: RxResult) -> None:
        """Write one rx() result: its samples, a capture segment, and overflow/underflow annotations."""
        if self._data.closed:
            raise RadioError(f"recording {self.meta_path} is closed")
        x = np.ascontiguousarray(res.samples, dtype=np.complex64)
        meta = res.metadata
        rate = float(meta.get("sample_rate_hz", self._rate or 0.0))
        if rate <= 0:
            raise RadioError("cannot record an rx result without metadata['sample_rate_hz']")
        if self._rate is None:
            self._rate = rate
            self._global["core:sample_rate"] = rate
        elif rate != self._rate:
            raise RadioError(
                f"sample rate changed from {self._rate:g} to {rate:g} S/s within one SigMF recording; "
                "start a new recording (record_path) for the new rate"
            )
        self._data.write(x.astype("<c8").tobytes())
        self._data.flush()
        cap = {"core:sample_start": self._n, "core:datetime": _iso(res.time_s)}
        if "carrier_hz" in meta:
            cap["core:frequency"] = float(meta["carrier_hz"])
        for key in _SETTINGS:
            if key in meta:
                cap[f"{SIGMF_NAMESPACE}:{key}"] = _jsonable(meta[key])
        cap[f"{SIGMF_NAMESPACE}:overflows"] = int(res.overflows)
        cap[f"{SIGMF_NAMESPACE}:underflows"] = int(res.underflows)
        if "error" in meta:
            cap[f"{SIGMF_NAMESPACE}:error"] = str(meta["error"])
        self._captures.append(cap)
        for what, count in (("overflow", res.overflows), ("underflow", res.underflows)):
            if count:
                self._annotations.append(
                    {"core:sample_start": self._n, "core:sample_count": max(len(x), 1),
                     "core:comment": f"{count} {what}(s) reported by the radio in this rx"}
                )
        self._n += len(x)
        self._write_meta()

    def _write_meta(self) -> None:
        meta = {"global": self._global, "captures": self._captures, "annotations": self._annotations}
        tmp = self.meta_path.with_name(self.meta_path.name + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, self.meta_path)

    def close(self) -> None:
        if not self._data.closed:
            self._data.close()
            self._write_meta()

    def __enter__(self) -> SigMFRecorder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ReplayRadio(Radio):
    """A SigMF recording played back as a receive-only Radio.

    Parameters
    ----------
    config: kind "replay", uri = the recording; loop=True wraps around at the end instead of raising.
    """

    kind = "replay"

    def __init__(self, config: RadioConfig):
        super().__init__(config)
        meta_path, data_path = recording_paths(config.uri)
        if not meta_path.exists() or not data_path.exists():
            raise RadioError(f"no SigMF recording at {config.uri!r} (need {meta_path.name} and {data_path.name})")
        from sigmf import sigmffile

        try:
            handle = sigmffile.fromfile(str(meta_path), skip_checksum=True)
            self.samples = np.asarray(handle.read_samples(), dtype=np.complex64).ravel()
        except Exception as exc:
            raise RadioError(f"cannot read SigMF recording {meta_path}: {exc}") from None
        self.global_info = handle.get_global_info()
        self.captures = handle.get_captures()
        self.rate_hz = float(self.global_info.get("core:sample_rate", config.sample_rate_hz))
        if len(self.samples) == 0:
            raise RadioError(f"SigMF recording {meta_path} holds no samples")
        if "sample_rate_hz" in config.model_fields_set and config.sample_rate_hz != self.rate_hz:
            raise RadioError(f"recording {meta_path} was made at {self.rate_hz:g} S/s; a replay keeps its rate, so "
                             f"sample_rate_hz = {config.sample_rate_hz:g} cannot be honoured (leave it unset, or "
                             "resample the recording)")
        self._pos = 0
        self._t0 = self._capture_time(0)
        # the recording's own rate and carrier: the samples were taken at them
        carrier = next((c["core:frequency"] for c in self.captures if "core:frequency" in c), config.carrier_hz)
        self.config = config.model_copy(update={"sample_rate_hz": self.rate_hz, "carrier_hz": carrier})

    def _capture_at(self, index: int) -> dict[str, Any]:
        cap: dict[str, Any] = {}
        for c in self.captures:
            if c.get("core:sample_start", 0) <= index:
                cap = c
        return cap

    def _capture_time(self, index: int) -> float:
        stamp = self._capture_at(index).get("core:datetime")
        if not stamp:
            return 0.0
        return dt.datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()

    def _apply(self, cfg: RadioConfig) -> None:
        if cfg.sample_rate_hz != self.rate_hz:
            raise RadioError(
                f"a recording replays at its own rate ({self.rate_hz:g} S/s), not {cfg.sample_rate_hz:g}; "
                "resample the samples instead"
            )

    def tx(self, samples: np.ndarray, cyclic: bool = False) -> None:
        raise RadioError("a replay radio only receives; use a pluto, soapy or zmq radio to transmit")

    def _rx(self, n: int) -> RxResult:
        total = len(self.samples)
        if self._pos >= total and not self.config.loop:
            raise RadioError(f"recording {self.config.uri!r} ended after {total} samples (set loop=True to wrap)")
        start = self._pos
        if self.config.loop:
            idx = (start + np.arange(n)) % total
            x = self.samples[idx]
        else:
            x = self.samples[start : start + n]
        cap = self._capture_at(start % total)
        t = self._capture_time(start % total)
        cap_start = cap.get("core:sample_start", 0)
        meta = self._metadata(
            carrier_hz=cap.get("core:frequency", self.config.carrier_hz),
            sample_rate_hz=self.rate_hz,
            sample_index=start,
            **{k.split(":", 1)[1]: v for k, v in cap.items() if k.startswith(f"{SIGMF_NAMESPACE}:")},
        )
        meta["radio"] = "replay"
        res = RxResult(x.copy(), t + (start % total - cap_start) / self.rate_hz,
                       int(cap.get(f"{SIGMF_NAMESPACE}:overflows", 0)) if start == cap_start else 0, 0, meta)
        self._pos = start + n
        if len(x) < n:
            raise RadioError(
                f"recording {self.config.uri!r} ended: {len(x)} of {n} samples left (kept in .partial)", partial=res
            )
        return res
