"""SoapyRadio: any SoapySDR device (HackRF, LimeSDR, USRP via UHD, RTL-SDR, bladeRF, ...) through the
system python3-soapysdr bindings.

The device is found by its args string ("driver=hackrf", "driver=uhd,serial=..."); give a driver key so
discovery asks only that module (a bare search also asks network modules such as SoapyRemote). Streams
are CF32 on channel 0, set up on first use. readStream/writeStream return codes map to RadioError
(timeout, stream error, not supported) or to the overflow/underflow counts of RxResult; samples read
before an error are kept on RadioError.partial. Gains are the device's overall gain in dB
(setGain); "agc" turns on the device's automatic gain (setGainMode).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from sagin_hil.hil.radio import CyclicTx, Radio, RadioConfig, RadioError, RxResult, as_complex64

__all__ = ["SoapyRadio", "soapy_discover"]


def _soapy() -> Any:
    try:
        import SoapySDR
    except ImportError as exc:
        raise RadioError(
            f"SoapySDR bindings are not importable ({exc}); apt install python3-soapysdr and run "
            "`make soapy-link` to link them into the venv"
        ) from None
    return SoapySDR


def soapy_discover(args: str) -> list[dict[str, str]]:
    """Devices matching an args string, as plain dicts (SoapySDR.Device.enumerate)."""
    soapy = _soapy()
    return [dict(r) for r in soapy.Device.enumerate(args)]


class SoapyRadio(Radio):
    """A SoapySDR device as a Radio.

    Parameters
    ----------
    config: kind "soapy", uri = device args string (e.g. "driver=hackrf"); timeout_s bounds each
      readStream/writeStream call.
    """

    kind = "soapy"

    def __init__(self, config: RadioConfig):
        super().__init__(config)
        soapy = self.soapy = _soapy()
        args = config.uri
        try:
            self.dev = soapy.Device(args)
        except (RuntimeError, ValueError) as exc:
            found = soapy_discover(args) if "driver=" in args else []
            raise RadioError(
                f"no SoapySDR device for args {args!r} ({exc}); found {found or 'none'}. "
                "`SoapySDRUtil --find` lists devices, `SoapySDRUtil --info` the installed driver modules"
            ) from None
        self._streams: dict[str, Any] = {}
        self._leftover = np.zeros(0, np.complex64)
        self._underflows = 0
        self._cyclic = CyclicTx()
        self.driver = self.dev.getDriverKey()
        self._apply(config)

    # ------------------------------------------------------------------ settings
    def _set(self, what: str, value: Any, fn: Any, *args: Any) -> None:
        try:
            fn(*args, value)
        except (RuntimeError, ValueError) as exc:
            raise RadioError(f"SoapySDR {self.driver} refused {what} = {value!r}: {exc}") from None

    def _check_gain(self, direction: int, gain_db: float, name: str) -> None:
        rng = self.dev.getGainRange(direction, 0)
        lo, hi = rng.minimum(), rng.maximum()
        if hi > lo and not lo <= gain_db <= hi:
            raise RadioError(f"{name} = {gain_db} dB is outside {self.driver}'s range [{lo:g}, {hi:g}] dB")

    def _apply(self, cfg: RadioConfig) -> None:
        s, d = self.soapy, self.dev
        has_rx = d.getNumChannels(s.SOAPY_SDR_RX) > 0 or self.driver == "null"
        has_tx = d.getNumChannels(s.SOAPY_SDR_TX) > 0 or self.driver == "null"
        if has_rx:
            self._set("sample_rate_hz", cfg.sample_rate_hz, d.setSampleRate, s.SOAPY_SDR_RX, 0)
            self._set("carrier_hz", cfg.carrier_hz, d.setFrequency, s.SOAPY_SDR_RX, 0)
            self._set("bandwidth_hz", cfg.rf_bandwidth_hz, d.setBandwidth, s.SOAPY_SDR_RX, 0)
            if isinstance(cfg.rx_gain_db, str):
                if not d.hasGainMode(s.SOAPY_SDR_RX, 0) and self.driver != "null":
                    raise RadioError(f"{self.driver} has no automatic gain; give rx_gain_db as a number of dB")
                self._set("rx_gain_db", True, d.setGainMode, s.SOAPY_SDR_RX, 0)
            else:
                self._check_gain(s.SOAPY_SDR_RX, cfg.rx_gain_db, "rx_gain_db")
                self._set("rx_gain_db", False, d.setGainMode, s.SOAPY_SDR_RX, 0)
                self._set("rx_gain_db", float(cfg.rx_gain_db), d.setGain, s.SOAPY_SDR_RX, 0)
        if has_tx:
            self._set("sample_rate_hz", cfg.sample_rate_hz, d.setSampleRate, s.SOAPY_SDR_TX, 0)
            self._set("tx_carrier_hz", cfg.tx_lo_hz, d.setFrequency, s.SOAPY_SDR_TX, 0)
            self._set("bandwidth_hz", cfg.rf_bandwidth_hz, d.setBandwidth, s.SOAPY_SDR_TX, 0)
            self._check_gain(s.SOAPY_SDR_TX, cfg.tx_gain_db, "tx_gain_db")
            self._set("tx_gain_db", float(cfg.tx_gain_db), d.setGain, s.SOAPY_SDR_TX, 0)
        self._leftover = np.zeros(0, np.complex64)

    # ------------------------------------------------------------------ streams
    def _stream(self, direction: int) -> Any:
        s = self.soapy
        attr = "_rx_stream" if direction == s.SOAPY_SDR_RX else "_tx_stream"
        if attr in self._streams:
            return self._streams[attr]
        try:
            st = self.dev.setupStream(direction, s.SOAPY_SDR_CF32, [0])
        except RuntimeError as exc:
            raise RadioError(f"{self.driver}: cannot set up a CF32 stream on channel 0: {exc}") from None
        # a driver may use a null handle (the "null" driver does); its read/write calls then report
        ret = self.dev.activateStream(st)
        if ret != 0:
            self.dev.closeStream(st)
            raise RadioError(f"{self.driver}: activateStream failed: {s.SoapySDR_errToStr(ret)} ({ret})")
        self._streams[attr] = st
        return st

    def _error(self, ret: int, what: str, partial: RxResult | None = None) -> RadioError:
        s = self.soapy
        reason = {
            s.SOAPY_SDR_TIMEOUT: f"timed out after {self.config.timeout_s:g} s (is the device still attached?)",
            s.SOAPY_SDR_NOT_SUPPORTED: "is not supported by this driver (it streams nothing)",
            s.SOAPY_SDR_STREAM_ERROR: "hit a stream error (device unplugged or its driver failed)",
        }.get(ret, f"failed: {s.SoapySDR_errToStr(ret)} ({ret})")
        return RadioError(f"SoapySDR {self.driver} {what} {reason}", partial=partial)

    def _rx(self, n: int) -> RxResult:
        s = self.soapy
        st = self._stream(s.SOAPY_SDR_RX)
        buf = np.empty(n, np.complex64)
        have = min(len(self._leftover), n)
        buf[:have] = self._leftover[:have]
        self._leftover = self._leftover[have:]
        overflows, t_first = 0, time.time()
        time_ns = None
        deadline = time.monotonic() + self.config.timeout_s
        while have < n:
            sr = self.dev.readStream(st, [buf[have:]], n - have, timeoutUs=int(self.config.timeout_s * 1e6))
            if sr.ret > 0:
                if have == 0 and sr.flags & s.SOAPY_SDR_HAS_TIME:
                    time_ns = sr.timeNs
                have += sr.ret
            elif sr.ret == s.SOAPY_SDR_OVERFLOW:
                overflows += 1
            elif sr.ret != 0 or time.monotonic() > deadline:
                ret = sr.ret if sr.ret != 0 else s.SOAPY_SDR_TIMEOUT
                partial = RxResult(buf[:have].copy(), t_first, overflows, 0, self._metadata(driver=self.driver))
                raise self._error(ret, f"readStream ({have} of {n} samples kept in .partial)", partial)
        meta = self._metadata(driver=self.driver, **({"hw_time_ns": time_ns} if time_ns is not None else {}))
        res = RxResult(buf, t_first, overflows, self._underflows, meta)
        self._underflows = 0
        return res

    def _write_all(self, x: np.ndarray, timeout_s: float) -> None:
        s = self.soapy
        st = self._stream(s.SOAPY_SDR_TX)
        sent = 0
        while sent < len(x):
            sr = self.dev.writeStream(st, [x[sent:]], len(x) - sent, timeoutUs=int(timeout_s * 1e6))
            if sr.ret > 0:
                sent += sr.ret
            elif sr.ret == s.SOAPY_SDR_UNDERFLOW:
                self._underflows += 1
            else:
                raise self._error(sr.ret if sr.ret else s.SOAPY_SDR_TIMEOUT, f"writeStream ({sent} of {len(x)} sent)")
        status = self.dev.readStreamStatus(st, timeoutUs=0)
        if status.ret == s.SOAPY_SDR_UNDERFLOW:
            self._underflows += 1

    def tx(self, samples: np.ndarray, cyclic: bool = False) -> None:
        x = as_complex64(samples)
        self._cyclic.stop()
        self._write_all(x, self.config.timeout_s)  # the first pass reports errors to the caller
        if not cyclic:
            return

        def loop() -> None:
            while not self._cyclic.stopped.is_set():
                try:
                    self._write_all(x, 0.5)
                except RadioError:
                    return

        self._cyclic.start(loop)

    def stop_tx(self) -> None:
        """Stop a cyclic transmission."""
        self._cyclic.stop()

    def _close(self) -> None:
        self._cyclic.stop()
        for st in self._streams.values():
            try:
                self.dev.deactivateStream(st)
                self.dev.closeStream(st)
            except Exception:
                pass
        self._streams.clear()
        self.dev = None
