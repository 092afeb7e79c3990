"""The emulated Pluto's settings: attribute reads and writes with the AD9363 driver's ranges and formats.

Attributes are addressed as (device id, channel key or None, attribute, kind) with kind "attr", "debug" or
"buffer"; channel keys are "in:voltage0" / "out:altvoltage0". Writes that the real driver refuses return
-EINVAL (for example an LO outside 70 MHz - 6 GHz, a sample rate below 2.08 MS/s without the FIR filter,
a gain outside its range); the RF model reads the settings through `EmulatedPluto.rf_settings()`.
"""

from __future__ import annotations

import errno
import math
import threading
from dataclasses import dataclass

from sagin_hil.hil.iiod.context import IioContext

__all__ = ["EmulatedPluto", "RfSettings", "PHY", "DDS", "ADC"]

PHY, XADC, DDS, ADC = "iio:device0", "iio:device1", "iio:device2", "iio:device3"
LO_RANGE_HZ = (70_000_000, 6_000_000_000)
RATE_RANGE_HZ = (520_833, 61_440_000)
RATE_NEEDS_FIR_HZ = 25_000_000 // 12  # below this the AD9363 needs its FIR decimation
BW_RANGE_HZ = (200_000, 56_000_000)
RX_GAIN_RANGE_DB = (-3, 71)
TX_ATTEN_RANGE_DB = (-89.75, 0.0)
XO_RANGE_HZ = (39_992_000, 40_008_000)
GAIN_MODES = ("manual", "fast_attack", "slow_attack", "hybrid")
XADC_MAX_RATE_HZ = 1_000_000  # the Zynq XADC samples at up to 1 MS/s
STATUS_REG = 0x80000088  # ADI AXI DMA status: bit 2 RX overflow (ADC core), bit 0 TX underflow (DAC core)


@dataclass(frozen=True)
class RfSettings:
    """What the RF model needs from the settings (a consistent snapshot)."""

    rx_lo_hz: int
    tx_lo_hz: int
    sample_rate_hz: int
    rx_bandwidth_hz: int
    tx_bandwidth_hz: int
    rx_gain_db: float
    gain_mode: str
    tx_gain_db: float
    xo_correction_hz: int
    loopback: int
    dds: tuple[tuple[float, float, float, bool], ...]  # per DDS tone (freq_hz, scale, phase_mdeg, on)


def _fir_summary(config: str) -> tuple[int, int, int] | None:
    """Parse a filter_fir_config text: (rx decimation, tx interpolation, taps) or None if malformed."""
    lines = [ln.strip() for ln in config.replace("\r", "").split("\n") if ln.strip()]
    dec = interp = None
    taps = 0
    for ln in lines:
        words = ln.replace(",", " ").split()
        if words[0] == "RX" and "DEC" in words:
            dec = int(words[words.index("DEC") + 1])
        elif words[0] == "TX" and "INT" in words:
            interp = int(words[words.index("INT") + 1])
        elif all(w.lstrip("-").isdigit() for w in words):
            taps += 1
        else:
            return None
    if dec not in (1, 2, 4) or interp not in (1, 2, 4) or not (16 <= taps <= 128) or taps % 16:
        return None
    return dec, interp, taps


class EmulatedPluto:
    """Attribute state of one emulated Pluto (thread-safe).

    Parameters
    ----------
    context: the parsed IioContext (devices and attribute names that exist).
    """

    def __init__(self, context: IioContext):
        self.ctx = context
        self.lock = threading.RLock()
        self.values: dict[tuple[str, str | None, str, str], str] = {}
        self.status_bits = {ADC: 0, DDS: 0}
        self.reg_addr = {ADC: 0, DDS: 0}
        self.rssi_db = 120.0
        self.agc_gain_db = 71.0
        self.fir: tuple[int, int, int] = (4, 4, 128)
        self._defaults()

    # ------------------------------------------------------------------ defaults
    def _defaults(self) -> None:
        v = self.values
        for dev in self.ctx.devices:
            for a in dev.attrs:
                v[(dev.id, None, a, "attr")] = "0"
            for a in dev.debug_attrs:
                v[(dev.id, None, a, "debug")] = "0"
            for a in dev.buffer_attrs:
                v[(dev.id, None, a, "buffer")] = "0"
            for ch in dev.channels:
                for a in ch.attrs:
                    v[(dev.id, ch.key, a, "attr")] = "0"
        v[(PHY, "out:altvoltage0", "frequency", "attr")] = "2400000000"
        v[(PHY, "out:altvoltage1", "frequency", "attr")] = "2450000000"
        for key in ("out:altvoltage0", "out:altvoltage1"):
            v[(PHY, key, "frequency_available", "attr")] = f"[{LO_RANGE_HZ[0]} 1 {LO_RANGE_HZ[1]}]"
        v[(PHY, "in:voltage0", "gain_control_mode", "attr")] = "slow_attack"
        v[(PHY, "in:voltage0", "gain_control_mode_available", "attr")] = " ".join(GAIN_MODES)
        v[(PHY, "in:voltage0", "hardwaregain", "attr")] = "71"
        v[(PHY, "in:voltage0", "hardwaregain_available", "attr")] = "[-3 1 71]"
        v[(PHY, "out:voltage0", "hardwaregain", "attr")] = "-10"
        v[(PHY, "out:voltage0", "hardwaregain_available", "attr")] = "[-89.750000 0.250000 0.000000]"
        for d in ("in", "out"):
            v[(PHY, f"{d}:voltage0", "rf_bandwidth", "attr")] = "18000000"
            v[(PHY, f"{d}:voltage0", "rf_bandwidth_available", "attr")] = f"[{BW_RANGE_HZ[0]} 1 {BW_RANGE_HZ[1]}]"
            v[(PHY, f"{d}:voltage0", "sampling_frequency", "attr")] = "30720000"
            v[(PHY, f"{d}:voltage0", "rf_port_select", "attr")] = "A_BALANCED" if d == "in" else "A"
        v[(PHY, "in:voltage0", "rf_port_select_available", "attr")] = "A_BALANCED B_BALANCED C_BALANCED"
        v[(PHY, "out:voltage0", "rf_port_select_available", "attr")] = "A B"
        v[(PHY, "in:temp0", "input", "attr")] = "35000"
        v[(PHY, None, "ensm_mode", "attr")] = "fdd"
        v[(PHY, None, "ensm_mode_available", "attr")] = "sleep wait alert fdd pinctrl pinctrl_fdd_indep"
        v[(PHY, None, "calib_mode", "attr")] = "auto"
        v[(PHY, None, "calib_mode_available", "attr")] = "auto manual manual_tx_quad tx_quad rf_dc_offs rssi_gain_step"
        v[(PHY, None, "trx_rate_governor", "attr")] = "nominal"
        v[(PHY, None, "trx_rate_governor_available", "attr")] = "nominal highest_osr"
        v[(PHY, None, "xo_correction", "attr")] = "40000000"
        v[(PHY, None, "xo_correction_available", "attr")] = f"[{XO_RANGE_HZ[0]} 1 {XO_RANGE_HZ[1]}]"
        v[(PHY, None, "filter_fir_config", "attr")] = "FIR Rx: 128,4 Tx: 128,4"
        for key in ("in:temp0",):
            v[(XADC, key, "raw", "attr")], v[(XADC, key, "scale", "attr")] = "2620", "123.040771484"
            v[(XADC, key, "offset", "attr")] = "-2219"
        for i in range(4):
            ch = f"out:altvoltage{i}"
            v[(DDS, ch, "frequency", "attr")] = "9279985"
            v[(DDS, ch, "scale", "attr")] = "0.000000"
            v[(DDS, ch, "phase", "attr")] = "90000" if i in (0, 1) else "0"
            v[(DDS, ch, "raw", "attr")] = "1"
        for dev in (ADC, DDS):
            for i in (0, 1):
                d = "in" if dev == ADC else "out"
                v[(dev, f"{d}:voltage{i}", "calibscale", "attr")] = "1.000000"
                v[(dev, f"{d}:voltage{i}", "calibphase", "attr")] = "0.000000"
        self._set_rate(30_720_000)

    # ------------------------------------------------------------------ derived values
    def _set_rate(self, rate: int) -> None:
        v = self.values
        for d in ("in", "out"):
            v[(PHY, f"{d}:voltage0", "sampling_frequency", "attr")] = str(rate)
            v[(PHY, f"{d}:voltage0", "sampling_frequency_available", "attr")] = (
                f"[{RATE_RANGE_HZ[0]} 1 {RATE_RANGE_HZ[1]}]"
            )
        for dev, d in ((ADC, "in"), (DDS, "out")):
            for i in (0, 1):
                v[(dev, f"{d}:voltage{i}", "sampling_frequency", "attr")] = str(rate)
                v[(dev, f"{d}:voltage{i}", "sampling_frequency_available", "attr")] = f"{rate} {rate // 8} "
        for i in range(4):
            v[(DDS, f"out:altvoltage{i}", "sampling_frequency", "attr")] = str(rate)
        fir_on = self._fir_enabled()
        interp = self.fir[1] if fir_on else 1
        dec = self.fir[0] if fir_on else 1
        tf, rf_ = rate * interp, rate * dec
        v[(PHY, None, "tx_path_rates", "attr")] = (
            f"BBPLL:{tf * 32} DAC:{tf * 8} T2:{tf * 4} T1:{tf * 2} TF:{tf} TXSAMP:{rate}"
        )
        v[(PHY, None, "rx_path_rates", "attr")] = (
            f"BBPLL:{rf_ * 32} ADC:{rf_ * 8} R2:{rf_ * 4} R1:{rf_ * 2} RF:{rf_} RXSAMP:{rate}"
        )

    def _fir_enabled(self) -> bool:
        v = self.values
        return any(
            v.get(k, "0") == "1"
            for k in (
                (PHY, "in:out", "voltage_filter_fir_en", "attr"),
                (PHY, "in:voltage0", "filter_fir_en", "attr"),
                (PHY, "out:voltage0", "filter_fir_en", "attr"),
            )
        )

    # ------------------------------------------------------------------ reads
    def read(self, dev: str, chn: str | None, attr: str, kind: str) -> tuple[int, str]:
        """(0, value) or (-errno, "")."""
        with self.lock:
            key = (dev, chn, attr, kind)
            if key not in self.values:
                return -errno.ENOENT, ""
            if dev == PHY and chn == "in:voltage0" and attr == "hardwaregain":
                mode = self.values[(PHY, "in:voltage0", "gain_control_mode", "attr")]
                gain = float(self.values[key]) if mode == "manual" else self.agc_gain_db
                return 0, f"{gain:.6f} dB"
            if dev == PHY and chn == "out:voltage0" and attr == "hardwaregain":
                return 0, f"{float(self.values[key]):.6f} dB"
            if dev == PHY and chn == "in:voltage0" and attr == "rssi":
                return 0, f"{self.rssi_db:.2f} dB"
            if attr == "direct_reg_access" and dev in self.status_bits:
                addr = self.reg_addr[dev]
                val = self.status_bits[dev] if addr == STATUS_REG else 0
                return 0, f"0x{val:X}"
            return 0, self.values[key]

    # ------------------------------------------------------------------ writes
    def write(self, dev: str, chn: str | None, attr: str, kind: str, raw: bytes) -> int:
        """Apply a write; return the byte count accepted, or -errno."""
        text = raw.rstrip(b"\x00").decode(errors="replace").strip()
        with self.lock:
            key = (dev, chn, attr, kind)
            if key not in self.values:
                return -errno.ENOENT
            try:
                value = self._check(dev, chn, attr, text)
            except (ValueError, IndexError, KeyError, OverflowError):
                return -errno.EINVAL  # what the driver refuses, and any text that does not parse
            if value is None:
                return len(raw)
            self.values[key] = value
            if dev == PHY and attr == "sampling_frequency":  # the radio's rate, not the xadc's or a DMA core's
                self._set_rate(int(value))
            return len(raw)

    def _check(self, dev: str, chn: str | None, attr: str, text: str) -> str | None:
        """The stored form of a valid write (None when handled here); ValueError when the driver refuses."""
        v = self.values

        def number(lo: float, hi: float) -> float:
            x = float(text.split()[0])
            if not (lo <= x <= hi) or math.isnan(x):
                raise ValueError(text)
            return x

        if dev == PHY:
            if attr == "frequency" and chn in ("out:altvoltage0", "out:altvoltage1"):
                return str(int(number(*LO_RANGE_HZ)))
            if attr == "sampling_frequency":
                rate = int(number(*RATE_RANGE_HZ))
                if rate < RATE_NEEDS_FIR_HZ and not self._fir_enabled():
                    raise ValueError("rates below 2.083 MS/s need filter_fir_en = 1 (load a FIR first)")
                return str(rate)
            if attr == "rf_bandwidth":
                return str(int(number(*BW_RANGE_HZ)))
            if attr == "hardwaregain" and chn == "in:voltage0":
                return str(int(round(number(*RX_GAIN_RANGE_DB))))
            if attr == "hardwaregain" and chn == "out:voltage0":
                return f"{round(number(*TX_ATTEN_RANGE_DB) * 4) / 4:g}"
            if attr == "gain_control_mode":
                if text not in GAIN_MODES:
                    raise ValueError(text)
                return text
            if attr in ("filter_fir_en", "voltage_filter_fir_en"):
                on = int(number(0, 1))
                rate = int(v[(PHY, "in:voltage0", "sampling_frequency", "attr")])
                if not on and rate < RATE_NEEDS_FIR_HZ:
                    raise ValueError("cannot disable the FIR below 2.083 MS/s")
                for k in (("in:out", "voltage_filter_fir_en"), ("in:voltage0", "filter_fir_en"),
                          ("out:voltage0", "filter_fir_en")):
                    v[(PHY, k[0], k[1], "attr")] = str(on)
                self._set_rate(rate)
                return None
            if attr == "filter_fir_config":
                fir = _fir_summary(text)
                if fir is None:
                    raise ValueError("malformed FIR configuration")
                self.fir = fir
                return f"FIR Rx: {fir[2]},{fir[0]} Tx: {fir[2]},{fir[1]}"
            if attr == "xo_correction":
                return str(int(number(*XO_RANGE_HZ)))
            if attr == "loopback":
                return str(int(number(0, 2)))
            if attr == "ensm_mode":
                if text not in v[(PHY, None, "ensm_mode_available", "attr")].split():
                    raise ValueError(text)
                return text
            if attr.endswith("_available") or attr in ("rssi", "tx_path_rates", "rx_path_rates", "input"):
                raise ValueError("read-only")
        if attr == "direct_reg_access" and dev in self.status_bits:
            words = text.split()
            addr = int(words[0], 0)
            self.reg_addr[dev] = addr
            if len(words) > 1 and addr == STATUS_REG:
                self.status_bits[dev] &= ~int(words[1], 0)  # write 1 to clear
            return None
        if dev == DDS and chn and chn.startswith("out:altvoltage"):
            if attr == "scale":
                return f"{number(0.0, 1.0):.6f}"
            if attr == "frequency":
                return str(int(number(0, 61_440_000)))
            if attr == "phase":
                return str(int(number(0, 360_000)))
            if attr == "raw":
                return str(int(number(0, 1)))
        if dev in (ADC, DDS) and attr == "sampling_frequency":
            available = v.get((dev, chn, "sampling_frequency_available", "attr"))
            if available is None:  # the DDS tones' rate follows the phy: read-only, as in the driver
                raise ValueError("read-only")
            rate = int(number(1, RATE_RANGE_HZ[1]))
            if str(rate) not in available.split():
                raise ValueError(text)
            return None  # the FPGA decimation by 8 is accepted and not modelled
        if dev == XADC and attr == "sampling_frequency":
            return str(int(number(1, XADC_MAX_RATE_HZ)))  # the temperature sensor's own rate: stored only
        if attr.endswith("_available"):
            raise ValueError("read-only")
        return text

    # ------------------------------------------------------------------ for the RF model
    def rf_settings(self) -> RfSettings:
        with self.lock:
            v = self.values
            mode = v[(PHY, "in:voltage0", "gain_control_mode", "attr")]
            dds = tuple(
                (
                    float(v[(DDS, f"out:altvoltage{i}", "frequency", "attr")]),
                    float(v[(DDS, f"out:altvoltage{i}", "scale", "attr")]),
                    float(v[(DDS, f"out:altvoltage{i}", "phase", "attr")]),
                    v[(DDS, f"out:altvoltage{i}", "raw", "attr")] == "1",
                )
                for i in range(4)
            )
            return RfSettings(
                rx_lo_hz=int(v[(PHY, "out:altvoltage0", "frequency", "attr")]),
                tx_lo_hz=int(v[(PHY, "out:altvoltage1", "frequency", "attr")]),
                sample_rate_hz=int(v[(PHY, "in:voltage0", "sampling_frequency", "attr")]),
                rx_bandwidth_hz=int(v[(PHY, "in:voltage0", "rf_bandwidth", "attr")]),
                tx_bandwidth_hz=int(v[(PHY, "out:voltage0", "rf_bandwidth", "attr")]),
                rx_gain_db=float(v[(PHY, "in:voltage0", "hardwaregain", "attr")]),
                gain_mode=mode,
                tx_gain_db=float(v[(PHY, "out:voltage0", "hardwaregain", "attr")]),
                xo_correction_hz=int(v[(PHY, None, "xo_correction", "attr")]),
                loopback=int(v[(PHY, None, "loopback", "debug")]),
                dds=dds,
            )

    def flag(self, dev: str, bit: int) -> None:
        with self.lock:
            self.status_bits[dev] |= bit
