"""Shared data types: the few values every layer passes to the others.

Task (an image to deliver), LinkReport (what a receiver measured), SampleBlock (complex64 samples with their
rate, carrier and start time), and the controller seam: ControllerState (what a controller sees) -> Plan
(what it decides: per task an Allocation with its Route, mode, codec budget and per-hop HopAllocations; per
UAV a waypoint). They are plain dataclasses that check their own values; `to_dict`/`from_dict` give the
JSON/msgpack-safe form used on the wire and in reports (never pickle).

Link ids are spelled one way everywhere: "<tx>-><rx>" with the scenario's node names, e.g. "leo0->uav0".
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Task", "QualityProfile", "LinkReport", "Route", "HopAllocation", "Allocation", "Plan", "ControllerState", "SampleBlock",
           "link_id", "parse_link_id", "to_dict", "from_dict"]


def link_id(tx: str, rx: str) -> str:
    """The one spelling of a link: "tx->rx"."""
    return f"{tx}->{rx}"


def parse_link_id(link: str) -> tuple[str, str]:
    """(tx, rx) of "tx->rx"; a ValueError names the expected form."""
    parts = link.split("->") if isinstance(link, str) else []
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"link id {link!r} must read 'tx->rx' with node names, e.g. 'leo0->uav0'")
    return parts[0], parts[1]


def _check_range(owner: str, name: str, value: float, lo: float, hi: float, fix: str = "") -> None:
    if not (lo <= value <= hi) or (isinstance(value, float) and math.isnan(value)):
        hint = f" ({fix})" if fix else ""
        raise ValueError(f"{owner}.{name} = {value!r} is outside [{lo}, {hi}]{hint}")


@dataclass(frozen=True)
class QualityProfile:
    """One image's own quality per mode, measured where the image is (the transmitter) before it is sent.

    Images differ: at 1 bit per pixel JPEG 2000 gives one image 30 dB and another 40 dB, so a controller that
    plans with the mean curve of other images misjudges every task. bpp, psnr_db: this image's JPEG 2000
    rate-quality curve (bits per pixel increasing, PSNR made non-decreasing); mode_psnr_db: mode name -> the
    PSNR a fixed-size digital mode (VQ, Modes 3_x) delivers for it when every bit arrives; analog_psnr_db:
    analog mode name (deep JSCC) -> its PSNR for this image at each SNR of snr_db (dB, increasing).
    """

    bpp: tuple[float, ...]
    psnr_db: tuple[float, ...]
    mode_psnr_db: dict[str, float] = field(default_factory=dict)
    snr_db: tuple[float, ...] = ()
    analog_psnr_db: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bpp = tuple(float(b) for b in self.bpp)
        psnr = tuple(float(q) for q in self.psnr_db)
        if len(bpp) < 2 or len(bpp) != len(psnr) or any(b <= 0 for b in bpp) or any(
                b1 <= b0 for b0, b1 in zip(bpp, bpp[1:])):
            raise ValueError(f"QualityProfile needs >= 2 increasing bpp > 0 with one PSNR each; got bpp {bpp}, "
                             f"psnr_db {psnr}")
        if not all(math.isfinite(q) for q in psnr) or any(math.isnan(q) or q == -math.inf
                                                           for q in self.mode_psnr_db.values()):
            raise ValueError(f"QualityProfile PSNRs must be finite (a lossless mode's may be inf); got {psnr}, "
                             f"{self.mode_psnr_db}")
        snr = tuple(float(v) for v in self.snr_db)
        analog = {str(k): tuple(float(q) for q in v) for k, v in self.analog_psnr_db.items()}
        if analog and (len(snr) < 2 or any(b <= a for a, b in zip(snr, snr[1:]))
                       or any(len(v) != len(snr) or not all(map(math.isfinite, v)) for v in analog.values())):
            raise ValueError(f"QualityProfile.analog_psnr_db needs >= 2 increasing snr_db and one finite PSNR per "
                             f"SNR for each mode; got snr_db {snr}, {analog}")
        object.__setattr__(self, "bpp", bpp)
        object.__setattr__(self, "psnr_db", tuple(np.maximum.accumulate(psnr).tolist()))
        object.__setattr__(self, "mode_psnr_db", {str(k): float(v) for k, v in self.mode_psnr_db.items()})
        object.__setattr__(self, "snr_db", snr)
        object.__setattr__(self, "analog_psnr_db", analog)

    def analog_psnr_at(self, mode: str, snr_db: float) -> float | None:
        """This image's PSNR through analog `mode` at `snr_db` (clamped to the measured SNRs); None if the
        profile has no curve for it."""
        curve = self.analog_psnr_db.get(mode)
        return None if curve is None else float(np.interp(snr_db, self.snr_db, curve))

    def to_dict(self) -> dict[str, Any]:
        out = {"bpp": list(self.bpp), "psnr_db": list(self.psnr_db), "mode_psnr_db": dict(self.mode_psnr_db)}
        if self.analog_psnr_db:
            out.update(snr_db=list(self.snr_db), analog_psnr_db={k: list(v) for k, v in self.analog_psnr_db.items()})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityProfile:
        if not isinstance(data, dict) or not {"bpp", "psnr_db"} <= set(data):
            raise ValueError(f"QualityProfile must be a map with 'bpp' and 'psnr_db'; got {data!r:.80}")
        return cls(tuple(data["bpp"]), tuple(data["psnr_db"]), dict(data.get("mode_psnr_db", {})),
                   tuple(data.get("snr_db", ())), dict(data.get("analog_psnr_db", {})))


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
    shape: the image's shape, kept when the image itself is not (the wire form).
    quality: the image's own QualityProfile when the transmitter measured one (None: plan with mean tables).
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
    shape: tuple[int, ...] = ()
    quality: QualityProfile | None = None

    def __post_init__(self) -> None:
        if isinstance(self.quality, dict):
            self.quality = QualityProfile.from_dict(self.quality)
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
            self.shape = tuple(int(n) for n in img.shape)
        self.shape = tuple(int(n) for n in self.shape)

    @property
    def n_pixels(self) -> int:
        """H x W of the image (0 when its shape is unknown)."""
        return int(self.shape[0] * self.shape[1]) if len(self.shape) >= 2 else 0


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
        for name in ("time_s", "snr_db", "evm_rms", "cfo_hz", "ber", "bler", "delay_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ValueError(f"LinkReport.{name} = {v!r} must be a number")
        for name in ("snr_db", "time_s"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"LinkReport.{name} = {getattr(self, name)!r} must be a finite number")
        _check_range("LinkReport", "snr_db", self.snr_db, -50.0, 100.0, "an SNR in dB")
        for name in ("ber", "bler"):
            value = getattr(self, name)
            if not math.isnan(value):
                _check_range("LinkReport", name, value, 0.0, 1.0, "a rate in [0, 1], or NaN if unknown")


@dataclass(frozen=True)
class Route:
    """The nodes a task crosses, source LEO first: LEO [-> LEO over ISLs ...] -> UAV -> user.

    leo: the satellite that transmits to the UAV (the LEO-UAV pairing); uav, user: the UAV-user pairing;
    isl_hops: the inter-satellite hand-offs before it (empty when the source LEO serves the UAV itself).
    """

    nodes: tuple[str, ...]

    def __post_init__(self) -> None:
        nodes = tuple(self.nodes)
        if len(nodes) < 3 or not all(isinstance(n, str) and n for n in nodes) or len(set(nodes)) != len(nodes):
            raise ValueError(f"Route.nodes = {list(nodes)!r} must be distinct node names, LEO [-> LEO ...] -> UAV "
                             "-> user, e.g. ['leo0', 'uav0', 'user0']")
        object.__setattr__(self, "nodes", nodes)

    @property
    def source(self) -> str:
        return self.nodes[0]

    @property
    def leo(self) -> str:
        return self.nodes[-3]

    @property
    def uav(self) -> str:
        return self.nodes[-2]

    @property
    def user(self) -> str:
        return self.nodes[-1]

    @property
    def isl_hops(self) -> list[str]:
        return [link_id(a, b) for a, b in zip(self.nodes[:-3], self.nodes[1:-2])]

    @property
    def links(self) -> list[str]:
        """Link ids hop by hop."""
        return [link_id(a, b) for a, b in zip(self.nodes, self.nodes[1:])]

    def __str__(self) -> str:
        return "->".join(self.nodes)


@dataclass
class HopAllocation:
    """What one hop of a task gets.

    mcs: modulation and code from phy.mcs (e.g. "qpsk-1/2"), or "analog" for a JSCC mode's symbols;
    power_w: transmit power (None: the node's configured power); bandwidth_hz: occupied bandwidth (None: the
    link's configured bandwidth; the hop's symbol rate is bandwidth / (1 + roll-off)).
    """

    mcs: str = "qpsk-1/2"
    power_w: float | None = None
    bandwidth_hz: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mcs, str) or not self.mcs:
            raise ValueError(f"HopAllocation.mcs = {self.mcs!r} must name an MCS, e.g. 'qpsk-1/2', or 'analog'")
        if self.power_w is not None:
            _check_range("HopAllocation", "power_w", self.power_w, 0.0, 1e6, "transmit power in watts")
        if self.bandwidth_hz is not None:
            _check_range("HopAllocation", "bandwidth_hz", self.bandwidth_hz, 1.0, 1e11, "bandwidth in Hz")


@dataclass
class Allocation:
    """A controller's decision for one task.

    task_id: the task; route: the nodes it crosses (pairings and ISL hops); mode: a registered mode name
    (codecs.modes.MODES); bits_per_pixel: the digital payload budget of a rate-adaptive mode (JPEG 2000);
    bandwidth_ratio: channel uses per source value of an analog (JSCC) mode; hops: link id -> HopAllocation
    for every link of the route; predicted: the controller's own predictions (psnr_db, delay_s, scc, ...);
    fallback: True when this is the safe default used because no controller answered.
    """

    task_id: int
    route: Route
    mode: str = "mode1"
    bits_per_pixel: float = 0.0
    bandwidth_ratio: float = 0.0
    hops: dict[str, HopAllocation] = field(default_factory=dict)
    predicted: dict[str, float] = field(default_factory=dict)
    fallback: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.route, Route):
            self.route = Route(tuple(self.route))
        _check_range("Allocation", "bits_per_pixel", self.bits_per_pixel, 0.0, 64.0, "bits per pixel")
        _check_range("Allocation", "bandwidth_ratio", self.bandwidth_ratio, 0.0, 16.0, "channel uses per value")
        self.hops = {k: v if isinstance(v, HopAllocation) else HopAllocation(**v) for k, v in self.hops.items()}
        extra = sorted(set(self.hops) - set(self.route.links))
        if extra:
            raise ValueError(f"Allocation of task {self.task_id}: hop(s) {extra} are not on its route {self.route}")

    def hop(self, link: str) -> HopAllocation:
        """The hop's allocation; a route link the controller left out gets the defaults."""
        return self.hops.get(link) or HopAllocation()

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "route": list(self.route.nodes), "mode": self.mode,
                "bits_per_pixel": self.bits_per_pixel, "bandwidth_ratio": self.bandwidth_ratio,
                "hops": {k: dataclasses.asdict(v) for k, v in self.hops.items()},
                "predicted": dict(self.predicted), "fallback": self.fallback}


@dataclass
class Plan:
    """A controller's answer to one ControllerState.

    allocations: task id -> Allocation; waypoints_m: UAV name -> the (x, y, z) position (m, local
    east/north/up) it flies toward; trail: task id -> the decision's reasoning (candidate modes and MCS with
    their predicted quality and delay, the choice and why), JSON-safe, shown in the report.
    """

    allocations: dict[int, Allocation] = field(default_factory=dict)
    waypoints_m: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    trail: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.allocations = {int(k): v for k, v in self.allocations.items()}
        self.trail = {int(k): v for k, v in self.trail.items()}
        self.waypoints_m = {k: tuple(float(c) for c in v) for k, v in self.waypoints_m.items()}
        for name, pos in self.waypoints_m.items():
            if len(pos) != 3 or not all(math.isfinite(c) for c in pos):
                raise ValueError(f"Plan.waypoints_m[{name!r}] = {pos} must be a finite (x, y, z) in metres")

    def to_dict(self) -> dict[str, Any]:
        return {"allocations": {str(k): a.to_dict() for k, a in self.allocations.items()},
                "waypoints_m": {k: list(v) for k, v in self.waypoints_m.items()},
                "trail": {str(k): v for k, v in self.trail.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        allocs = {}
        for k, a in dict(data.get("allocations", {})).items():
            a = dict(a)
            a["route"] = Route(tuple(a.get("route", ())))
            allocs[int(k)] = Allocation(**a)
        return cls(allocs, dict(data.get("waypoints_m", {})), dict(data.get("trail", {})))


@dataclass
class ControllerState:
    """What a controller sees when it plans.

    time_s: scenario time; tasks: the queue, each with its deadline and quality floor; routes: task id ->
    candidate Routes (the runner's default first); modes: the registered mode names the flowgraph allows;
    positions_m: UAV and user positions (m, local east/north/up); visible: (LEO, UAV) pairs in view;
    isl: (LEO, LEO) pairs with a usable inter-satellite link; reports: link id -> the latest LinkReport
    (the control plane fills these from what receivers published); predicted_snr_db: link id -> the
    ephemeris' Es/N0 prediction at the link's nominal power and bandwidth; propagation_delay_s: link id ->
    seconds; bandwidth_hz: link id -> the nominal bandwidth; elevation_deg: LEO->UAV link id -> the
    satellite's elevation seen from the UAV; power_w: node -> its nominal transmit power;
    rolloff: the PHY's roll-off (symbol rate = bandwidth / (1 + rolloff)); user_kind: user -> "semantic" or
    "conventional" (semantic-relay systems); uav_limits: UAV -> (altitude min m, altitude max m, v_max m/s);
    channel_map: UAV->user link id -> "los" or "nlos", the channel map of [P004] (classified from what the
    receivers measured, or the geometry's truth; empty when the run keeps no map); the predicted SNRs of
    those links assume these classes; context: facts of a particular system (JSON-safe).
    """

    time_s: float = 0.0
    tasks: list[Task] = field(default_factory=list)
    routes: dict[int, list[Route]] = field(default_factory=dict)
    modes: list[str] = field(default_factory=lambda: ["mode1"])
    positions_m: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    visible: list[tuple[str, str]] = field(default_factory=list)
    isl: list[tuple[str, str]] = field(default_factory=list)
    reports: dict[str, LinkReport] = field(default_factory=dict)
    predicted_snr_db: dict[str, float] = field(default_factory=dict)
    propagation_delay_s: dict[str, float] = field(default_factory=dict)
    bandwidth_hz: dict[str, float] = field(default_factory=dict)
    elevation_deg: dict[str, float] = field(default_factory=dict)
    power_w: dict[str, float] = field(default_factory=dict)
    rolloff: float = 0.25
    user_kind: dict[str, str] = field(default_factory=dict)
    uav_limits: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    channel_map: dict[str, str] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not math.isfinite(self.time_s):
            raise ValueError(f"ControllerState.time_s = {self.time_s!r} must be finite")
        for link, cls in self.channel_map.items():
            parse_link_id(link)
            if cls not in ("los", "nlos"):
                raise ValueError(f"ControllerState.channel_map[{link!r}] = {cls!r}; use \"los\" or \"nlos\"")
        self.routes = {int(k): [r if isinstance(r, Route) else Route(tuple(r)) for r in v]
                       for k, v in self.routes.items()}
        ids = {t.task_id for t in self.tasks}
        missing = sorted(ids - set(self.routes))
        if missing:
            raise ValueError(f"ControllerState: task(s) {missing} have no candidate route; give routes[task_id]")
        for name in ("predicted_snr_db", "propagation_delay_s", "bandwidth_hz", "elevation_deg"):
            for link, v in getattr(self, name).items():
                parse_link_id(link)
                if not math.isfinite(float(v)):
                    raise ValueError(f"ControllerState.{name}[{link!r}] = {v!r} must be finite")
        self.visible = [tuple(p) for p in self.visible]
        self.isl = [tuple(p) for p in self.isl]
        self.positions_m = {k: tuple(float(c) for c in v) for k, v in self.positions_m.items()}
        self.uav_limits = {k: tuple(float(c) for c in v) for k, v in self.uav_limits.items()}

    def symbol_rate_hz(self, link: str, bandwidth_hz: float | None = None) -> float:
        """The link's symbol rate at `bandwidth_hz` (default: its nominal bandwidth)."""
        bw = bandwidth_hz if bandwidth_hz is not None else self.bandwidth_hz.get(link)
        if bw is None:
            raise ValueError(f"ControllerState has no bandwidth for link {link!r}")
        return bw / (1 + self.rolloff)

    def snr_db(self, link: str) -> float | None:
        """The link's latest measured SNR, else its predicted one, else None."""
        if link in self.reports:
            return self.reports[link].snr_db
        return self.predicted_snr_db.get(link)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time_s": self.time_s, "tasks": [to_dict(t) for t in self.tasks],
            "routes": {str(k): [list(r.nodes) for r in v] for k, v in self.routes.items()},
            "modes": list(self.modes), "positions_m": {k: list(v) for k, v in self.positions_m.items()},
            "visible": [list(p) for p in self.visible], "isl": [list(p) for p in self.isl],
            "reports": {k: to_dict(r) for k, r in self.reports.items()},
            "predicted_snr_db": dict(self.predicted_snr_db), "propagation_delay_s": dict(self.propagation_delay_s),
            "bandwidth_hz": dict(self.bandwidth_hz), "elevation_deg": dict(self.elevation_deg),
            "power_w": dict(self.power_w), "rolloff": self.rolloff,
            "user_kind": dict(self.user_kind), "uav_limits": {k: list(v) for k, v in self.uav_limits.items()},
            "channel_map": dict(self.channel_map), "context": self.context,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControllerState:
        if not isinstance(data, dict):
            raise ValueError(f"ControllerState must be a map, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(data) - names
        if extra:
            raise ValueError(f"ControllerState has no field(s) {sorted(extra)}; allowed: {sorted(names)}")
        d = dict(data)
        d["tasks"] = [from_dict({**t, "type": "Task"}) if isinstance(t, dict) else t for t in d.get("tasks", [])]
        d["reports"] = {k: from_dict({**r, "type": "LinkReport"}) for k, r in dict(d.get("reports", {})).items()}
        try:
            return cls(**d)
        except TypeError as exc:
            raise ValueError(f"ControllerState: {exc}") from None


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


_TYPES = {cls.__name__: cls for cls in (Task, LinkReport)}


def to_dict(obj: Task | LinkReport) -> dict[str, Any]:
    """The wire/report form: plain JSON types, tagged with the type name. Task.image is left out."""
    out = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "image"}
    if isinstance(obj, Task):
        out["shape"] = list(obj.shape)
        out["quality"] = None if obj.quality is None else obj.quality.to_dict()
    out["type"] = type(obj).__name__
    return out


def from_dict(data: dict[str, Any]) -> Task | LinkReport:
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
        kwargs["shape"] = tuple(kwargs.get("shape", ()))
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required fields
        raise ValueError(f"{kind}: {exc}") from None
