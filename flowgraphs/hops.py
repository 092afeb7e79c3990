"""One hop at sample level: packets -> PHY -> channel (emulator or radio) -> PHY -> packets, with ARQ.

A payload is cut into packets of `packet_bytes`; each packet is an independent PHY packet (bursts with
their own headers and CRC-protected LDPC code blocks). The packets of one round go out back to back as one
continuous sample stream, so the channel sees one transmission. The receiver knows the link geometry from
the ephemeris, so it pre-compensates the predicted Doppler and opens a window around each packet's predicted
arrival; a receiver with a late ephemeris (`ephemeris_time_error_s`) is left a residual Doppler that the
PHY's synchroniser must take out. Packets that fail are sent again in the next ARQ round, after a NACK
that costs one propagation delay. Analog payloads (deep JSCC symbols, `send_symbols`) go out once as one
analog packet: there is no CRC to ask for a resend, the receiver keeps what it heard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sagin_hil.datatypes import LinkReport, SampleBlock
from sagin_hil.phy.channel.emulator import ChannelEmulator
from sagin_hil.phy.link import ANALOG, LinkConfig, PacketReceiver, PacketTransmitter
from sagin_hil.phy.pulse import RrcInterpolator
from sagin_hil.phy.sync import Rotator
from sagin_hil.progress import StageClock

__all__ = ["Hop", "EmulatedHop", "RadioHop", "HopResult"]

GUARD_SYMBOLS = 64  # silence between packets of one round
WINDOW_MARGIN_S = 20e-6  # receive window slack around the predicted arrival (ephemeris delay error) ...
WINDOW_MARGIN_SYMBOLS = 64  # ... and at least this many symbols (filter delays, timing search)


@dataclass
class HopResult:
    """What one hop delivered, and what its receiver measured."""

    payload: bytes  # failed packets zero-filled, same length as sent
    delivered: bool  # every packet passed its CRCs
    air_time_s: float  # transmit time of all rounds
    delay_s: float  # first sample sent -> last packet received, incl. NACK feedback between rounds
    retransmissions: int  # packets sent again
    report: LinkReport
    symbols: np.ndarray | None = field(default=None, repr=False)  # equalised payload symbols (plots)
    blocks: int = 0
    block_errors: int = 0
    analog: np.ndarray | None = field(default=None, repr=False)  # equalised analog symbols (send_symbols)
    analog_snr_db: float = float("nan")  # the SNR to tell an analog decoder (RxPacket.analog_snr_db)


class Hop:
    """One hop's PHY ends and ARQ; subclasses say how samples cross the channel (`_channel`).

    Parameters
    ----------
    scenario: phy.channel.scenario.Scenario (the receiver's ephemeris: predicted delay and Doppler)
    tx, rx: node names of the hop's ends.
    phy: flowgraphs.config.PhyConfig
    seed: randomness of the channel (noise, fading).
    """

    # A channel that knows the geometry delays the stream by the propagation delay; a cabled radio does not.
    follows_scenario = True

    def __init__(self, scenario, tx: str, rx: str, phy, seed: int = 0) -> None:
        self.scenario, self.tx, self.rx, self.phy = scenario, tx, rx, phy
        self.link_id = f"{tx}->{rx}"
        self.sample_rate_hz = phy.symbol_rate_hz * phy.sps
        self.link = LinkConfig(
            symbol_rate_hz=phy.symbol_rate_hz, sps=phy.sps, rolloff=phy.rolloff, iterations=phy.ldpc_iterations
        )
        self.modulator = PacketTransmitter(self.link)
        self.demodulator = PacketReceiver(self.link)
        self._seq = 0
        self.clock = StageClock()  # wall time in "transmit", "channel" and "receive"
        self.recorder = None  # a BurstRecordingWriter once record_to() is called

    def record_to(self, directory) -> None:
        """Write every round's received samples to DIRECTORY/<tx>-<rx>.sigmf-meta/-data (calibration.recordings),
        with each burst's transmit sample, MCS and sequence number, and the ephemeris' delay and Doppler."""
        from pathlib import Path

        from sagin_hil.calibration.recordings import BurstRecordingWriter

        st = self.scenario.link_state(self.tx, self.rx, 0.0)
        self.recorder = BurstRecordingWriter(
            Path(directory) / f"{self.tx}-{self.rx}", self.sample_rate_hz, st.carrier_hz, self.phy.sps,
            self.phy.rolloff, self.link_id, f"{self.link_id}: received samples of a sagin-hil run",
            {"sagin:time_aligned": self.follows_scenario, "sagin:symbol_rate_hz": self.phy.symbol_rate_hz})

    def _record(self, out: np.ndarray, t_s: float, waves, seqs, offsets, mcs: str, predicted) -> None:
        from sagin_hil.calibration.recordings import burst_offsets

        bursts = []
        for off, w, seq in zip(offsets, waves, seqs):
            starts = burst_offsets(w, self.phy.sps, self.phy.rolloff) or [0]
            for b0, b1 in zip(starts, starts[1:] + [w.size]):
                bursts.append((off + b0, b1 - b0, {"mcs": mcs, "seq": int(seq), "waveform": "packets"}))
        self.recorder.append(out, t_s, bursts, {"sagin:predicted_delay_s": predicted.delay_s,
                                                "sagin:predicted_doppler_hz": predicted.doppler_hz})

    def _channel(self, stream: np.ndarray, t_s: float) -> np.ndarray:
        """The stream as received (time aligned: sample k left the transmitter at t_s + k / fs)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the channel holds (radios, servers) and finish a recording."""
        if self.recorder is not None:
            self.recorder.close()

    # -- one round: packets back to back through the channel --------------------------------------------
    def _round(self, waves: list[np.ndarray], seqs: list[int], t_s: float, mcs: str = ""):
        """Modulated packets `waves` (sequence numbers `seqs`) through the channel; returns
        ([(RxPacket or None, window start)], air time s, propagation delay s)."""
        guard = np.zeros(GUARD_SYMBOLS * self.phy.sps, np.complex64)
        offsets, pieces, pos = [], [], 0
        for w in waves:
            offsets.append(pos)
            pieces += [w, guard]
            pos += len(w) + len(guard)
        state = self.scenario.link_state(self.tx, self.rx, t_s)
        # The receiver's view of the geometry: the ephemeris evaluated at a slightly wrong time.
        predicted = self.scenario.link_state(self.tx, self.rx, t_s + self.phy.ephemeris_time_error_s)
        tail = int(math.ceil((max(state.delay_s, predicted.delay_s) + 2 * WINDOW_MARGIN_S) * self.sample_rate_hz))
        tail += 2 * WINDOW_MARGIN_SYMBOLS * self.phy.sps
        with self.clock("channel"):
            out = self._channel(np.concatenate(pieces + [np.zeros(tail, np.complex64)]), t_s)
        if self.recorder is not None:
            self._record(out, t_s, waves, seqs, offsets, mcs, predicted)
        with self.clock("receive"):
            return self._receive(out, waves, seqs, offsets, state, predicted, pos)

    def _receive(self, out, waves, seqs, offsets, state, predicted, pos):
        """The receiver's side of a round: undo the predicted Doppler, then demodulate each packet's window."""
        margin = max(int(WINDOW_MARGIN_S * self.sample_rate_hz), WINDOW_MARGIN_SYMBOLS * self.phy.sps)
        if self.follows_scenario:
            fs = self.sample_rate_hz  # mix out the predicted Doppler f(t) = f0 + rate * t
            out = Rotator(-predicted.doppler_hz / fs, -predicted.doppler_rate_hz_per_s / fs**2)(out)
            lag = int(round(predicted.delay_s * self.sample_rate_hz))
        else:  # a cyclic capture of unknown latency: the first packet heard, by its sequence number, tells it
            period = len(out) // 2  # Radio.loopback captures two periods of the cyclic transmission
            first = self.demodulator.demodulate(out[: period + len(max(waves, key=len))])
            k = seqs.index(first.seq) if first is not None and first.header_ok and first.seq in seqs else 0
            lag = (first.start_sample - offsets[k]) % period if first is not None else 0
        results = []
        for off, w in zip(offsets, waves):
            lo = max(off + lag - margin, 0)
            results.append((self.demodulator.demodulate(out[lo : off + lag + len(w) + margin]), lo))
        return results, pos / self.sample_rate_hz, state.delay_s

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % 65536
        return self._seq

    def send(self, payload: bytes, mcs: str, t_s: float, max_retransmissions: int = 0) -> HopResult:
        """Carry `payload` over the hop starting at scenario time t_s; ARQ until delivered or out of rounds."""
        size = self.phy.packet_bytes
        chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        received: list[bytes | None] = [None] * len(chunks)
        pending = list(range(len(chunks)))
        air = elapsed = 0.0
        retx = blocks = block_errors = 0
        snrs, evms, cfos, bers, delays, symbols = [], [], [], [], [], []
        for round_no in range(max_retransmissions + 1):
            if not pending:
                break
            if round_no:
                retx += len(pending)
            seqs = [self._next_seq() for _ in pending]
            with self.clock("transmit"):
                waves = [self.modulator.modulate(chunks[i], mcs, seq) for i, seq in zip(pending, seqs)]
            results, round_air, prop_s = self._round(waves, seqs, t_s + elapsed, mcs)
            air += round_air
            elapsed += round_air + prop_s + (prop_s if round_no else 0.0)  # data + (NACK before a resend)
            still = []
            for i, (pkt, lo) in zip(pending, results):
                heard = pkt is not None and pkt.header_ok
                ok = heard and bool(np.all(pkt.block_ok))
                if heard and pkt.n_blocks:
                    blocks += pkt.n_blocks
                    block_errors += int(np.count_nonzero(~np.asarray(pkt.block_ok)))
                else:  # a packet never heard counts as one lost block
                    blocks += 1
                    block_errors += not ok
                if heard:
                    snrs.append(pkt.snr_db)
                    evms.append(pkt.evm_rms)
                    cfos.append(pkt.cfo_hz)
                    if np.isfinite(pkt.ber):
                        bers.append(pkt.ber)
                    delays.append((lo + pkt.start_sample) / self.sample_rate_hz)
                    if getattr(pkt, "symbols", None) is not None and len(symbols) < 4:
                        symbols.append(np.asarray(pkt.symbols))
                if ok:
                    received[i] = pkt.payload[: len(chunks[i])]
                else:
                    still.append(i)
                    if heard and received[i] is None:
                        received[i] = pkt.payload[: len(chunks[i])]  # best effort if ARQ runs out
            pending = still
        data = b"".join(r if r is not None else bytes(len(c)) for r, c in zip(received, chunks))
        snr_db = float(10 * np.log10(np.mean(10 ** (np.asarray(snrs) / 10)))) if snrs else -50.0
        report = LinkReport(
            link_id=self.link_id,
            time_s=t_s,
            snr_db=float(np.clip(snr_db, -50.0, 100.0)),
            evm_rms=float(np.mean(evms)) if evms else float("nan"),
            cfo_hz=float(np.mean(cfos)) if cfos else 0.0,
            ber=float(np.mean(bers)) if bers else float("nan"),
            bler=block_errors / blocks if blocks else float("nan"),
            delay_s=float(np.mean(delays)) if delays else float("nan"),
            n_blocks=blocks,
        )
        return HopResult(
            payload=data,
            delivered=not pending,
            air_time_s=air,
            delay_s=elapsed,
            retransmissions=retx,
            report=report,
            symbols=np.concatenate(symbols) if symbols else None,
            blocks=blocks,
            block_errors=block_errors,
        )

    def send_symbols(self, symbols: np.ndarray, t_s: float, side: bytes = b"") -> HopResult:
        """Carry analog `symbols` (complex, unit mean power) and `side` information (<= 64 bytes, e.g. the
        codec's header, protected like a burst header) over the hop at scenario time t_s, once.

        Output: HopResult with `analog` = the equalised symbols (zeros where a burst was lost, all zeros when
        nothing was heard), payload = the side information (b"" when no copy decoded), and the receiver's
        measurements; blocks count the bursts."""
        seq = self._next_seq()
        sym = np.asarray(symbols, np.complex64)
        with self.clock("transmit"):
            wave = self.modulator.modulate_symbols(sym, seq, side)
        [(pkt, lo)], air, prop_s = self._round([wave], [seq], t_s, ANALOG)
        heard = pkt is not None and pkt.header_ok and pkt.mcs == ANALOG and pkt.analog is not None
        n_bursts = pkt.n_bursts if heard else 1
        lost = int(np.count_nonzero(~pkt.block_ok)) if heard else 1
        report = LinkReport(
            link_id=self.link_id,
            time_s=t_s,
            snr_db=float(np.clip(pkt.snr_db, -50.0, 100.0)) if heard else -50.0,
            evm_rms=pkt.evm_rms if heard else float("nan"),
            cfo_hz=pkt.cfo_hz if heard else 0.0,
            ber=float("nan"),
            bler=lost / n_bursts,
            delay_s=(lo + pkt.start_sample) / self.sample_rate_hz if heard else float("nan"),
            n_blocks=n_bursts,
        )
        return HopResult(
            payload=pkt.payload if heard else b"",
            delivered=heard and lost == 0 and pkt.payload == bytes(side),
            air_time_s=air,
            delay_s=air + prop_s,
            retransmissions=0,
            report=report,
            symbols=pkt.symbols if heard else None,
            blocks=n_bursts,
            block_errors=lost,
            analog=pkt.analog if heard else np.zeros(sym.size, np.complex64),
            analog_snr_db=float(np.clip(pkt.analog_snr_db, -50.0, 100.0)) if heard else -50.0,
        )


class EmulatedHop(Hop):
    """A hop through the software channel emulator, driven by the scenario in virtual time.

    On a UAV -> user hop of a scenario with `air_ground.interference`, the other UAVs interfere at sample
    level (Eq. 6 of [P000]): each sends its own random QPSK waveform, shaped like ours, through its own
    channel to this user (its delay, Doppler, fading), at its power relative to ours, and the receiver gets
    the sum; the emulator's noise then leaves their power out (the link budget's SINR is the noise-floor
    form of the same sum). As in Eq. 6, the other UAVs are taken to transmit all the time.
    """

    def __init__(self, scenario, tx: str, rx: str, phy, seed: int = 0) -> None:
        super().__init__(scenario, tx, rx, phy, seed)
        # The link budget's SNR is over the link's bandwidth B; the emulator's is per sample over the sample
        # rate fs. Declaring the unit-power modem output as fs / B keeps the noise density N0 of the budget,
        # so the receiver's Es/N0 = SNR_B * B / symbol rate, as on the real link.
        bandwidth_hz = scenario.link_state(tx, rx, 0.0).bandwidth_hz
        signals = (scenario.config.air_ground.interference and scenario.node_kind(tx) == "uav"
                   and scenario.node_kind(rx) == "user")
        cal = scenario.calibration(tx, rx)  # a calibrated link's oscillator offset is the measured one
        self.emulator = ChannelEmulator.for_link(
            scenario, tx, rx, self.sample_rate_hz, cfo_ppm=cal["cfo_ppm"] if cal else phy.cfo_ppm, seed=seed,
            signal_power=self.sample_rate_hz / bandwidth_hz, interference=not signals,
        )
        self.interferers = []
        for k, other in enumerate(u for u in scenario.uavs if signals and u != tx):
            channel = ChannelEmulator.for_link(  # noiseless: the noise is the desired link's emulator's
                scenario, other, rx, self.sample_rate_hz, cfo_ppm=phy.cfo_ppm, seed=seed * 7919 + k + 1,
                signal_power=1.0, snr_db=200.0, interference=False,
            )
            self.interferers.append((other, channel, RrcInterpolator(phy.sps, phy.rolloff),
                                     np.random.default_rng(seed * 7919 + k + 1)))

    def _channel(self, stream: np.ndarray, t_s: float) -> np.ndarray:
        out = self.emulator.process(SampleBlock(stream, self.sample_rate_hz, start_time_s=t_s)).samples
        if self.interferers:
            # each interferer's power relative to ours is the ratio of the two links' SNRs (same noise)
            snr_db = self.scenario.link_state(self.tx, self.rx, t_s, interference=False).snr_db
            n_sym = -(-len(stream) // self.phy.sps)
            for other, channel, shaper, rng in self.interferers:
                bits = rng.integers(0, 2, (n_sym, 2))
                wave = shaper(((2 * bits[:, 0] - 1) + 1j * (2 * bits[:, 1] - 1)) / np.sqrt(2))[: len(stream)]
                heard = channel.process(SampleBlock(wave, self.sample_rate_hz, start_time_s=t_s)).samples
                rel_db = self.scenario.link_state(other, self.rx, t_s, interference=False).snr_db - snr_db
                out = out + np.float32(10 ** (rel_db / 20)) * heard
        return out.astype(np.complex64)


def open_hop_radio(radio: dict, sample_rate_hz: float, scenario=None, link: str | None = None, seed: int = 0):
    """Open the flowgraph's radio; returns (radio, server).

    radio: the flowgraph's [radio] table (kind + RadioConfig keys; a `receiver` sub-table is left to the
    caller). For kind "pluto-emu" without a uri, an emulated Pluto is started whose channel is `link` of
    `scenario` (server, to close with the radio).
    """
    from sagin_hil.hil.radio import open_radio

    settings = {k: v for k, v in radio.items() if k not in ("kind", "receiver")}
    settings.setdefault("sample_rate_hz", sample_rate_hz)
    server = None
    if radio["kind"] == "pluto-emu" and not settings.get("uri"):
        from sagin_hil.hil.iiod import start_pluto_emulator

        server = start_pluto_emulator(scenario=scenario, link=link, seed=seed)
        settings["uri"] = server.uri
    try:
        return open_radio({"kind": radio["kind"], **settings}), server
    except Exception:
        if server is not None:
            server.close()
        raise


class RadioHop(Hop):
    """A hop through a radio front end (`hil.radio`), TX and RX on the same device.

    kind "pluto-emu": each hop gets its own emulated Pluto whose channel is this hop of the scenario, driven
    through unmodified pyadi-iio; the stream is time aligned, so the ephemeris predicts delay and Doppler.
    Other kinds: every hop shares the bench's radios (`shared` = (transmitter, receiver)): one Pluto or
    SoapySDR radio with TX cabled to RX through an attenuator (the same radio twice), or two radios. The
    stream goes out cyclically and is captured back (`Radio.loopback`); the receiver finds the packets by
    their preambles and sequence numbers.
    """

    TX_PEAK = 0.7  # full scale is 1; leave headroom for the DAC

    def __init__(self, scenario, tx: str, rx: str, phy, radio: dict, seed: int = 0, shared=None) -> None:
        super().__init__(scenario, tx, rx, phy, seed)
        self.follows_scenario = radio["kind"] == "pluto-emu" and shared is None
        if shared is not None:
            (self.radio, self.receiver), self.server, self._owns_radio = shared, None, False
        else:
            self.radio, self.server = open_hop_radio(radio, self.sample_rate_hz, scenario, self.link_id, seed)
            self.receiver, self._owns_radio = self.radio, True

    def _channel(self, stream: np.ndarray, t_s: float) -> np.ndarray:
        x = stream * (self.TX_PEAK / max(float(np.max(np.abs(stream))), 1e-12))
        if self.server is not None:
            self.server.set_scenario_time(t_s)
            y = self.radio.transfer(x).samples
        else:
            y = self.radio.loopback(x, receiver=self.receiver).samples
        rms = float(np.sqrt(np.mean(np.abs(y) ** 2)))
        return (y / max(rms, 1e-12)).astype(np.complex64)  # the modem expects about unit power

    def close(self) -> None:
        super().close()
        if self._owns_radio:
            self.radio.close()
        if self.server is not None:
            self.server.close()


class ReplayHop(Hop):
    """A hop whose receiver is fed a recording (radio kind "replay", uri = the folder `sagin-hil run --record`
    wrote): each round reads the next capture of DIR/<tx>-<rx>.sigmf-meta through the replay radio, which keeps
    the recording's carrier and refuses another sample rate. Replaying the flowgraph and seed that recorded
    it sends the same rounds in the same order, so the receiver decodes what it decoded then."""

    def __init__(self, scenario, tx: str, rx: str, phy, directory, seed: int = 0) -> None:
        from pathlib import Path

        from sagin_hil.hil.radio import RadioConfig, RadioError
        from sagin_hil.hil.recording import ReplayRadio

        super().__init__(scenario, tx, rx, phy, seed)
        path = Path(directory) / f"{tx}-{rx}.sigmf-meta"
        if not path.exists():
            raise RadioError(f"radio kind 'replay': no recording of {self.link_id} at {path}; record the run with "
                             f"`sagin-hil run --record {directory}` first")
        self.radio = ReplayRadio(RadioConfig(kind="replay", uri=str(path), sample_rate_hz=self.sample_rate_hz))
        self._starts = [int(c.get("core:sample_start", 0)) for c in self.radio.captures] + [len(self.radio.samples)]
        self._next = 0

    def _channel(self, stream: np.ndarray, t_s: float) -> np.ndarray:
        from sagin_hil.hil.radio import RadioError

        k = self._next
        if k + 1 >= len(self._starts):
            raise RadioError(f"the recording of {self.link_id} has {k} rounds; this run sends more: replay it with "
                             "the flowgraph and seed that recorded it")
        n = self._starts[k + 1] - self._starts[k]
        if n != len(stream):
            raise RadioError(f"round {k} of the {self.link_id} recording has {n} samples, this run sends "
                             f"{len(stream)}: replay it with the flowgraph and seed that recorded it")
        self._next += 1
        return self.radio.rx(n).samples

    def close(self) -> None:
        super().close()
        self.radio.close()
