"""One interface for every front end: Pluto (pyadi-iio), SoapySDR, ZeroMQ IQ streams, SigMF replay.

    cfg = RadioConfig(kind="pluto-emu", carrier_hz=2.4e9, sample_rate_hz=1e6, rx_gain_db=30)
    with open_radio(cfg) as radio:
        radio.tx(samples, cyclic=True)
        res = radio.rx(4096)          # RxResult(samples, time_s, overflows, underflows, metadata)

Radio libraries (iio/adi, SoapySDR, zmq) are imported inside the adapters, so this module and the core
install and test without them. Every failure surfaces as RadioError with what to check; samples received
before a failure are kept on the error (`RadioError.partial`) and, when recording, on disk.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sagin_hil.registry import Registry

__all__ = ["RADIOS", "Radio", "RadioConfig", "RadioError", "RxResult", "open_radio", "as_complex64", "GAIN_MODES"]

RadioKind = Literal["pluto-emu", "pluto", "soapy", "zmq", "replay"]
GAIN_MODES = ("manual", "slow_attack", "fast_attack", "hybrid")


class RadioError(RuntimeError):
    """A radio failed: not found, unreachable, timed out, overflowed, or vanished mid-run.

    partial: an RxResult with the samples received before the failure (None if there were none).
    """

    def __init__(self, message: str, partial: RxResult | None = None):
        super().__init__(message)
        self.partial = partial


@dataclass
class RxResult:
    """What one rx(n) call returned.

    samples: 1-D complex64, normalised so the ADC full scale is |x| = 1.
    time_s: host time (UNIX seconds) of the first sample, as well as the radio can tell.
    overflows, underflows: counts seen since the previous rx() (samples lost in RX / gaps in TX).
    metadata: carrier_hz, sample_rate_hz, rx_gain_db, radio kind, uri, ... (recorded with the samples).
    """

    samples: np.ndarray
    time_s: float
    overflows: int = 0
    underflows: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


class RadioConfig(BaseModel):
    """Which radio and how it is set up. Unknown keys are refused (a typo is not silently ignored).

    kind: "pluto-emu" (an emulated Pluto; started in-process when uri is empty), "pluto", "soapy", "zmq",
      "replay" (a SigMF recording).
    uri: pluto: "ip:192.168.2.1", "usb:1.2.5", "ip:127.0.0.1:30431"; soapy: a device args string
      ("driver=hackrf"); zmq: the RX endpoint ("tcp://127.0.0.1:5556"); replay: the .sigmf-meta/-data path.
    tx_uri: zmq only: the TX endpoint (bound by us) - the channel-emulator service connects to it.
    carrier_hz, tx_carrier_hz: RX LO and TX LO (tx_carrier_hz defaults to carrier_hz).
    sample_rate_hz, bandwidth_hz: baseband rate and analog filter bandwidth (default: the sample rate).
    tx_gain_db: TX gain; on a Pluto this is the attenuation, in [-89.75, 0] dB.
    rx_gain_db: a number (manual gain) or "agc" / "slow_attack" / "fast_attack" (automatic gain).
    rx_buffer_size: samples per hardware RX buffer (refill unit).
    xo_correction_hz: Pluto reference oscillator frequency as measured (about 40 MHz) to cancel its ppm error.
    timeout_s: how long one rx/tx may block before RadioError.
    scenario, link: pluto-emu only: a scenario TOML for the channel, and which link (e.g. "leo0->uav0").
    attenuation_db: pluto-emu only (no scenario): the bench cable attenuator between TX and RX.
    record_path: when set, every rx() is appended to this SigMF recording.
    loop: replay only: start again at the end of the recording instead of raising.
    zmq_pattern: zmq only: "push-pull" (lossless, back-pressure), "pub-sub" (drops when slow) or
      "req-rep" (RX asks for samples: gr-zeromq REQ source / srsRAN style).
    zmq_pass_tags: zmq only: messages carry the gr-zeromq tag header (lets RX detect lost samples).
    on_overflow: "count" (report in RxResult.overflows) or "raise" (RadioError, samples kept on .partial).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: RadioKind = "pluto-emu"
    uri: str = ""
    tx_uri: str = ""
    carrier_hz: float = Field(2.4e9, gt=0)
    tx_carrier_hz: float | None = Field(None, gt=0)
    sample_rate_hz: float = Field(1e6, gt=0)
    bandwidth_hz: float | None = Field(None, gt=0)
    tx_gain_db: float = -10.0
    rx_gain_db: Union[float, Literal["agc", "manual", "slow_attack", "fast_attack", "hybrid"]] = 30.0
    rx_buffer_size: int = Field(16384, ge=16, le=2**24)
    xo_correction_hz: int | None = Field(None, ge=10_000_000, le=80_000_000)
    timeout_s: float = Field(5.0, gt=0)
    scenario: str | None = None
    link: str | None = None
    attenuation_db: float = Field(40.0, ge=0)
    record_path: str | None = None
    loop: bool = False
    zmq_pattern: Literal["push-pull", "pub-sub", "req-rep"] = "push-pull"
    zmq_pass_tags: bool = False
    on_overflow: Literal["count", "raise"] = "count"

    @model_validator(mode="after")
    def _check(self) -> RadioConfig:
        if self.kind in ("pluto", "zmq", "replay") and not self.uri:
            hint = {
                "pluto": 'uri="ip:192.168.2.1" or "usb:" (iio_info -s lists them)',
                "zmq": 'uri="tcp://127.0.0.1:5556" (where the channel emulator publishes RX IQ)',
                "replay": 'uri="capture.sigmf-meta"',
            }[self.kind]
            raise ValueError(f"radio kind {self.kind!r} needs a uri, e.g. {hint}")
        return self

    @property
    def tx_lo_hz(self) -> float:
        return self.carrier_hz if self.tx_carrier_hz is None else self.tx_carrier_hz

    @property
    def rf_bandwidth_hz(self) -> float:
        return self.sample_rate_hz if self.bandwidth_hz is None else self.bandwidth_hz

    @classmethod
    def parse(cls, data: dict[str, Any]) -> RadioConfig:
        """Build from a mapping (a flowgraph's [radio] table), raising RadioError that names the bad key."""
        try:
            return cls(**data)
        except ValidationError as exc:
            errs = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'radio'}: {e['msg']}" for e in exc.errors())
            raise RadioError(f"invalid radio configuration: {errs}") from None


def as_complex64(samples: Any, what: str = "tx samples") -> np.ndarray:
    """Check and convert samples to a 1-D complex64 array (full scale |x| <= 1)."""
    arr = np.asarray(samples)
    if arr.ndim != 1 or arr.size == 0:
        raise RadioError(f"{what} must be a non-empty 1-D array; got shape {arr.shape}")
    if not np.iscomplexobj(arr):
        raise RadioError(f"{what} must be complex baseband; got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.complex64)
    if not np.all(np.isfinite(arr)):
        raise RadioError(f"{what} contain NaN or inf; check the modulator output")
    return arr


class Radio(ABC):
    """A front end. Use as a context manager; close() is idempotent.

    Parameters
    ----------
    config: RadioConfig the radio was opened with (kept up to date by configure()).
    """

    kind: str = "abstract"

    def __init__(self, config: RadioConfig):
        self.config = config
        self._closed = False
        self._recorder: Any = None

    # -- settings
    def configure(self, **settings: Any) -> None:
        """Change carrier_hz, tx_carrier_hz, sample_rate_hz, bandwidth_hz, tx_gain_db, rx_gain_db, ..."""
        data = self.config.model_dump()
        unknown = set(settings) - set(data)
        if unknown:
            raise RadioError(f"unknown radio setting(s) {sorted(unknown)}; known: {sorted(data)}")
        data.update(settings)
        new = RadioConfig.parse(data)
        self._apply(new)
        self.config = new

    @abstractmethod
    def _apply(self, cfg: RadioConfig) -> None:
        """Push the settings to the device."""

    # -- samples
    @abstractmethod
    def tx(self, samples: np.ndarray, cyclic: bool = False) -> None:
        """Transmit complex64 samples (|x| <= 1 is full scale); cyclic repeats them until the next tx/close."""

    def rx(self, n: int) -> RxResult:
        """Receive n samples (complex64, full scale 1) with time and overflow/underflow counts."""
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise RadioError(f"rx(n): n = {n!r} must be a positive integer number of samples")
        if self._closed:
            raise RadioError(f"{self.kind} radio is closed; open a new one with open_radio(cfg)")
        try:
            res = self._rx(int(n))
        except RadioError as exc:
            if exc.partial is not None and self._recorder is not None:
                self._recorder.append(exc.partial)
            raise
        if self._recorder is not None:
            self._recorder.append(res)
        if res.overflows and self.config.on_overflow == "raise":
            raise RadioError(
                f"{self.kind} radio overflowed {res.overflows} time(s): samples were lost between buffers. "
                "Lower sample_rate_hz, raise rx_buffer_size, or read more often; the received samples are "
                "kept in .partial",
                partial=res,
            )
        return res

    @abstractmethod
    def _rx(self, n: int) -> RxResult: ...

    def stop_tx(self) -> None:
        """Stop a cyclic transmission (override)."""

    def flush_rx(self) -> None:
        """Drop samples captured before now (buffered leftovers, stale kernel buffers) (override)."""

    def transfer(self, samples: np.ndarray) -> RxResult:
        """Send one burst and receive as many samples, starting when the burst starts.

        On an emulated Pluto (virtual time) and on ZeroMQ links the result is time aligned: received
        sample k is transmitted sample k after the channel (plus its delay), like ChannelEmulator.process.
        On hardware the receive window starts when rx() is called: use loopback() there.
        """
        x = as_complex64(samples)
        self.flush_rx()
        self.tx(x)
        return self.rx(len(x))

    def loopback(self, samples: np.ndarray, guard_samples: int | None = None, receiver: Radio | None = None) -> RxResult:
        """One burst out through this radio and back through `receiver` (default: this radio, TX cabled to
        RX, or an emulated Pluto; another radio for a two-radio bench).

        The burst plus `guard_samples` of silence (default: a quarter of the burst, at least 1000) is
        transmitted cyclically and twice that length is received, so at least one whole copy lies in the
        result wherever the receive window starts - on hardware as on the emulator. The caller finds the
        burst by its preamble. Transmission stops before returning.
        """
        x = as_complex64(samples)
        guard = max(1000, len(x) // 4) if guard_samples is None else int(guard_samples)
        if guard < 0:
            raise RadioError(f"guard_samples = {guard} must be >= 0")
        rx_radio = self if receiver is None else receiver
        frame = np.concatenate([x, np.zeros(guard, np.complex64)])
        self.tx(frame, cyclic=True)
        try:
            rx_radio.flush_rx()
            return rx_radio.rx(2 * len(frame))
        finally:
            self.stop_tx()

    def _metadata(self, **extra: Any) -> dict[str, Any]:
        c = self.config
        meta = {
            "radio": self.kind,
            "uri": c.uri,
            "carrier_hz": c.carrier_hz,
            "tx_carrier_hz": c.tx_lo_hz,
            "sample_rate_hz": c.sample_rate_hz,
            "bandwidth_hz": c.rf_bandwidth_hz,
            "tx_gain_db": c.tx_gain_db,
            "rx_gain_db": c.rx_gain_db,
            "scenario": c.scenario,
            "link": c.link,
        }
        meta.update(extra)
        return meta

    # -- life cycle
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._close()
        finally:
            if self._recorder is not None:
                self._recorder.close()

    def _close(self) -> None:
        """Release the device (override)."""

    def __enter__(self) -> Radio:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config.uri or self.kind} at {self.config.carrier_hz / 1e6:.3f} MHz>"


class CyclicTx:
    """Replays a transmission from a background thread, for drivers with no cyclic mode of their own."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop: Callable[[], None]) -> None:
        """Run `loop` in a thread; it must return soon after `self.stopped` is set."""
        self.stop()
        self.stopped.clear()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.stopped.set()
            self._thread.join(timeout=2.0)
            self._thread = None


def now_s() -> float:
    return time.time()


# Radio drivers by kind, imported only when opened (pyadi-iio, SoapySDR and pyzmq stay optional).
RADIOS: Registry[Radio] = Registry("radio", {
    "pluto": "sagin_hil.hil.pluto:PlutoRadio",
    "pluto-emu": "sagin_hil.hil.pluto:PlutoRadio",
    "soapy": "sagin_hil.hil.soapy:SoapyRadio",
    "zmq": "sagin_hil.hil.zmq_radio:ZmqRadio",
    "replay": "sagin_hil.hil.recording:ReplayRadio",
})


def open_radio(cfg: RadioConfig | dict[str, Any]) -> Radio:
    """Open the radio a RadioConfig (or a mapping of its fields) names; apply its settings.

    kind "pluto-emu" with an empty uri starts an emulated Pluto in this process (closed with the radio).
    With cfg.record_path set, every rx() is also appended to that SigMF recording.
    """
    if isinstance(cfg, dict):
        cfg = RadioConfig.parse(cfg)
    radio: Radio = RADIOS.create(cfg.kind, config=cfg)
    if cfg.record_path:
        from sagin_hil.hil.recording import SigMFRecorder

        radio._recorder = SigMFRecorder(cfg.record_path, cfg)
    return radio
