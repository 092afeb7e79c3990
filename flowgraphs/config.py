"""Flowgraph files: TOML validated by pydantic, with errors that name the file, key, value and what is allowed.

A flowgraph says what to carry (images and their tasks), over which world (a scenario), through which
radio (the software emulator or a real/emulated front end), decided by which controller, and where the
report goes. `load_flowgraph(None)` gives the embedded default (flowgraphs/default.toml).
"""

from __future__ import annotations

import difflib
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = ["Flowgraph", "FlowgraphError", "load_flowgraph", "shipped_flowgraphs", "DEFAULT_FLOWGRAPH"]

DEFAULT_FLOWGRAPH = "default.toml"


class FlowgraphError(ValueError):
    """A flowgraph file that cannot be used; the message names the file, key, bad value and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImagesConfig(_Section):
    count: int = Field(8, ge=1, le=1000, description="images carried, one task each")
    size_px: int | None = Field(256, ge=32, le=2048,
                                description="side of the square centre crop, pixels; 0 or none keeps each image's own size")
    interval_s: float = Field(10.0, gt=0, description="time between task arrivals along the pass, seconds")
    paths: list[str] = Field(default_factory=list, description="your own image files (PNG, JPEG, TIFF, JPEG 2000, ...)")
    dir: str | None = Field(None, description="a folder of your own images (every readable image file in it)")

    @field_validator("size_px", mode="before")
    @classmethod
    def _own_size(cls, v: Any) -> Any:
        return None if v == 0 else v


class TasksConfig(_Section):
    deadline_s: tuple[float, float] = Field((2.0, 11.0), description="D_max drawn uniformly in [lo, hi] s")
    quality_min_db: tuple[float, float] = Field((24.0, 32.0), description="PSNR floor Q_min in [lo, hi] dB")
    weight_quality: float = Field(0.5, ge=0, le=1, description="SCC weight xi_q (xi_d = 1 - xi_q)")
    arrival: Literal["pass", "frames", "ftp3"] = Field(
        "pass", description="pass: one task per image, spread over the first satellite's pass; frames: every "
        "user gets a task each frame, all planned together; ftp3: 3GPP FTP Model 3 (Poisson) arrivals at each "
        "LEO, each task planned when it arrives")
    count: int = Field(8, ge=1, le=10000, description="tasks G with arrival = ftp3 (images are reused in turn)")
    rate_hz: float = Field(0.1, gt=0, le=100, description="FTP Model 3 arrival rate lambda per LEO, tasks/s")
    frames: int = Field(1, ge=1, le=100, description="frames (arrival = frames), one every images.interval_s")
    semantic_users: list[str] = Field(default_factory=list,
                                      description="users with semantic decoders (SemUsers); the others are ConUsers")
    quality_profile: bool = Field(
        True, description="the transmitter measures each image's own quality per mode (JPEG 2000 at every rate of "
        "the grid, each VQ mode once) and controllers plan with it; false: plan with the mode table's mean image")

    @field_validator("deadline_s", "quality_min_db")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"must be [lo, hi] with 0 < lo <= hi, got {list(v)}")
        return v


class PhyConfig(_Section):
    symbol_rate_hz: float = Field(8e6, gt=0, description="symbol rate; 8 Msym/s with roll-off 0.25 fills 10 MHz")
    sps: int = Field(4, ge=2, le=16, description="samples per symbol")
    rolloff: float = Field(0.25, gt=0, le=1, description="root-raised-cosine roll-off")
    ldpc_iterations: int = Field(10, ge=1, le=100, description="maximum LDPC decoder iterations (early stop on the syndrome)")
    packet_bytes: int = Field(2048, ge=64, le=65536, description="payload bytes per packet (the ARQ unit)")
    max_retransmissions: int = Field(2, ge=0, le=16, description="ARQ rounds for packets that failed their CRC")
    ephemeris_time_error_s: float = Field(
        0.5, ge=0, description="clock error of the receiver's Doppler prediction; leaves a residual Doppler"
    )
    cfo_ppm: float = Field(0.5, ge=0, le=50, description="oscillator offset between the two ends of a hop")


def run_radio_kinds() -> list[str]:
    """Radio kinds a run can use: the software emulator and every registered radio (hil.radio.RADIOS); "replay"
    feeds each hop's receiver the recording a run made with --record (uri = that folder)."""
    from sagin_hil.hil.radio import RADIOS

    return ["emulated", *RADIOS]


class RadioSection(_Section):
    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str = Field("emulated", description="emulated = software channel emulator; others go through hil radios")

    @field_validator("kind")
    @classmethod
    def _registered_radio(cls, v: str) -> str:
        kinds = run_radio_kinds()
        if v not in kinds:
            raise ValueError(f"unknown radio kind {v!r}; choose one of: {', '.join(map(repr, kinds))}")
        return v


class ControllerConfig(_Section):
    algo: str = Field("link-adaptation", description="controller registry name (sagin-hil controller list)")
    options: dict[str, Any] = Field(default_factory=dict, description="the controller's own options")
    compare: list[str] = Field(default_factory=list,
                               description="more controllers run on the same tasks and world, reported side by side")
    transport: Literal["inproc", "tcp"] = Field("inproc", description="control plane socket transport")
    timeout_s: float = Field(10.0, gt=0, description="allocation request timeout before the safe fallback")
    modes: list[str] = Field(
        ["mode1"], min_length=1,
        description="transmission modes the controller may choose (codecs.modes.MODES): mode1 (JPEG 2000 + LDPC), "
        "mode2 (BLIP caption, Stable Diffusion; needs codecs.weights_dir), mode3_1..mode3_3 (VQ indices + LDPC, "
        "diffusion decoder), jscc-1/12, jscc-1/6 (deep JSCC, analog symbols), spiff (person box + sampled patches, "
        "inpainted; see codecs.spiff)",
    )

    channel_map: str = Field(
        "off", description="the channel map of [P004] in the controller's state: off; truth (the buildings "
        "themselves); or a classifier (diffusion, knn, gradient_boosting, neural_net) of features measured on "
        "a sounding of each UAV -> user link. Predicted SNRs assume its LoS/NLoS classes")

    @field_validator("channel_map")
    @classmethod
    def _known_map(cls, v: str) -> str:
        from sagin_hil.calibration.channel_map import MAP_CLASSIFIERS

        if v not in ("off", "truth", *MAP_CLASSIFIERS):
            raise ValueError(f"channel_map = {v!r}; choose off, truth, or a classifier: {', '.join(MAP_CLASSIFIERS)}")
        return v

    @field_validator("modes")
    @classmethod
    def _registered_modes(cls, v: list[str]) -> list[str]:
        from sagin_hil.codecs.modes import MODES

        for m in v:
            if m not in MODES:
                raise ValueError(str(MODES.unknown(m)))
        return v

    @field_validator("algo", "compare")
    @classmethod
    def _registered_controllers(cls, v: str | list[str]) -> str | list[str]:
        from sagin_hil.controllers import CONTROLLERS

        for name in [v] if isinstance(v, str) else v:
            if name not in CONTROLLERS:
                raise ValueError(str(CONTROLLERS.unknown(name)))
        return v

    @model_validator(mode="after")
    def _options_fit(self) -> ControllerConfig:
        from sagin_hil.controllers import controller_options

        for name in [self.algo, *self.compare]:
            try:
                controller_options(name).model_validate(self.options)
            except ValidationError as exc:
                from sagin_hil.controllers.base import _option_error

                raise ValueError(str(_option_error(name, controller_options(name), exc))) from None
        return self


class SpiffEngineConfig(_Section):
    engine: Literal["fixed", "spiff", "ncb"] = Field(
        "fixed", description="who configures mode spiff per task: fixed (beta 0.25, p(0) 0.2, caption off, as its "
        "mode-table row); spiff (the trained quantile multi-critic engine of paper 003) or ncb (its risk-neutral "
        "baseline), from the image and the allocated route's rate")
    target: Literal["strict", "intermediate", "lenient"] = Field(
        "intermediate", description="the engine's fidelity target (paper 003, Table III)")
    seed: int = Field(0, ge=0, description="which trained seed's actor configures (the actors file holds one per seed)")
    actors: str | None = Field(None, description="actors file from `sagin-hil train spiff --out DIR` "
                               "(DIR/spiff-actors.safetensors or DIR/ncb-actors.safetensors); none: the shipped ones")


class CodecsConfig(_Section):
    weights_dir: str | None = Field(
        None, description="folder with your pretrained model weights (captioning, CLIP, Stable Diffusion, "
        "segmentation, ...) for the modes that use them; none: those modes use the offline models trained here, "
        "or are left out with the reason in the report")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="torch device of the neural codecs (auto: CUDA when present)")
    spiff: SpiffEngineConfig = Field(SpiffEngineConfig(), description="mode spiff's configuration per task")


class ReportConfig(_Section):
    max_constellation_points: int = Field(4000, ge=100, description="symbols drawn per constellation plot")


class Flowgraph(BaseModel):
    """A whole experiment. `source` is the file it came from (for error messages)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("run", pattern=r"^[A-Za-z0-9_.-]+$", description="run name (report folder prefix)")
    description: str = Field("", description="one line shown in the report")
    seed: int = Field(1, ge=0, le=2**32 - 1, description="seeds task draws, noise and fading: the same seed gives the same run")
    timing: Literal["measured", "wall-clock"] = Field(
        "measured", description="measured: encode/decode delays from the measured per-mode compute-time table, so "
        "a seed reproduces the run exactly; wall-clock: this host's timings (radio benches)")
    scenario: dict[str, Any] = Field(default_factory=dict, description="keys set over the reference scenario, or {file = ...}")
    images: ImagesConfig = ImagesConfig()
    tasks: TasksConfig = TasksConfig()
    phy: PhyConfig = PhyConfig()
    radio: RadioSection = RadioSection()
    controller: ControllerConfig = ControllerConfig()
    codecs: CodecsConfig = CodecsConfig()
    report: ReportConfig = ReportConfig()
    source: str = Field("<embedded default>", exclude=True)

    @model_validator(mode="after")
    def _check_scenario_file(self) -> Flowgraph:
        f = self.scenario.get("file")
        if f is not None and not isinstance(f, str):
            raise ValueError(f"scenario.file must be a path string, got {f!r}")
        return self

    @model_validator(mode="after")
    def _check_spiff_engine(self) -> Flowgraph:
        engine = self.codecs.spiff.engine
        if engine != "fixed" and "spiff" not in self.controller.modes:
            raise ValueError(f'codecs.spiff.engine = "{engine}" configures mode spiff, which controller.modes '
                             f'{self.controller.modes} leaves out; add "spiff" to the modes or remove the engine')
        return self

    @model_validator(mode="after")
    def _check_replay(self) -> Flowgraph:
        if self.radio.kind != "replay":
            return self
        uri = self.radio.model_dump().get("uri")
        if not uri:
            raise ValueError('radio.kind = "replay" needs radio.uri = the folder a run wrote with --record')
        if self.controller.compare:
            raise ValueError(f"radio.kind = \"replay\" replays the recording of one controller; set "
                             f"controller.compare = [] (it is {self.controller.compare})")
        return self

    def with_overrides(self, images: int | None = None, radio: str | None = None, seed: int | None = None,
                       sets: list[str] | None = None) -> Flowgraph:
        """A copy with command-line overrides applied and validated like the file; errors name the option.

        sets: "key.path=value" items (`--set`), the value read as a TOML value (a bare word is a string).
        """
        data = self.model_dump()
        given = []
        if images is not None:
            data["images"]["count"] = images
            given.append(f"--images {images}")
        if radio is not None:
            data["radio"]["kind"] = radio
            given.append(f"--radio {radio}")
        if seed is not None:
            data["seed"] = seed
            given.append(f"--seed {seed}")
        for item in sets or []:
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise FlowgraphError(f"--set {item!r}: give key=value, e.g. --set images.count=4")
            try:
                value = tomllib.loads(f"v = {text.strip()}")["v"]
            except tomllib.TOMLDecodeError:
                value = text.strip()  # a bare word: a string
            node = data
            parts = key.strip().split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise FlowgraphError(f"--set {item!r}: {part!r} is not a table")
            node[parts[-1]] = value
            given.append(f"--set {item}")
        return _validate(data, f"{self.source} with {' '.join(given)}" if given else self.source)

    def scenario_path(self) -> Path | None:
        """The scenario file, resolved relative to the flowgraph file."""
        f = self.scenario.get("file")
        if f is None:
            return None
        p = Path(f).expanduser()
        if not p.is_absolute() and not self.source.startswith("<"):
            p = Path(self.source).parent / p
        return p


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model accepts at the parent of `loc` (for "did you mean")."""
    model: Any = Flowgraph
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return [k for k in model.model_fields if k != "source"]


def _describe(err: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(err["loc"])
        close = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"key {key!r} is not allowed here{hint} (allowed: {', '.join(allowed)})"
    msg = err["msg"].removeprefix("Value error, ")
    if isinstance(err.get("input"), dict):  # a whole table failed its check: the message names the key
        return f"[{key}]: {msg}"
    return f"key {key!r} = {err.get('input')!r}: {msg}"


def _validate(data: dict[str, Any], source: str) -> Flowgraph:
    try:
        return Flowgraph.model_validate({**data, "source": source})
    except ValidationError as exc:
        lines = [f"{source}: invalid flowgraph"] + [f"  - {_describe(e)}" for e in exc.errors()]
        raise FlowgraphError("\n".join(lines)) from None


def shipped_flowgraphs() -> list[str]:
    """Names of the flowgraphs installed with the package (`sagin-hil run NAME`)."""
    return sorted(f.name[:-5] for f in resources.files("sagin_hil.flowgraphs").iterdir() if f.name.endswith(".toml"))


def load_flowgraph(path: str | Path | None = None) -> Flowgraph:
    """Read and validate a flowgraph file, or a shipped one by name (`shipped_flowgraphs`); None loads the
    embedded default."""
    if path is None:
        text = resources.files("sagin_hil.flowgraphs").joinpath(DEFAULT_FLOWGRAPH).read_text()
        source = f"<embedded {DEFAULT_FLOWGRAPH}>"
    else:
        p = Path(path)
        shipped = resources.files("sagin_hil.flowgraphs").joinpath(f"{p.name}.toml")
        if p.is_file():
            text, source = p.read_text(), str(p)
        elif p.suffix == "" and len(p.parts) == 1 and shipped.is_file():  # a shipped flowgraph by name
            text, source = shipped.read_text(), f"<shipped {p.name}.toml>"
        else:
            raise FlowgraphError(f"{p}: no such flowgraph file; give a path, or the name of a shipped one: "
                                 f"{', '.join(shipped_flowgraphs())} (no argument: the default)")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FlowgraphError(f"{source}: not valid TOML: {exc}") from None
    return _validate(data, source)
