"""PlutoRadio: an ADALM-Pluto (or the emulated one) through pyadi-iio 0.0.21 + pylibiio 0.25 + libiio 0.2x.

Scaling: samples are complex with |x| <= 1 at full scale. TX words are x * 2^14 (the Pluto convention
that leaves 6 dB of DAC headroom); RX words are 12-bit values in int16, returned as x / 2048.
Overflow and underflow are counted from the ADI DMA status register (0x80000088: bit 2 = RX overflow on
cf-ad9361-lpc, bit 0 = TX underflow on cf-ad9361-dds-core-lpc; write 1 to clear), which the emulated
Pluto implements too.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import numpy as np

from sagin_hil.hil.radio import Radio, RadioConfig, RadioError, RxResult, as_complex64

__all__ = ["PlutoRadio", "TX_SCALE", "RX_FULL_SCALE", "STATUS_REG"]

TX_SCALE = 2.0**14
RX_FULL_SCALE = 2048.0
STATUS_REG = 0x80000088
RATE_RANGE_HZ = (521e3, 61.44e6)
TX_GAIN_RANGE_DB = (-89.75, 0.0)
RX_GAIN_RANGE_DB = (-3.0, 71.0)
AGC_MODES = {"agc": "slow_attack", "slow_attack": "slow_attack", "fast_attack": "fast_attack", "hybrid": "hybrid"}


def _check_reachable(uri: str, timeout_s: float) -> None:
    """For ip: URIs, fail fast with a clear message when nothing listens (libiio would just say -111)."""
    if not uri.startswith("ip:"):
        return
    rest = uri[3:]
    host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    host, port_n = (host or rest), int(port) if port.isdigit() else 30431
    try:
        with socket.create_connection((host, port_n), timeout=min(timeout_s, 5.0)):
            pass
    except OSError as exc:
        raise RadioError(
            f"no Pluto reachable at {uri!r} ({host}:{port_n}: {exc.strerror or exc}). Check that it is powered "
            "and its network/USB link is up (ping 192.168.2.1), or start an emulated one with "
            "`sagin-hil pluto-emu --port N` and use uri='ip:127.0.0.1:N'"
        ) from None


class PlutoRadio(Radio):
    """An ADALM-Pluto over pyadi-iio.

    Parameters
    ----------
    config: RadioConfig with kind "pluto" (uri required) or "pluto-emu" (empty uri: an emulated Pluto is
      started in this process and stopped on close).
    """

    kind = "pluto"

    def __init__(self, config: RadioConfig):
        super().__init__(config)
        self.kind = config.kind
        self.server: Any = None
        self._leftover = np.zeros(0, np.complex64)
        self._tx_len = 0
        self._tx_cyclic = False
        self._overflows = self._underflows = 0
        uri = config.uri
        if config.kind == "pluto-emu" and not uri:
            from sagin_hil.hil.iiod import start_pluto_emulator

            self.server = start_pluto_emulator(
                scenario=config.scenario, link=config.link, attenuation_db=config.attenuation_db
            )
            uri = self.server.uri
        self.uri = uri
        try:
            import adi
        except ImportError as exc:
            self._stop_server()
            raise RadioError(
                f"pyadi-iio is not importable ({exc}); install: apt install libiio0 && "
                "pip install pylibiio==0.25 pyadi-iio==0.0.21"
            ) from None
        try:
            _check_reachable(uri, config.timeout_s)
            try:
                self.sdr = adi.Pluto(uri)
            except Exception as exc:
                raise RadioError(
                    f"no Pluto found at {uri!r}: {exc}. `iio_info -s` lists reachable IIO contexts"
                ) from None
            self.sdr.ctx.set_timeout(int(config.timeout_s * 1000))
            self._apply(config)
            self._status(self.sdr._rxadc, 0x4)  # count only this session's overflows and underflows
            self._status(self.sdr._txdac, 0x1)
        except BaseException:
            self._stop_server()
            raise

    # ------------------------------------------------------------------ settings
    def _write(self, what: str, value: Any, setter: Any) -> None:
        try:
            setter(value)
        except OSError as exc:
            raise RadioError(f"the Pluto refused {what} = {value!r} ({exc.strerror}); see docs/radios.md") from None
        except ValueError as exc:
            raise RadioError(f"{what} = {value!r} is not accepted: {exc}") from None

    def _apply(self, cfg: RadioConfig) -> None:
        sdr = self.sdr
        if not RATE_RANGE_HZ[0] <= cfg.sample_rate_hz <= RATE_RANGE_HZ[1]:
            raise RadioError(f"sample_rate_hz = {cfg.sample_rate_hz:g} is outside the Pluto's 521e3..61.44e6 S/s")
        if not TX_GAIN_RANGE_DB[0] <= cfg.tx_gain_db <= TX_GAIN_RANGE_DB[1]:
            raise RadioError(
                f"tx_gain_db = {cfg.tx_gain_db} is outside [-89.75, 0]: the Pluto's TX gain is an attenuation"
            )
        self._write("sample_rate_hz", int(cfg.sample_rate_hz), lambda v: setattr(sdr, "sample_rate", v))
        self._write("carrier_hz", int(cfg.carrier_hz), lambda v: setattr(sdr, "rx_lo", v))
        self._write("tx_carrier_hz", int(cfg.tx_lo_hz), lambda v: setattr(sdr, "tx_lo", v))
        bw = int(cfg.rf_bandwidth_hz)
        self._write("bandwidth_hz", bw, lambda v: setattr(sdr, "rx_rf_bandwidth", v))
        self._write("bandwidth_hz", bw, lambda v: setattr(sdr, "tx_rf_bandwidth", v))
        self._write("tx_gain_db", float(cfg.tx_gain_db), lambda v: setattr(sdr, "tx_hardwaregain_chan0", v))
        g = cfg.rx_gain_db
        if isinstance(g, str):
            if g == "manual":
                raise RadioError('rx_gain_db = "manual" names no gain; give a number of dB instead')
            self._write("rx_gain_db", AGC_MODES[g], lambda v: setattr(sdr, "gain_control_mode_chan0", v))
        else:
            if not RX_GAIN_RANGE_DB[0] <= g <= RX_GAIN_RANGE_DB[1]:
                raise RadioError(f"rx_gain_db = {g} is outside the Pluto's manual range [-3, 71] dB")
            self._write("rx_gain_db", "manual", lambda v: setattr(sdr, "gain_control_mode_chan0", v))
            self._write("rx_gain_db", float(g), lambda v: setattr(sdr, "rx_hardwaregain_chan0", v))
        if cfg.xo_correction_hz is not None:
            self._write(
                "xo_correction_hz", str(cfg.xo_correction_hz),
                lambda v: sdr._set_iio_dev_attr_str("xo_correction", v),
            )
        if cfg.rx_buffer_size != getattr(sdr, "rx_buffer_size", None):
            sdr.rx_destroy_buffer()
            sdr.rx_buffer_size = int(cfg.rx_buffer_size)
        self._leftover = np.zeros(0, np.complex64)

    # ------------------------------------------------------------------ status register
    def _status(self, dev: Any, bit: int) -> bool:
        """Read and clear one bit of the DMA status register; False when the register is unavailable."""
        try:
            if dev.reg_read(STATUS_REG) & bit:
                dev.reg_write(STATUS_REG, bit)
                return True
        except (OSError, AttributeError):
            pass
        return False

    # ------------------------------------------------------------------ samples
    def tx(self, samples: np.ndarray, cyclic: bool = False) -> None:
        x = as_complex64(samples)
        peak = float(np.max(np.abs(x)))
        if peak > 1.0 + 1e-6:
            raise RadioError(f"tx samples peak at |x| = {peak:.3f} > 1 (full scale); scale them down")
        sdr = self.sdr
        error = None
        try:
            if cyclic or self._tx_cyclic or len(x) != self._tx_len:
                sdr.tx_destroy_buffer()  # pyadi-iio fixes the buffer length and mode at the first push
                sdr.tx_cyclic_buffer = bool(cyclic)
            sdr.tx(x * TX_SCALE)
        except OSError as exc:
            error = exc.strerror or str(exc)
            sdr.tx_destroy_buffer()
        if error is not None:  # raised outside the except block (see _rx)
            self._tx_len = 0
            raise RadioError(f"Pluto at {self.uri!r} failed during tx ({error}); is it still connected?")
        self._tx_len, self._tx_cyclic = len(x), bool(cyclic)
        if self._status(sdr._txdac, 0x1):
            self._underflows += 1

    def stop_tx(self) -> None:
        """Stop transmitting (destroys the TX buffer; the DAC then sends zeros)."""
        if self.sdr is not None:
            self.sdr.tx_destroy_buffer()
        self._tx_len, self._tx_cyclic = 0, False

    def flush_rx(self) -> None:
        """Drop leftovers; on hardware also the 4 kernel buffers filled before the last change."""
        self._leftover = np.zeros(0, np.complex64)
        if self.kind == "pluto" and self.sdr is not None:
            error = None
            try:
                for _ in range(4):
                    self.sdr.rx()
            except Exception as exc:  # OSError from libiio (e.g. EBUSY: another client holds the RX buffer)
                error = str(exc) or type(exc).__name__
            if error is not None:  # raised outside the except block (see _rx)
                raise RadioError(
                    f"Pluto at {self.uri!r} refused to stream RX ({error}); is another program using it?"
                )

    def _rx(self, n: int) -> RxResult:
        fs = self.config.sample_rate_hz
        parts = [self._leftover]
        have = len(self._leftover)
        t_first = time.time() - have / fs
        while have < n:
            error = None
            try:
                chunk = self.sdr.rx()
            except Exception as exc:  # OSError from libiio, or pyadi-iio's re-raise
                error = str(exc) or type(exc).__name__
            # Raised outside the except block: a chained traceback would keep libiio's buffer alive past
            # its context (libiio 0.x then frees it from the garbage collector and crashes).
            if error is not None:
                got = np.concatenate(parts)[:n]
                partial = RxResult(got, t_first, self._overflows, self._underflows, self._metadata(error=error))
                self._leftover = np.zeros(0, np.complex64)
                raise RadioError(
                    f"Pluto at {self.uri!r} stopped answering after {len(got)} of {n} samples ({error}); "
                    "check its USB/network link and power. The samples received are kept in .partial",
                    partial=partial,
                )
            if have == 0:
                t_first = time.time() - len(chunk) / fs
            parts.append((np.asarray(chunk) / RX_FULL_SCALE).astype(np.complex64))
            have += len(chunk)
            if self._status(self.sdr._rxadc, 0x4):
                self._overflows += 1
        if self._tx_len and not self._tx_cyclic and self._status(self.sdr._txdac, 0x1):
            self._underflows += 1  # the non-cyclic TX stream ran dry while we received
        data = np.concatenate(parts)
        self._leftover = data[n:].copy()
        res = RxResult(
            data[:n].copy(), t_first, self._overflows, self._underflows,
            self._metadata(rx_buffer_size=self.config.rx_buffer_size),
        )
        self._overflows = self._underflows = 0
        return res

    # ------------------------------------------------------------------ life cycle
    def _stop_server(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def _close(self) -> None:
        sdr = getattr(self, "sdr", None)
        if sdr is not None:
            # Destroy buffers while the context is alive (libiio 0.x reads the device id on close).
            for destroy in (sdr.tx_destroy_buffer, sdr.rx_destroy_buffer):
                try:
                    destroy()
                except Exception:
                    pass
            try:
                sdr.close() if hasattr(sdr, "close") else None
            except Exception:
                pass
            self.sdr = None
        self._stop_server()
