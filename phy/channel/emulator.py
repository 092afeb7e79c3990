"""The streaming sample-level channel emulator: `ChannelParams` and the `ChannelEmulator` block.

    em = ChannelEmulator(1e6, 25e9, ChannelParams(snr_db=10, doppler_hz=5e3, delay_s=2e-3, k_factor_db=10,
                                                   max_doppler_hz=100), seed=0)
    out = em.process(block)          # SampleBlock in, SampleBlock out; state carried across calls
    em.update(doppler_hz=6e3)        # between chunks, phase continuous
    em = ChannelEmulator.for_link(Scenario.default(), "leo0", "uav0", 1e6)   # follows the scenario in time

The samples cross (in this order): a time-varying fractional delay (propagation, plus sample-clock offset),
the small-scale fading (flat Rician/Rayleigh, or NTN-TDL-A..D taps), the Doppler shift with its rate plus
the carrier offset, phase noise, a gain, and AWGN. See kernels.py for the per-sample arithmetic.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sagin_hil.datatypes import SampleBlock
from sagin_hil.phy.channel.gauss import seed_key
from sagin_hil.phy.channel.kernels import RING_PAD, ROT_STATE, channel_kernel, outside, sos_value
from sagin_hil.phy.channel.tdl import NTN_TDL, tdl_taps

if TYPE_CHECKING:
    from sagin_hil.phy.channel.link_emulator import ScenarioChannel

__all__ = ["ChannelParams", "ChannelEmulator", "PARAM_BOUNDS", "MAX_DELAY_SAMPLES", "MAX_ABS_SAMPLE", "warm_up",
           "CALIBRATION_CHANNEL_KEYS", "load_calibration_profile"]

# the [channel] table of a calibration profile (calibration/profile.py writes it, the emulator loads it)
CALIBRATION_CHANNEL_KEYS = ("es_n0_db", "doppler_hz", "doppler_rate_hz_per_s", "delay_s", "delay_rate_s_per_s",
                            "k_factor_db", "max_doppler_hz", "cfo_ppm")


def load_calibration_profile(path) -> dict:
    """A calibration profile (TOML) as a dict; a missing file, bad TOML or a missing key is named with what to
    do. Infinite values are stored as the strings "inf" / "-inf" (TOML's own spelling aside) and read back as
    floats by ChannelParams.from_calibration."""
    import tomllib
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise ValueError(f"calibration profile {p} does not exist; write one with `sagin-hil calibrate channel REC "
                         f"--profile {p}`")
    try:
        prof = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"calibration profile {p}: not TOML ({exc})") from None
    missing = [k for k in CALIBRATION_CHANNEL_KEYS if k not in prof.get("channel", {})]
    if missing or "waveform" not in prof:
        raise ValueError(f"calibration profile {p}: [channel] lacks {missing or 'nothing'}"
                         f"{'' if 'waveform' in prof else ' and there is no [waveform]'}; rewrite it with "
                         "`sagin-hil calibrate channel`")
    return prof


@dataclass(frozen=True)
class ChannelParams:
    """What the channel does to the samples. Frequencies in Hz, times in s.

    snr_db: mean received signal power / noise power per complex sample over the full sample rate; the
        signal power is `signal_power` if given, else the running mean |x|^2 of the non-zero input times
        the gain. None (and no noise_power) = no noise.
    noise_power: absolute noise power per complex sample (instead of snr_db).
    signal_power: reference input power for snr_db (e.g. 1.0 for unit-power modem output).
    gain_db: power gain applied to the signal (not to the noise).
    delay_s, delay_rate_s_per_s: propagation delay and its drift (for a moving node -doppler/carrier).
    doppler_hz, doppler_rate_hz_per_s: carrier Doppler shift and its rate.
    k_factor_db: Rician K of flat fading; None = no fading, inf = pure LoS, -inf = Rayleigh.
    max_doppler_hz: Jakes spread of the fading (sum of n_sinusoids sinusoids).
    cfo_ppm: oscillator offset, a frequency shift of cfo_ppm * 1e-6 * carrier_hz.
    sco_ppm: receiver sample-clock offset; > 0 means the receiver clock runs fast (delay grows).
    phase_noise_dbc_hz: Wiener phase noise with L(f) = this at phase_noise_offset_hz (1/f^2 slope).
    tdl: None or "NTN-TDL-A".."NTN-TDL-D" (TR 38.811), scaled to delay_spread_s; replaces k_factor_db.
    blocked: the path is blocked (e.g. below the minimum elevation): only noise comes out.
    """

    snr_db: float | None = None
    noise_power: float | None = None
    signal_power: float | None = None
    gain_db: float = 0.0
    delay_s: float = 0.0
    delay_rate_s_per_s: float = 0.0
    doppler_hz: float = 0.0
    doppler_rate_hz_per_s: float = 0.0
    k_factor_db: float | None = None
    max_doppler_hz: float = 0.0
    cfo_ppm: float = 0.0
    sco_ppm: float = 0.0
    phase_noise_dbc_hz: float | None = None
    phase_noise_offset_hz: float = 1e3
    tdl: str | None = None
    delay_spread_s: float = 100e-9
    n_sinusoids: int = 32
    blocked: bool = False

    def __post_init__(self) -> None:
        # Checked here, before anything is stored: every field is typed and physically bounded, so a bad value
        # (from a control socket, a flowgraph, an iiod client) is refused with the range instead of reaching
        # the kernel as an overflow, a division by zero or a huge allocation.
        for name, (lo, hi, unit, special) in PARAM_BOUNDS.items():
            v = getattr(self, name)
            if v is None and "None" in special:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise ValueError(f"ChannelParams.{name} = {v!r} must be a number in [{lo:g}, {hi:g}] {unit}"
                                 + (f" ({special})" if special else ""))
            v = float(v)
            object.__setattr__(self, name, v)  # JSON ints and numpy scalars become floats (one kernel signature)
            if math.isinf(v) and (("inf" in special and v > 0) or ("-inf" in special and v < 0)):
                continue
            if not lo <= v <= hi:  # also refuses NaN
                raise ValueError(f"ChannelParams.{name} = {v!r} is outside [{lo:g}, {hi:g}] {unit}"
                                 + (f" ({special})" if special else ""))
        if self.snr_db is not None and self.noise_power is not None:
            raise ValueError("ChannelParams: give snr_db or noise_power, not both")
        if self.signal_power is not None and not self.signal_power > 0:
            raise ValueError(f"ChannelParams.signal_power = {self.signal_power!r} must be > 0 (or None to measure the input)")
        if self.phase_noise_offset_hz <= 0:
            raise ValueError(f"ChannelParams.phase_noise_offset_hz = {self.phase_noise_offset_hz!r} must be > 0 Hz")
        if self.tdl is not None and self.tdl not in NTN_TDL:
            raise ValueError(f"ChannelParams.tdl = {self.tdl!r}: choose one of {sorted(NTN_TDL)} or None")
        n = self.n_sinusoids
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 4 <= n <= 1024 or n % 2:
            raise ValueError(f"ChannelParams.n_sinusoids = {n!r} must be an even integer in [4, 1024]")
        object.__setattr__(self, "n_sinusoids", int(n))
        if not isinstance(self.blocked, (bool, np.bool_)):
            raise ValueError(f"ChannelParams.blocked = {self.blocked!r} must be true or false")
        object.__setattr__(self, "blocked", bool(self.blocked))

    @classmethod
    def from_calibration(cls, profile: dict, es_per_unit_power: float, signal_power: float | None = 1.0
                         ) -> ChannelParams:
        """The channel of a calibration profile (`sagin-hil calibrate channel --profile`, read as a dict): its
        [channel] table's Doppler, delay, K, fading and CFO, with SNR per sample set so that a waveform whose
        symbol energy at unit mean power is `es_per_unit_power` arrives at the profile's Es/N0 (a continuous
        RRC stream of unit-power symbols: sps; signal_power None measures the input's power)."""
        try:
            ch = profile["channel"]
            k = float(ch["k_factor_db"])
            return cls(snr_db=float(ch["es_n0_db"]) - 10 * math.log10(es_per_unit_power), signal_power=signal_power,
                       delay_s=float(ch["delay_s"]), delay_rate_s_per_s=float(ch["delay_rate_s_per_s"]),
                       doppler_hz=float(ch["doppler_hz"]), doppler_rate_hz_per_s=float(ch["doppler_rate_hz_per_s"]),
                       k_factor_db=None if k > 60 else k, max_doppler_hz=float(ch["max_doppler_hz"]),
                       cfo_ppm=float(ch["cfo_ppm"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"calibration profile: [channel] lacks or garbles {exc}; rewrite it with "
                             "`sagin-hil calibrate channel --profile`") from None


# Physical bounds of every numeric ChannelParams field: (low, high, unit, what else is allowed). Wide enough
# for any SAGIN link (Ka-band LEO Doppler is < 1 MHz, GEO delay 0.12 s), narrow enough that nothing
# overflows: 10 ** (dB / 10) stays finite and output samples stay within float32.
PARAM_BOUNDS: dict[str, tuple[float, float, str, str]] = {
    "snr_db": (-100.0, 200.0, "dB", "inf or None = no noise"),
    "noise_power": (0.0, 1e30, "per complex sample", "None"),
    "signal_power": (0.0, 1e30, "per complex sample", "None = measure the input"),
    "gain_db": (-300.0, 200.0, "dB", ""),
    "delay_s": (0.0, 1.0, "s", ""),
    "delay_rate_s_per_s": (-1e-2, 1e-2, "s/s", ""),
    "doppler_hz": (-1e7, 1e7, "Hz", ""),
    "doppler_rate_hz_per_s": (-1e6, 1e6, "Hz/s", ""),
    "k_factor_db": (-100.0, 100.0, "dB", "inf = pure LoS, -inf = Rayleigh, None = no fading"),
    "max_doppler_hz": (0.0, 1e6, "Hz", ""),
    "cfo_ppm": (-1e6, 1e6, "ppm of the carrier", ""),
    "sco_ppm": (-1e4, 1e4, "ppm", ""),
    "phase_noise_dbc_hz": (-200.0, 0.0, "dBc/Hz", "None = no phase noise"),
    "phase_noise_offset_hz": (0.0, 1e9, "Hz", ""),
    "delay_spread_s": (0.0, 1e-4, "s", ""),
}
MAX_DELAY_SAMPLES = 1 << 24  # history the emulator keeps (delay + longest tap): a ring of 256 MiB at most
MAX_PN_STEP_RAD = 0.1  # per-sample phase-noise step the kernel's second-order rotator stays accurate for
MAX_ABS_SAMPLE = 1e15  # input I/Q beyond this are clipped (and counted): outputs stay finite in float32
LATE_AFTER_S = 0.02  # real time: a block finished this long after its last sample's due time is late


class _State:
    """Everything the kernel carries from one call to the next."""

    def __init__(self, n_taps: int, n_sin: int) -> None:
        self.ring = np.zeros(4096 + RING_PAD, np.complex64)  # kernels.py: a power of two plus a mirrored head
        self.rot = np.zeros(ROT_STATE, np.complex128)  # rotator tables, set up at a segment's first sample
        self.fad_phase = np.zeros((n_taps, n_sin))
        self.fad_dphase = np.zeros((n_taps, n_sin))
        self.fad_h = np.zeros((n_taps, 2), np.complex128)
        self.pow_acc = np.zeros(3)
        self.pn_rot = np.ones(1, np.complex128)
        self.noise_state = np.zeros(2, np.uint64)  # [key, index of the next draw]
        self.pn_state = np.zeros(2, np.uint64)


class ChannelEmulator:
    """A streaming channel: SampleBlock in, impaired SampleBlock out, state carried across calls.

    Parameters
    ----------
    sample_rate_hz: the stream's sample rate.
    carrier_hz: RF carrier, used for cfo_ppm (and by `for_link` for the Doppler physics).
    params: a `ChannelParams` (default: a transparent channel).
    seed: seeds the fading sinusoids, the noise and the phase noise (separate streams).
    realtime: pace `process` to the sample rate (sleep until the wall clock reaches the samples' end);
        otherwise run as fast as possible (virtual time). A real-time emulator that cannot keep up does not
        slip silently: `lag_s` (how far behind the wall clock the last block finished), `max_lag_s` and
        `late_blocks` (blocks more than LATE_AFTER_S behind) say so, in `stats()["realtime"]` too.

    Input
    -----
    block: a `SampleBlock` (or a 1-D complex64 array) of any length.

    Output
    ------
    The same type, same length: y[n] = gain rot(n) pn(n) sum_l h_l(n) x(n - tau(n) - d_l) + w[n].
    """

    def __init__(
        self, sample_rate_hz: float, carrier_hz: float = 0.0, params: ChannelParams | None = None,
        seed: int = 0, realtime: bool = False,
    ) -> None:
        if not (sample_rate_hz > 0 and math.isfinite(sample_rate_hz)):
            raise ValueError(f"sample_rate_hz = {sample_rate_hz!r} must be a positive rate in samples/s")
        self.sample_rate_hz = float(sample_rate_hz)
        self.carrier_hz = float(carrier_hz)
        self.realtime = realtime
        self.seed = seed
        s_fad, self._s_noise, self._s_pn = np.random.SeedSequence(seed).spawn(3)
        self._fad_rng = np.random.default_rng(s_fad)
        self._n = 0  # absolute index of the next input sample
        self.nonfinite_samples = 0  # NaN/inf input samples, zeroed
        self.clipped_samples = 0  # input samples with |I| or |Q| > MAX_ABS_SAMPLE, clipped
        self._wall0: float | None = None
        self.lag_s = self.max_lag_s = 0.0
        self.late_blocks = 0
        self._params = params or ChannelParams()
        self._seg: dict[str, float] = {"n_seg": 0, "tau0": 0.0, "tau_rate": 0.0, "phi": 0.0, "f": 0.0, "r": 0.0}
        self._fad: dict[str, Any] = {}
        self._state: _State | None = None
        self._configure(self._params, initial=True)

    # ------------------------------------------------------------------------------------------ set-up
    @property
    def params(self) -> ChannelParams:
        return self._params

    @property
    def samples_processed(self) -> int:
        return self._n

    def _taps(self, p: ChannelParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if p.tdl is not None:
            return tdl_taps(p.tdl, p.delay_spread_s)
        k = p.k_factor_db
        if k is None or k == math.inf:
            return np.zeros(1), np.ones(1), np.ones(1, bool)
        return np.zeros(1), np.ones(1), np.array([k != -math.inf])

    def _check_at_rate(self, p: ChannelParams) -> None:
        """The limits that depend on the sample rate; raises before any state changes."""
        fs = self.sample_rate_hz
        taps = self._taps(p)[0]
        need = p.delay_s * fs + float(np.max(taps)) * fs
        if need > MAX_DELAY_SAMPLES:
            raise ValueError(
                f"ChannelParams.delay_s = {p.delay_s!r} (+ {float(np.max(taps)):g} s of taps) is {need:.0f} samples at "
                f"{fs:g} samples/s; the emulator keeps at most {MAX_DELAY_SAMPLES} samples of history "
                f"({MAX_DELAY_SAMPLES / fs:g} s at this rate): lower the delay or the sample rate"
            )
        if p.phase_noise_dbc_hz is not None:
            step = 2 * math.pi * p.phase_noise_offset_hz * math.sqrt(10 ** (p.phase_noise_dbc_hz / 10) / fs)
            if step > MAX_PN_STEP_RAD:
                raise ValueError(
                    f"ChannelParams.phase_noise_dbc_hz = {p.phase_noise_dbc_hz!r} at phase_noise_offset_hz = "
                    f"{p.phase_noise_offset_hz!r} is a phase step of {step:.3g} rad per sample at {fs:g} samples/s; "
                    f"at most {MAX_PN_STEP_RAD} rad is modelled: lower the phase noise or raise the sample rate"
                )

    def _configure(self, p: ChannelParams, initial: bool = False, delay_given: bool = True) -> None:
        self._check_at_rate(p)
        fs, n_now = self.sample_rate_hz, self._n
        old = self._seg
        k = n_now - old["n_seg"]
        # Doppler: keep the phase continuous at the change
        phi = (old["phi"] + old["f"] * k + 0.5 * old["r"] * k * k) % 1.0
        tau_now = max(0.0, old["tau0"] + old["tau_rate"] * k)
        sco_acc = old.get("sco_acc", 0.0) + old.get("sco", 0.0) * k
        tau0 = p.delay_s * fs + sco_acc if delay_given else tau_now
        self._seg = {
            "n_seg": n_now, "tau0": tau0, "tau_rate": p.delay_rate_s_per_s + p.sco_ppm * 1e-6,
            "phi": phi, "f": (p.doppler_hz + p.cfo_ppm * 1e-6 * self.carrier_hz) / fs,
            "r": p.doppler_rate_hz_per_s / fs**2, "sco": p.sco_ppm * 1e-6, "sco_acc": sco_acc,
        }
        self._configure_fading(p, initial)
        st = self._state
        # noise
        gain2 = 10 ** (p.gain_db / 10)
        if p.noise_power is not None:
            self._noise_mode, self._noise_scale = 1, math.sqrt(p.noise_power)
        elif p.snr_db is None or p.snr_db == math.inf:
            self._noise_mode, self._noise_scale = 0, 0.0
        elif p.signal_power is not None:
            self._noise_mode, self._noise_scale = 1, math.sqrt(p.signal_power * gain2 / 10 ** (p.snr_db / 10))
        else:
            self._noise_mode, self._noise_scale = 2, gain2 / 10 ** (p.snr_db / 10)
            if st.pow_acc[1] > 0:  # the new level applies from now, from the power measured so far
                st.pow_acc[2] = math.sqrt(st.pow_acc[0] / st.pow_acc[1] * self._noise_scale)
        self._gain = 0.0 if p.blocked else math.sqrt(gain2)
        self._pn_sigma = 0.0
        if p.phase_noise_dbc_hz is not None:
            self._pn_sigma = 2 * math.pi * p.phase_noise_offset_hz * math.sqrt(10 ** (p.phase_noise_dbc_hz / 10) / fs)
        self._params = p
        self._ensure_ring(self._max_delay_samples(self._n))

    def _configure_fading(self, p: ChannelParams, initial: bool) -> None:
        fs = self.sample_rate_hz
        delays, powers, los = self._taps(p)
        fading_on = p.tdl is not None or (p.k_factor_db is not None and p.k_factor_db != math.inf)
        n_sin = p.n_sinusoids
        prev = self._fad
        if initial or prev.get("n_taps") != len(delays) or prev.get("n_sin") != n_sin:
            if self._state is None:
                self._state = _State(len(delays), n_sin)
                self._state.noise_state[0] = seed_key(self._s_noise)
                self._state.pn_state[0] = seed_key(self._s_pn)
            st = self._state
            st.fad_phase = self._fad_rng.uniform(0, 2 * np.pi, (len(delays), n_sin))
            # arrival angles alpha_n = (2 pi n - pi + theta) / (4 M), n = 1..M, in the first quadrant; the
            # in-phase rail moves at f_D cos(alpha_n), the quadrature rail at f_D sin(alpha_n) (Jakes spectrum)
            m = n_sin // 2
            theta = self._fad_rng.uniform(-np.pi, np.pi, (len(delays), 1))
            alpha = (2 * np.pi * np.arange(1, m + 1) - np.pi + theta) / (4 * m)
            self._fad_cos = np.concatenate([np.cos(alpha), np.sin(alpha)], axis=1)
            self._los_phase = np.exp(2j * np.pi * self._fad_rng.uniform(0, 1, len(delays)))
            st.fad_h = np.zeros((len(delays), 2), np.complex128)
            st.fad_dphase = np.zeros((len(delays), n_sin))
        else:  # bring the sinusoid phases from the next grid point back to now
            st = self._state
            g0, u = prev["g0"], prev["u"]
            g_b = g0 + u * math.ceil((self._n - g0) / u)
            st.fad_phase = st.fad_phase - st.fad_dphase / u * (g_b - self._n)
        u = 4096 if p.max_doppler_hz == 0 else int(min(4096, max(1, fs / (64 * p.max_doppler_hz))))
        st.fad_dphase = 2 * np.pi * p.max_doppler_hz * self._fad_cos * u / fs
        los_amp = np.zeros(len(delays), np.complex128)
        nlos_amp = np.zeros(len(delays))
        for l in range(len(delays)):
            if p.tdl is not None:
                k_lin = math.inf if los[l] else 0.0
            else:
                k_lin = 0.0 if p.k_factor_db in (None, -math.inf) else 10 ** (p.k_factor_db / 10)
            w_los = 1.0 if math.isinf(k_lin) else k_lin / (k_lin + 1)
            los_amp[l] = math.sqrt(powers[l] * w_los) * self._los_phase[l]
            nlos_amp[l] = math.sqrt(powers[l] * (1 - w_los))
        for l in range(len(delays)):  # the value at "now", the first grid point of the new segment
            st.fad_h[l, 1] = los_amp[l] + nlos_amp[l] * sos_value(st.fad_phase, l)
        self._fad = {"n_taps": len(delays), "n_sin": n_sin, "g0": self._n, "u": u, "on": fading_on,
                     "los": los_amp, "nlos": nlos_amp, "tap_delay": delays * fs}

    def _max_delay_samples(self, n_end: int) -> float:
        s = self._seg
        tau = min(max(s["tau0"], s["tau0"] + s["tau_rate"] * (n_end - s["n_seg"])), MAX_DELAY_SAMPLES)
        return tau + float(np.max(self._fad["tap_delay"])) + 8

    def _ensure_ring(self, need: float) -> None:
        st = self._state
        old_size = st.ring.shape[0] - RING_PAD
        if need < old_size - 1:
            return
        # at least 4096 more than the reach of any read, so that a run's copy into the ring (< 4096 samples)
        # never overwrites history that the same run still reads
        size = 1 << int(math.ceil(math.log2(need * 1.25 + 4096)))
        new = np.zeros(size + RING_PAD, np.complex64)
        m = np.arange(max(0, self._n - old_size), self._n)
        new[m & (size - 1)] = st.ring[m & (old_size - 1)]
        new[size:] = new[:RING_PAD]
        st.ring = new

    def update(self, **changes: Any) -> None:
        """Change parameters from the next sample on (phase continuous; delay continuous unless delay_s given).

        Raises ValueError naming an unknown parameter or a bad value.
        """
        names = {f.name for f in dataclasses.fields(ChannelParams)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown channel parameter(s) {unknown}; known: {sorted(names)}")
        self._configure(dataclasses.replace(self._params, **changes), delay_given="delay_s" in changes)

    # ------------------------------------------------------------------------------------------ streaming
    def process(self, block: SampleBlock | np.ndarray) -> SampleBlock | np.ndarray:
        """Pass one block through the channel (see the class docstring)."""
        if isinstance(block, SampleBlock):
            if abs(block.sample_rate_hz - self.sample_rate_hz) > 1e-6 * self.sample_rate_hz:
                raise ValueError(
                    f"block sample_rate_hz = {block.sample_rate_hz} differs from the emulator's "
                    f"{self.sample_rate_hz}; resample first or build the emulator at the block's rate"
                )
            return block.with_samples(self._run(block.samples))
        x = np.asarray(block)
        if x.dtype != np.complex64 or x.ndim != 1:
            raise ValueError(f"samples must be a 1-D complex64 array; got {x.dtype} shape {x.shape}")
        return self._run(x)

    __call__ = process

    def _run(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        out = np.empty(n, np.complex64)
        if n == 0:
            return out
        x = self._sanitize(x)
        self._ensure_ring(self._max_delay_samples(self._n + n))
        st, s, f = self._state, self._seg, self._fad
        if self.realtime and self._wall0 is None:
            self._wall0 = time.perf_counter() - self._n / self.sample_rate_hz
        channel_kernel(
            x, out, st.ring, self._n,
            s["tau0"], s["tau_rate"], s["n_seg"], float(MAX_DELAY_SAMPLES), f["tap_delay"],
            s["phi"], s["f"], s["r"], st.rot,
            f["on"], f["los"], f["nlos"], f["u"], f["g0"], st.fad_phase, st.fad_dphase, st.fad_h,
            self._gain, self._noise_mode, self._noise_scale, st.pow_acc, st.noise_state,
            self._pn_sigma, st.pn_rot, st.pn_state,
        )
        self._n += n
        if self.realtime:
            lag = time.perf_counter() - (self._wall0 + self._n / self.sample_rate_hz)
            self.lag_s = max(lag, 0.0)
            self.max_lag_s = max(self.max_lag_s, lag)
            if lag > LATE_AFTER_S:
                self.late_blocks += 1  # behind the wall clock: counted, never hidden
            elif lag < 0:
                time.sleep(-lag)
        return out

    def reset_lag(self) -> None:
        """Forget the real-time lag statistics so far (the clock stays as it is): to measure a steady state
        after a warm-up, as `bench emulator` does."""
        self.max_lag_s = self.lag_s
        self.late_blocks = 0

    def _sanitize(self, x: np.ndarray) -> np.ndarray:
        """A contiguous, writable copy-if-needed of x with NaN/inf samples zeroed and |I|, |Q| > MAX_ABS_SAMPLE
        clipped, both counted: one bad sample must not reach the running power (it would set the noise
        level of the rest of the stream) or the output."""
        x = np.ascontiguousarray(x)
        if not x.flags.writeable:
            x = x.copy()  # one kernel signature for every caller
        iq = x.view(np.float32)
        if not outside(iq, MAX_ABS_SAMPLE):
            return x
        x = x.copy()
        iq = x.view(np.float32).reshape(-1, 2)
        bad = ~np.isfinite(iq).all(axis=1)
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            x[bad] = 0
            self.nonfinite_samples += n_bad
        big = (np.abs(iq) > MAX_ABS_SAMPLE).any(axis=1)
        n_big = int(np.count_nonzero(big))
        if n_big:
            np.clip(iq, -MAX_ABS_SAMPLE, MAX_ABS_SAMPLE, out=iq)
            self.clipped_samples += n_big
        return x

    def current_delay_s(self) -> float:
        """The bulk delay applied to the next sample (propagation + accumulated clock offset), seconds."""
        s = self._seg
        tau = min(max(0.0, s["tau0"] + s["tau_rate"] * (self._n - s["n_seg"])), MAX_DELAY_SAMPLES)  # as the kernel
        return tau / self.sample_rate_hz

    def latency_samples(self) -> int:
        """Samples of zeros to feed after a burst so all of it comes out: the current delay plus the longest
        tap plus the interpolator's reach."""
        return int(math.ceil(self.current_delay_s() * self.sample_rate_hz + float(np.max(self._fad["tap_delay"])))) + 3

    def stats(self) -> dict[str, Any]:
        """Counters and the parameters in force (JSON-safe)."""
        st = self._state
        return {
            "samples": self._n,
            "time_s": self._n / self.sample_rate_hz,
            "sample_rate_hz": self.sample_rate_hz,
            "input_power": float(st.pow_acc[0] / st.pow_acc[1]) if st.pow_acc[1] else None,
            "nonfinite_samples": self.nonfinite_samples,
            "clipped_samples": self.clipped_samples,
            "delay_s": self.current_delay_s(),
            "params": {k: v for k, v in dataclasses.asdict(self._params).items()},
            "realtime": {"lag_s": self.lag_s, "max_lag_s": self.max_lag_s, "late_blocks": self.late_blocks,
                         "late_after_s": LATE_AFTER_S} if self.realtime else None,
        }

    # ------------------------------------------------------------------------------------------ scenario
    @classmethod
    def for_link(
        cls, scenario: Any, tx: str, rx: str, sample_rate_hz: float, carrier_hz: float | None = None,
        seed: int = 0, realtime: bool = False, update_interval_s: float = 0.01, doppler_scale: float = 1.0,
        interference: bool = True, **overrides: Any,
    ) -> "ScenarioChannel":
        """An emulator whose delay, Doppler, SNR and fading follow `scenario.link_state(tx, rx, t)`.

        The block's start_time_s is scenario time; parameters are refreshed every update_interval_s of
        stream (at fixed sample indices, so chunking does not change the output), the delay and Doppler
        moving linearly in between. doppler_scale is the fraction of the carrier Doppler applied (0 = the
        receiver pre-compensates it; keep |Doppler| + bandwidth/2 below sample_rate_hz/2 otherwise).
        `overrides` fix ChannelParams fields (e.g. cfo_ppm, tdl, snr_db). interference=False leaves the other
        UAVs' power out of a UAV -> user link's SNR, for a caller that adds their signals itself.
        """
        from sagin_hil.phy.channel.link_emulator import ScenarioChannel

        return ScenarioChannel(scenario, tx, rx, sample_rate_hz, carrier_hz, seed, realtime, update_interval_s,
                               overrides, doppler_scale, interference)


def warm_up() -> float:
    """Compile the kernels (or load them from numba's cache) now; returns the seconds it took.

    Services call this at start so the first block of a connection never waits for the compiler (3-5 s
    on a loaded machine: longer than libiio's 5 s read timeout). One block through an emulator with
    every stage on gives the signature every ChannelEmulator uses (floats are coerced in ChannelParams).
    """
    global _WARM
    t0 = time.perf_counter()
    with _WARM_LOCK:
        if not _WARM:
            p = ChannelParams(snr_db=10.0, delay_s=1e-6, k_factor_db=3.0, max_doppler_hz=10.0,
                              phase_noise_dbc_hz=-80.0)
            ChannelEmulator(1e6, 1e9, p, seed=0).process(np.ones(64, np.complex64))
            _WARM = True
    return time.perf_counter() - t0


_WARM = False
_WARM_LOCK = threading.Lock()
