"""Shared data types: the few values every layer passes to the others.

Task (an image to deliver), LinkReport (what a receiver measured), Allocation (what a controller decided)
and SampleBlock (complex64 samples with their rate, carrier and start time). They are plain dataclasses
that check their own values; `to_dict`/`from_dict` give the JSON/msgpack-safe form used on the wire and
in reports (never pickle).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Task", "LinkReport", "Allocation", "SampleBlock", "to_dict", "from_dict"]


def _check_range(owner: str, name: str, value: float, lo: float, hi: float, fix: str = "") -> None:
    if not (lo <= value <= hi) or (isinstance(value, float) and math.isnan(value)):
        hint = f" ({fix})" if fix else ""
        raise ValueError(f"{owner}.{name} = {value!r} is outside [{lo}, {hi}]{hint}")


@dataclass
class Task:
    """An image to deliver from a source node to a destination node.

    Parameters
    ----------
    task_id: unique id within a run.
    image: uint8 array, H x W (grey) or H x W x 3 (RGB). Not serialised by `to_dict`.
    source, destination: node names, e.g. "leo0", "user3".
    arrival_s: when the task appears (scenario time, seconds).
    deadline_s: D_max, the end-to-end delay limit in seconds (Eq. 14-15).
    quality_min_db: Q_min, the PSNR floor in dB.
    weight_quality, weight_delay: SCC weights xi_q and xi_d, summing to 1.
    name: a human label (the image's name).
    """

    task_id: int
    image: np.ndarray | None
    source: str
    destination: str
    deadline_s: float
    quality_min_db: float
    arrival_s: float = 0.0
    weight_quality: float = 0.5
    weight_delay: float = 0.5
    name: str = ""

    def __post_init__(self) -> None:
        _check_range("Task", "deadline_s", self.deadline_s, 1e-6, 1e6, "a positive delay limit in seconds")
        _check_range("Task", "quality_min_db", self.quality_min_db, 0.0, 100.0, "a PSNR floor in dB")
        _check_range("Task", "weight_quality", self.weight_quality, 0.0, 1.0)
        _check_range("Task", "weight_delay", self.weight_delay, 0.0, 1.0)
        if abs(self.weight_quality + self.weight_delay - 1.0) > 1e-9:
            raise ValueError(
                f"Task weights must sum to 1 (xi_q + xi_d = 1); got {self.weight_quality} + {self.weight_delay}"
            )
        if self.image is not None:
            img = np.asarray(self.image)
            if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
                raise ValueError(
                    f"Task.image must be uint8 HxW or HxWx3; got dtype {img.dtype}, shape {img.shape}"
                )


@dataclass
class LinkReport:
    """What a receiver measured on one link over one burst or reporting interval.

    snr_db: estimated SNR (Es/N0) in dB; evm_rms: RMS error vector magnitude as a fraction of the
    reference constellation RMS (0.1 = 10 %); cfo_hz: estimated carrier offset; ber: pre-FEC bit error
    rate (hard decisions against the decoded codeword) or NaN if unknown; bler: code-block error rate;
    delay_s: measured one-way delay (propagation + queueing + air time) in seconds.
    """

    link_id: str
    time_s: float
    snr_db: float
    evm_rms: float = float("nan")
    cfo_hz: float = 0.0
    ber: float = float("nan")
    bler: float = float("nan")
    delay_s: float = float("nan")
    n_blocks: int = 0

    def __post_init__(self) -> None:
        if not self.link_id:
            raise ValueError("LinkReport.link_id is empty; name the link, e.g. 'leo0->uav0'")
        for name in ("snr_db", "time_s"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"LinkReport.{name} = {getattr(self, name)!r} must be a finite number")
        _check_range("LinkReport", "snr_db", self.snr_db, -50.0, 100.0, "an SNR in dB")
        for name in ("ber", "bler"):
            value = getattr(self, name)
            if not math.isnan(value):
                _check_range("LinkReport", name, value, 0.0, 1.0, "a rate in [0, 1], or NaN if unknown")


@dataclass
class Allocation:
    """A controller's decision for one task or one link.

    mode: transmission mode, "mode1" (JPEG 2000 + LDPC), "mode2", "mode3_1".."mode3_3" ([P000] Sec. III-A, docs/references.md).
    mcs: modulation and code name from phy.mcs, e.g. "qpsk-1/2"; modulation and code_rate spell it out.
    power_w, bandwidth_hz: transmit power and bandwidth granted.
    compression: codec budget; for Mode 1 the JPEG 2000 target in bits per pixel, for JSCC the
      bandwidth ratio (channel symbols per source value).
    uav_positions_m: node name -> (x, y, z) metres, for controllers that move UAVs.
    pairings: node -> node it is served by (user -> UAV, UAV -> LEO).
    fallback: True when the allocation is the safe default used because no controller answered.
    """

    mode: str = "mode1"
    mcs: str = "qpsk-1/2"
    modulation: str = "qpsk"
    code_rate: float = 0.5
    power_w: float = 1.0
    bandwidth_hz: float = 10e6
    compression: float = 0.5
    uav_positions_m: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    pairings: dict[str, str] = field(default_factory=dict)
    fallback: bool = False

    def __post_init__(self) -> None:
        _check_range("Allocation", "code_rate", self.code_rate, 1e-3, 1.0, "a code rate in (0, 1]")
        _check_range("Allocation", "power_w", self.power_w, 0.0, 1e6, "transmit power in watts")
        _check_range("Allocation", "bandwidth_hz", self.bandwidth_hz, 1.0, 1e11, "bandwidth in Hz")
        _check_range("Allocation", "compression", self.compression, 0.0, 1e3)
        self.uav_positions_m = {k: tuple(float(c) for c in v) for k, v in self.uav_positions_m.items()}
        for name, pos in self.uav_positions_m.items():
            if len(pos) != 3:
                raise ValueError(f"Allocation.uav_positions_m[{name!r}] = {pos} must be (x, y, z) in metres")


@dataclass(frozen=True)
class SampleBlock:
    """A block of complex baseband samples with the facts needed to interpret it.

    samples: 1-D complex64 array; sample_rate_hz: samples per second; carrier_hz: RF centre frequency;
    start_time_s: time of the first sample (scenario time, seconds).
    """

    samples: np.ndarray
    sample_rate_hz: float
    carrier_hz: float = 0.0
    start_time_s: float = 0.0

    def __post_init__(self) -> None:
        s = self.samples
        if not isinstance(s, np.ndarray) or s.dtype != np.complex64 or s.ndim != 1:
            got = f"{type(s).__name__} {getattr(s, 'dtype', '')} shape {getattr(s, 'shape', '')}"
            raise ValueError(f"SampleBlock.samples must be a 1-D complex64 numpy array; got {got}")
        _check_range("SampleBlock", "sample_rate_hz", self.sample_rate_hz, 1e-3, 1e12, "samples per second")

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz

    @property
    def end_time_s(self) -> float:
        return self.start_time_s + self.duration_s

    def with_samples(self, samples: np.ndarray, start_time_s: float | None = None) -> SampleBlock:
        """A block with the same rate and carrier holding other samples."""
        return dataclasses.replace(
            self,
            samples=np.ascontiguousarray(samples, dtype=np.complex64),
            start_time_s=self.start_time_s if start_time_s is None else start_time_s,
        )


_TYPES = {cls.__name__: cls for cls in (Task, LinkReport, Allocation)}


def to_dict(obj: Task | LinkReport | Allocation) -> dict[str, Any]:
    """The wire/report form: plain JSON types, tagged with the type name. Task.image is left out."""
    out = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "image"}
    if isinstance(obj, Allocation):
        out["uav_positions_m"] = {k: list(v) for k, v in obj.uav_positions_m.items()}
    out["type"] = type(obj).__name__
    return out


def from_dict(data: dict[str, Any]) -> Task | LinkReport | Allocation:
    """Inverse of `to_dict`. Unknown types or fields raise ValueError naming them."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a mapping, got {type(data).__name__}")
    kind = data.get("type")
    cls = _TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown type {kind!r}; expected one of {sorted(_TYPES)}")
    names = {f.name for f in dataclasses.fields(cls)}
    extra = set(data) - names - {"type"}
    if extra:
        raise ValueError(f"{kind} has no field(s) {sorted(extra)}; allowed: {sorted(names)}")
    kwargs = {k: v for k, v in data.items() if k != "type"}
    if cls is Task:
        kwargs.setdefault("image", None)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required fields
        raise ValueError(f"{kind}: {exc}") from None
