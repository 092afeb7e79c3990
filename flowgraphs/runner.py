"""The runner: wires scenario, codecs, PHY hops and the controller into one experiment, and reports it.

Tasks come in frames (one task per frame along a pass, or every user's task at once). For each frame:
sound the hops of every task's candidate routes with a short probe packet (the receivers publish
LinkReports to the controller), send the controller a ControllerState over the control plane, and carry
out its Plan: UAVs fly toward their waypoints within their speed limit; each task is encoded in its mode
(codecs.modes.MODES: the budget follows from its Allocation) and crosses its route hop by hop at sample
level, each hop at its allocated power and bandwidth (the bandwidth sets the symbol rate) and MCS; digital
payloads are decoded and forwarded with ARQ, analog (JSCC) symbols amplified and forwarded. The user
decodes the image and the task is scored (PSNR, SSIM, delay, SCC).

Controllers named in [controller] compare run the same tasks in the same world (same seed), one after the
other, and are reported side by side. `run_flowgraph` keeps no global state: it returns its result, and
every run gets its own folder (a run id, not the time of day).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sagin_hil.controllers.world import candidate_routes
from sagin_hil.datatypes import Allocation, ControllerState, Plan, Task, link_id
from sagin_hil.flowgraphs.config import Flowgraph, FlowgraphError
from sagin_hil.flowgraphs.report import LinkTrace, TaskRecord, build_summary, mean_psnr_db, write_report
from sagin_hil.progress import StageClock

__all__ = ["run_flowgraph", "RunResult", "new_run_id"]

PROBE_BYTES = 96  # sounding packet payload
PROBE_MCS = "bpsk-1/2"  # the most robust MCS, so a probe is heard on any usable link
MIN_HOP_BANDWIDTH_HZ = 10e3  # a hop granted less (or no power) does not carry the task: it is not served


@dataclass
class RunResult:
    """summary: what summary.json holds; out_dir: the report folder; aborted: why the run stopped early
    (a radio vanished, Ctrl-C), or None. An aborted run still reports the tasks it finished."""

    summary: dict[str, Any]
    out_dir: Path
    aborted: str | None = None


def new_run_id(name: str) -> str:
    """A folder name no other run takes: name, time of day for the reader, and random hex for uniqueness."""
    return f"{name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _overlay(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over`'s keys set: tables merged key by key, everything else (lists included) replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _overlay(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _load_scenario(fg: Flowgraph):
    """The flowgraph's scenario: a file, the reference scenario, or the reference with an inline table's
    keys set over it (e.g. [scenario.space_air] excess_loss_db = 18 for a rain fade)."""
    import tomllib
    from importlib import resources

    from sagin_hil.phy.channel.scenario import Scenario, load_scenario

    path = fg.scenario_path()
    if path is not None:
        return load_scenario(path)
    if fg.scenario:
        reference = resources.files("sagin_hil.phy.channel") / "scenarios" / "default.toml"
        data = _overlay(tomllib.loads(reference.read_text()), fg.scenario)
        return Scenario.from_dict(data, source=f"{fg.source} [scenario] over the reference scenario")
    return Scenario.default()


def _load_images(fg: Flowgraph) -> list[tuple[str, np.ndarray]]:
    """The flowgraph's images: the user's files ([images] paths / dir), else the shipped ones."""
    from sagin_hil.codecs.images import image_files_in, load_image_files, load_images

    files = [Path(p).expanduser() for p in fg.images.paths]
    base = Path(fg.source).parent if not fg.source.startswith("<") else Path.cwd()
    files = [p if p.is_absolute() else base / p for p in files]
    if fg.images.dir:
        d = Path(fg.images.dir).expanduser()
        files += image_files_in(d if d.is_absolute() else base / d)
    if files:
        return load_image_files(files, fg.images.size_px)[: fg.images.count]
    from sagin_hil.codecs.images import image_names

    n = min(fg.images.count, len(image_names("run")))
    return load_images(n=n, size=fg.images.size_px or 256, split="run")


def _make_frames(fg: Flowgraph, images: list[tuple[str, np.ndarray]], scenario,
                 rng: np.random.Generator) -> list[list[Task]]:
    """Tasks grouped in frames: along the first satellite's pass one task per frame, or (arrival =
    "frames") every user one task per frame, images taken in turn."""
    t0, t1 = scenario.visibility_window(scenario.satellites[0], scenario.uavs[0])
    if not np.isfinite(t0):
        raise FlowgraphError(f"{fg.source}: {scenario.satellites[0]} never rises above the minimum elevation over "
                             f"{scenario.uavs[0]}; no task can be carried (check [scenario] min_elevation_deg and orbits)")
    if fg.tasks.arrival == "ftp3":  # Poisson arrivals at every LEO from the start of the first pass
        from sagin_hil.controllers.tasks import FtpModel3, TaskGenerator

        gen = TaskGenerator(FtpModel3(fg.tasks.rate_hz), scenario.satellites, scenario.users, fg.tasks.deadline_s,
                            fg.tasks.quality_min_db, fg.tasks.weight_quality, seed=int(rng.integers(2**31)))
        tasks = gen.generate_n(fg.tasks.count, [img for _, img in images])
        for t in tasks:
            t.arrival_s += t0
            t.name = images[t.task_id % len(images)][0]
        return [[t] for t in tasks]
    if fg.tasks.arrival == "frames":
        slots = [(t0 + fg.images.interval_s * (k + 0.5), list(scenario.users)) for k in range(fg.tasks.frames)]
    else:
        interval = min(fg.images.interval_s, (t1 - t0) / (len(images) + 1))
        users = scenario.users
        slots = [(t0 + interval * (i + 1), [users[i % len(users)]]) for i in range(len(images))]
    frames, i = [], 0
    for t, users in slots:
        frame = []
        for user in users:
            name, img = images[i % len(images)]
            frame.append(Task(
                task_id=i, image=img, source=scenario.satellites[0], destination=user,
                deadline_s=float(rng.uniform(*fg.tasks.deadline_s)),
                quality_min_db=float(rng.uniform(*fg.tasks.quality_min_db)), arrival_s=float(t),
                weight_quality=fg.tasks.weight_quality, weight_delay=1.0 - fg.tasks.weight_quality, name=name,
            ))
            i += 1
        frames.append(frame)
    return frames


def _print_table(console: Console, records: list[TaskRecord], title: str = "tasks") -> None:
    """The per-task table: the deadline and quality floor beside what was achieved, met or MISSED."""
    table = Table(title=title, header_style="bold")
    for col in ("#", "image", "route", "mode", "MCS per hop", "kbit", "air ms", "delay s / D_max",
                "PSNR dB / Q_min", "SSIM", "SCC"):
        table.add_column(col, justify="left" if col in ("image", "route", "MCS per hop") else "right")

    def mark(met: bool, text: str) -> str:  # the word survives where colour does not (logs, files)
        return f"[green]{text} met[/]" if met else f"[bold red]{text} MISSED[/]"

    for r in records:
        table.add_row(
            str(r.task_id), escape(r.name), r.route, r.mode, r.mcs, f"{r.bits / 1e3:.1f}", f"{1e3 * r.air_time_s:.1f}",
            mark(r.met_deadline, f"{r.delay_s:.3f} / {r.deadline_s:.2f}"),
            mark(r.met_quality, f"{r.psnr_db:.2f} / {r.quality_min_db:.1f}"), f"{r.ssim:.3f}", f"{r.scc:.3f}",
        )
    console.print(table)


class _Experiment:
    """The live parts of one controller's run: scenario, codecs, hops and the control-plane client."""

    def __init__(self, fg: Flowgraph, scenario, client, traces: dict[str, LinkTrace], mode_table: dict | None,
                 record_dir: Path | None = None) -> None:
        self.fg, self.scenario, self.client, self.traces = fg, scenario, client, traces
        self.record_dir = record_dir
        self.mode_table = mode_table
        self.codecs: dict[str, Any] = {}
        self.spiff_policy = _spiff_policy(fg)
        self.hops: dict[tuple[str, float], Any] = {}
        self.radios: list[Any] = []  # a bench's transmitter (and receiver), shared by every hop
        self.busy_until_s: dict[str, float] = {}  # transmitter (or FDMA link) -> busy until then: the queues
        self.clock = StageClock()  # this controller's wall time: sounding, planning, encode, hops, decode
        self.map_cache: dict[tuple, str] = {}  # (link, rounded end positions) -> class: hovering UAVs keep theirs
        self.map_checks: list[tuple[str, str]] = []  # (class given to the controller, the geometry's truth)

    # -- hops ---------------------------------------------------------------------------------------------
    def hop(self, tx: str, rx: str, bandwidth_hz: float | None = None):
        """The hop tx -> rx at `bandwidth_hz` (None: the flowgraph's symbol rate), built once per bandwidth.
        A bench's shared radios run at their configured sample rate, so there the allocation is not applied."""
        from sagin_hil.flowgraphs.hops import EmulatedHop, RadioHop, ReplayHop

        if self.fg.radio.kind not in ("emulated", "pluto-emu", "replay"):
            bandwidth_hz = None
        key = (link_id(tx, rx), round(bandwidth_hz or 0.0, 3))
        if key not in self.hops:
            phy = self.fg.phy
            if bandwidth_hz is not None:  # the allocated bandwidth sets the symbol rate
                phy = phy.model_copy(update={"symbol_rate_hz": bandwidth_hz / (1 + phy.rolloff)})
            seed = self.fg.seed * 1009 + len(self.hops)
            if self.fg.radio.kind == "emulated":
                self.hops[key] = EmulatedHop(self.scenario, tx, rx, phy, seed=seed)
            elif self.fg.radio.kind == "replay":
                self.hops[key] = ReplayHop(self.scenario, tx, rx, phy, self.fg.radio.model_dump()["uri"], seed=seed)
            else:
                shared = self._bench_radios() if self.fg.radio.kind != "pluto-emu" else None
                self.hops[key] = RadioHop(self.scenario, tx, rx, phy, self.fg.radio.model_dump(), seed, shared)
            if self.record_dir is not None:
                self.hops[key].record_to(self.record_dir)
        return self.hops[key]

    def _bench_radios(self):
        """The bench's (transmitter, receiver), opened once and shared by every hop: one radio with TX
        cabled to RX, or two when the flowgraph has a [radio.receiver] table."""
        from sagin_hil.flowgraphs.hops import open_hop_radio

        if not self.radios:
            cfg = self.fg.radio.model_dump()
            fs = self.fg.phy.symbol_rate_hz * self.fg.phy.sps
            transmitter, _ = open_hop_radio(cfg, fs)
            self.radios.append(transmitter)
            if cfg.get("receiver"):
                self.radios.append(open_hop_radio({"kind": cfg["kind"], **cfg["receiver"]}, fs)[0])
        return self.radios[0], self.radios[-1]

    def close(self) -> None:
        for h in self.hops.values():
            h.close()
        for r in self.radios:
            r.close()

    def codec(self, mode: str):
        from sagin_hil.codecs import get_codec
        from sagin_hil.codecs.modes import MODES

        if mode not in self.codecs:
            spec, c = MODES.get(mode), self.fg.codecs
            kwargs = {"weights_dir": c.weights_dir, "device": _torch_device(c.device)} if spec.user_weights else {}
            self.codecs[mode] = get_codec(spec.codec, **kwargs)
        return self.codecs[mode]

    def _send(self, tx: str, rx: str, data: bytes | tuple[np.ndarray, bytes], mcs: str, t_s: float,
              probe: bool = False, power_w: float | None = None, bandwidth_hz: float | None = None):
        """Carry `data` over one hop at the given power and bandwidth and record what its receiver measured;
        a probe gets no ARQ (and is not plotted). mcs "analog": data = (complex symbols, side information)."""
        nominal = power_w is None and bandwidth_hz is None
        self.scenario.set_link_allocation(tx, rx, power_w, bandwidth_hz)
        hop = self.hop(tx, rx, bandwidth_hz)
        if mcs == "analog":
            res = hop.send_symbols(data[0], t_s, side=data[1])
        else:
            res = hop.send(data, mcs, t_s, 0 if probe else self.fg.phy.max_retransmissions)
        if nominal:  # the controller reads reports as the link at its nominal power and bandwidth
            self.client.report(res.report)
        if res.report.link_id not in self.traces:
            self.traces[res.report.link_id] = _trace(self.scenario, tx, rx, self.fg)
        trace = self.traces[res.report.link_id]
        trace.measured_t_s.append(res.report.time_s)
        trace.measured_snr_db.append(res.report.snr_db)
        trace.blocks += res.blocks
        trace.block_errors += res.block_errors
        if not probe:
            trace.bler_points.append({"mcs": mcs, "snr_db": res.report.snr_db, "blocks": res.blocks,
                                      "errors": res.block_errors, "nominal": nominal})
        if not probe and res.symbols is not None and trace.constellation is None:
            trace.constellation, trace.mcs_of_constellation = res.symbols, mcs
        return res

    def channel_map(self, links: list[tuple[str, str]], t_s: float) -> dict[str, str]:
        """[P004]'s channel map of these air-ground links: "truth" from the buildings, a classifier's from
        features measured on a sounding of each link at its current channel (its SINR as Es/N0 at the
        flowgraph's symbol rate), or nothing ("off")."""
        how = self.fg.controller.channel_map
        if how == "off" or not links:
            return {}
        sc = self.scenario
        states = {link_id(a, b): sc.link_state(a, b, t_s) for a, b in links}
        truth = {lid: "los" if st.los else "nlos" for lid, st in states.items()}
        if how == "truth":
            out = truth
        else:
            keys = {link_id(a, b): (a, b, *np.round(sc.position_enu(a, t_s)).tolist(),
                                    *np.round(sc.position_enu(b, t_s)).tolist()) for a, b in links}
            todo = [lid for lid, key in keys.items() if key not in self.map_cache]
            if todo:
                import dataclasses

                from sagin_hil.calibration.channel_map import classify_links
                from sagin_hil.phy.channel.link_emulator import params_from_link_state

                params = []
                for lid in todo:
                    st = states[lid]
                    es_n0 = st.snr_db + 10 * np.log10(st.bandwidth_hz / self.fg.phy.symbol_rate_hz)
                    params.append(dataclasses.replace(params_from_link_state(st, cfo_ppm=self.fg.phy.cfo_ppm),
                                                      snr_db=float(np.clip(es_n0, -30, 60))))
                for lid, is_los in zip(todo, classify_links(params, how, seed=self.fg.seed)):
                    self.map_cache[keys[lid]] = "los" if is_los else "nlos"
            out = {lid: self.map_cache[key] for lid, key in keys.items()}
        self.map_checks += [(out[lid], truth[lid]) for lid in out]
        return out

    # -- a frame ------------------------------------------------------------------------------------------
    def state(self, tasks: list[Task], t_s: float) -> ControllerState:
        """Sound every candidate route's hops, then describe the world as the controller sees it."""
        from sagin_hil.phy.channel import link_budget as lb

        sc = self.scenario
        routes = {t.task_id: candidate_routes(sc, t.source, t.destination, t_s) for t in tasks}
        links = sorted({(a, b) for rs in routes.values() for r in rs for a, b in zip(r.nodes, r.nodes[1:])})
        with self.clock("sounding"):
            for a, b in links:
                self._send(a, b, bytes(PROBE_BYTES), PROBE_MCS, t_s, probe=True)
        rs = self.fg.phy.symbol_rate_hz
        with self.clock("channel map"):
            cmap = self.channel_map([(a, b) for a, b in links if sc.link_kind(a, b) == "air-ground"], t_s)
        predicted, prop, elevation = {}, {}, {}
        for a, b in links:
            lid = link_id(a, b)
            # the ephemeris knows the geometry, not the buildings: an air-ground link is LoS unless the map says not
            st = sc.link_state(a, b, t_s, los=cmap.get(lid, "los") == "los")
            prop[lid] = st.delay_s
            if st.kind == "space-air":
                elevation[lid] = float(st.elevation_deg)
            if math.isfinite(st.snr_db):  # Es/N0 at the flowgraph's symbol rate
                predicted[lid] = float(np.clip(st.snr_db + 10 * np.log10(st.bandwidth_hz / rs), -50, 100))
        # the flowgraph's symbol rate fixes the nominal bandwidth the controller plans with
        bw = {lid: rs * (1 + self.fg.phy.rolloff) for lid in prop}
        nodes = [*sc.uavs, *sc.users]
        ag = sc.config.air_ground
        noise_dbm = ag.noise_dbm if ag.noise_dbm is not None else lb.thermal_noise_dbw(ag.bandwidth_hz, ag.noise_temperature_k) + 30
        beta0 = ag.reference_gain_db if ag.reference_gain_db is not None else -lb.free_space_path_loss_db(1.0, ag.carrier_hz)
        return ControllerState(
            time_s=t_s, tasks=tasks, routes=routes, modes=list(self.fg.controller.modes),
            positions_m={n: tuple(float(c) for c in sc.position_enu(n, t_s)) for n in nodes},
            visible=[(s, u) for s in sc.satellites for u in sc.uavs if sc.link_state(s, u, t_s).visible],
            isl=[(a, b) for a in sc.satellites for b in sc.satellites
                 if a != b and sc.link_state(a, b, t_s).visible],
            reports={}, predicted_snr_db=predicted, propagation_delay_s=prop, bandwidth_hz=bw,
            elevation_deg=elevation,
            power_w={n: sc.tx_power_w(n) for n in [*sc.satellites, *sc.uavs]},
            rolloff=self.fg.phy.rolloff,
            user_kind={u: "semantic" if u in self.fg.tasks.semantic_users else "conventional" for u in sc.users},
            uav_limits={c.name: (c.altitude_min_m, c.altitude_max_m, c.max_speed_mps) for c in sc.config.uavs},
            channel_map=cmap,
            context={"relay": {"noise_psd_dbm_hz": noise_dbm - 10 * math.log10(ag.bandwidth_hz), "beta0_db": beta0}},
        )

    def fly(self, plan: Plan, t_s: float) -> float:
        """UAVs head for their waypoints at their speed limit; returns when the last one arrives (or t_s)."""
        arrive = t_s
        for uav, target in plan.waypoints_m.items():
            arrive = max(arrive, self.scenario.move_uav(uav, target, t_s))
        return arrive

    def carry(self, task: Task, alloc: Allocation, t_s: float, trail: dict[str, Any]) -> TaskRecord:
        """One task end to end along its allocation: encode, every hop at sample level, decode, score."""
        from sagin_hil.codecs import CodecError
        from sagin_hil.codecs.metrics import psnr, ssim
        from sagin_hil.codecs.modes import MODES
        from sagin_hil.controllers.scc import scc_weight
        from sagin_hil.phy.theory import relay_snr_db

        spec = MODES.get(alloc.mode)
        route = alloc.route
        links = list(zip(route.nodes, route.nodes[1:]))
        link_ids = route.links
        pixels = int(task.image.shape[0] * task.image.shape[1])
        starved = [lid for lid in link_ids if (alloc.hop(lid).power_w is not None and alloc.hop(lid).power_w <= 0)
                   or (alloc.hop(lid).bandwidth_hz is not None and alloc.hop(lid).bandwidth_hz < MIN_HOP_BANDWIDTH_HZ)]
        if starved:  # the controller gave this user nothing: nothing is sent, the user sees a grey frame
            shown = np.full_like(task.image, 128)
            quality_db = float(psnr(task.image, shown))
            trail = {**trail, "served": False, "why_not_served": f"no power or bandwidth on {', '.join(starved)}"}
            return TaskRecord(
                task_id=task.task_id, name=task.name, route=str(route), mode=alloc.mode, mcs="not served",
                compression_bpp=0.0, bits=0, air_time_s=0.0, delay_s=float("nan"), deadline_s=task.deadline_s,
                psnr_db=quality_db, ssim=float(ssim(task.image, shown)), quality_min_db=task.quality_min_db,
                scc=0.0, met_deadline=False, met_quality=quality_db >= task.quality_min_db, retransmissions=0,
                sent_image=task.image, received_image=None, predicted=dict(alloc.predicted), trail=trail,
                hop_rate_bps={lid: 0.0 for lid in link_ids}, fallback=alloc.fallback)
        codec = self.codec(alloc.mode)
        sounded = [self.traces[lid].measured_snr_db[-1] if self.traces.get(lid) and self.traces[lid].measured_snr_db
                   else 0.0 for lid in link_ids]
        budget = spec.budget(alloc.bits_per_pixel, pixels, relay_snr_db(sounded) if spec.analog else None)
        wall = time.perf_counter()
        try:
            if self.spiff_policy is not None and alloc.mode == "spiff":
                codec, decision = self._configure_spiff(codec, task, alloc, link_ids)
                trail = {**trail, "spiff": decision.to_dict()}
            payload = codec.encode(task.image, budget)
        except CodecError as exc:
            raise FlowgraphError(f"task {task.task_id} ({task.name}): {alloc.mode} cannot encode it: {exc}") from None
        bpp = 8 * len(payload.data) / pixels
        encode_wall_s = time.perf_counter() - wall
        self.clock.add("encode", encode_wall_s)
        encode_s = self._compute_s(spec, bpp, "encode", encode_wall_s)
        data, t, air, retx = payload.data, t_s + encode_s, 0.0, 0
        timeline = [{"stage": "encode", "start_s": t_s, "duration_s": encode_s}]
        symbols, gain, hop_snrs, analog_snrs, hop_rates = payload.symbols, 1.0, [], [], {}
        for (a, b), lid in zip(links, link_ids):  # decode (JSCC: amplify) and forward, hop by hop
            h = alloc.hop(lid)
            # first come, first served: a transmitter sends one thing at a time on its band, unless the plan
            # gave this hop its own share of the band (FDMA), which is then its own queue
            queue = lid if h.bandwidth_hz is not None else a
            start = max(t, self.busy_until_s.get(queue, -math.inf))
            hop_wall = time.perf_counter()
            if spec.analog:  # the codec header rides in the analog packet as protected side information
                res = self._send(a, b, (symbols, data), "analog", start, power_w=h.power_w, bandwidth_hz=h.bandwidth_hz)
                power = max(float(np.mean(np.abs(res.analog) ** 2)), 1e-12)  # the relay renormalises ...
                symbols, gain = res.analog / np.sqrt(power), gain * np.sqrt(power)  # ... the user undoes it
            else:
                res = self._send(a, b, data, h.mcs, start, power_w=h.power_w, bandwidth_hz=h.bandwidth_hz)
            self.clock.add("hops", time.perf_counter() - hop_wall)
            hop_snrs.append(res.report.snr_db)
            analog_snrs.append(res.analog_snr_db)  # on fading: of the error the deep-fade guard left
            hop_rates[lid] = self._hop_rate_bps(res, h)
            self.busy_until_s[queue] = start + res.air_time_s
            queue_s = start - t
            data, t, air, retx = res.payload, start + res.delay_s, air + res.air_time_s, retx + res.retransmissions
            timeline.append({"stage": "hop", "link": lid, "start_s": start, "duration_s": res.delay_s, "queue_s": queue_s,
                             "air_s": res.air_time_s, "propagation_s": self.scenario.link_state(a, b, start).delay_s,
                             "retransmissions": res.retransmissions, "mcs": h.mcs, "snr_db": res.report.snr_db})
        wall = time.perf_counter()
        try:
            if spec.analog:
                received = codec.decode(data, symbols=symbols * gain, snr_db=relay_snr_db(analog_snrs))
            else:
                received = codec.decode(data)
        except CodecError:
            received = None  # an erasure: the user sees a grey frame
        decode_wall_s = time.perf_counter() - wall
        self.clock.add("decode", decode_wall_s)
        decode_s = self._compute_s(spec, bpp, "decode", decode_wall_s)
        timeline.append({"stage": "decode", "start_s": t, "duration_s": decode_s})
        delay_s = t + decode_s - task.arrival_s
        shown = received if received is not None else np.full_like(task.image, 128)
        quality_db = float(psnr(task.image, shown))
        return TaskRecord(
            task_id=task.task_id, name=task.name, route=str(route), mode=alloc.mode,
            mcs=" / ".join(alloc.hop(lid).mcs for lid in link_ids),
            compression_bpp=bpp, bits=len(payload.data) * 8, air_time_s=air, delay_s=delay_s,
            deadline_s=task.deadline_s, psnr_db=quality_db, ssim=float(ssim(task.image, shown)),
            quality_min_db=task.quality_min_db, scc=float(scc_weight(task, delay_s, quality_db)),
            met_deadline=delay_s <= task.deadline_s, met_quality=quality_db >= task.quality_min_db,
            retransmissions=retx, sent_image=task.image, received_image=received,
            predicted=dict(alloc.predicted), trail=trail, timeline=timeline, hop_rate_bps=hop_rates,
            hop_snr_db=dict(zip(link_ids, hop_snrs)), fallback=alloc.fallback,
        )

    def _compute_s(self, spec, bpp: float, which: str, wall_s: float) -> float:
        """The codec's encode or decode time: measured on this host (timing = "wall-clock"), else the mode
        table's measured time (the run is then reproducible from its seed)."""
        if self.fg.timing == "wall-clock" or self.mode_table is None:
            return wall_s
        return spec.compute_time_s(self.mode_table, bpp, (which,))

    def _nominal_rate_bps(self, hop) -> float:
        """What the hop carries per second of air time when no block is lost: its symbol rate x the MCS's
        information bits per symbol (analog hops: channel symbols per second)."""
        from sagin_hil.phy.mcs import get_mcs

        bw = hop.bandwidth_hz or self.fg.phy.symbol_rate_hz * (1 + self.fg.phy.rolloff)
        rs = bw / (1 + self.fg.phy.rolloff)
        return rs if hop.mcs == "analog" else rs * get_mcs(hop.mcs).spectral_efficiency

    def _hop_rate_bps(self, res, hop) -> float:
        """What the hop carried per second of air time: the nominal rate x the blocks that passed."""
        return self._nominal_rate_bps(hop) * (1.0 - (res.block_errors / res.blocks if res.blocks else 1.0))

    def _configure_spiff(self, codec, task: Task, alloc: Allocation, link_ids: list[str]):
        """Mode spiff as its engine configures it for this image and route (controllers/spiff/policy.py):
        (the configured codec, the decision for the task's trail)."""
        from sagin_hil.controllers.spiff.policy import route_rate_bps

        rgb, _, ranks = codec.segment(task.image)  # segmented once: the configured codec shares the result
        rate = route_rate_bps([self._nominal_rate_bps(alloc.hop(lid)) for lid in link_ids])
        c = codec.config
        d = self.spiff_policy.decide(rgb, ranks, rate, task.deadline_s, (c.beta, c.keep[0], c.caption))
        return codec.with_config(beta=d.beta, keep=(d.keep,), caption=d.caption), d


def _spiff_policy(fg: Flowgraph):
    """The trained engine that configures mode spiff per task (`[codecs.spiff]`), or None for its fixed
    configuration; a missing or mismatched actors file stops the run before any task is carried."""
    cfg = fg.codecs.spiff
    if cfg.engine == "fixed":
        return None
    from sagin_hil.controllers.spiff.policy import SpiffPolicy

    try:
        return SpiffPolicy(cfg.engine, cfg.target, cfg.seed, cfg.actors)
    except (OSError, ValueError) as exc:
        raise FlowgraphError(f"{fg.source}: codecs.spiff: {exc}") from None


def _trace(scenario, tx: str, rx: str, fg: Flowgraph) -> LinkTrace:
    """The scenario's prediction for one link as Es/N0 at the flowgraph's symbol rate (the budget's SNR is over
    the link bandwidth), over the satellite's whole visibility window when it has one."""
    sat = tx if scenario.node_kind(tx) == "satellite" else None
    uav = rx if sat else (tx if scenario.node_kind(tx) == "uav" else None)
    t0, t1 = (scenario.visibility_window(sat, uav) if sat and uav and scenario.node_kind(uav) == "uav"
              else (0.0, scenario.config.duration_s))
    if not (np.isfinite(t0) and np.isfinite(t1)):
        t0, t1 = 0.0, scenario.config.duration_s
    grid = np.linspace(t0, t1, 160)
    states = [scenario.link_state(tx, rx, float(t)) for t in grid]
    rs = fg.phy.symbol_rate_hz
    return LinkTrace(
        link_id=link_id(tx, rx), t_s=grid,
        predicted_snr_db=np.array([s.snr_db + 10 * np.log10(s.bandwidth_hz / rs) for s in states]),
        doppler_hz=np.array([s.doppler_hz for s in states]),
        elevation_deg=np.array([s.elevation_deg for s in states]),
    )


def _world_map(scenario, t0: float, t1: float) -> dict[str, Any]:
    """What the report's map draws: users, UAV paths and satellite ground tracks over [t0, t1] (local m)."""
    grid = np.linspace(t0, t1, 60)
    return {
        "users": {u: [float(c) for c in scenario.position_enu(u, t0)[:2]] for u in scenario.users},
        "uav_paths": {u: [[float(t), *map(float, scenario.position_enu(u, float(t)))] for t in grid]
                      for u in scenario.uavs},
        "leo_tracks": {s: [[float(t), *map(float, scenario.ground_track_enu(s, float(t)))] for t in grid]
                       for s in scenario.satellites},
    }


def _run_controller(fg: Flowgraph, algo: str, frames: list[list[Task]], mode_table: dict | None,
                    progress: Progress, bar, record_dir: Path | None = None
                    ) -> tuple[list[TaskRecord], dict[str, LinkTrace], dict[str, Any], str | None]:
    """Every frame under one controller, in a fresh copy of the world; (records, traces, metrics, aborted)."""
    from sagin_hil.controllers import fallback_plan, get_controller
    from sagin_hil.controllers.constraints import plan_violations
    from sagin_hil.controllers.plane import ControlClient, ControlServer
    from sagin_hil.hil.radio import RadioError

    scenario = _load_scenario(fg)
    controller = get_controller(algo, **fg.controller.options)
    endpoint = (f"inproc://sagin-control-{secrets.token_hex(4)}" if fg.controller.transport == "inproc"
                else "tcp://127.0.0.1:0")
    server = ControlServer(controller, endpoint=endpoint)
    server.start()
    client = ControlClient(server.endpoint, timeout_s=fg.controller.timeout_s, context=server.context)
    traces: dict[str, LinkTrace] = {}
    exp = _Experiment(fg, scenario, client, traces, mode_table, record_dir)
    records: list[TaskRecord] = []
    frame_rates: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    aborted = None
    try:
        for frame in frames:
            t_plan = frame[0].arrival_s
            progress.update(bar, description=f"{algo}: planning {len(frame)} task(s) at t = {t_plan:.0f} s")
            state = exp.state(frame, t_plan)
            with exp.clock("planning"):
                plan = client.request_allocation(state)
            broken = plan_violations(state, plan)
            if broken:  # a plan that breaks (15a)-(15g) is not carried out: the safe default is, and it is said
                rejected.append({"time_s": t_plan, "violations": broken})
                plan = fallback_plan(state)
                for tid in plan.allocations:
                    plan.trail[tid] = {"route": str(plan.allocations[tid].route), "choice": "mode1",
                                       "why": "the controller's plan was rejected: " + "; ".join(broken)}
            t_go = exp.fly(plan, t_plan) if plan.waypoints_m else t_plan
            t_go = min(t_go, t_plan + fg.images.interval_s / 2)  # the frame does not wait past half its slot
            frame_records = []
            for task in frame:
                progress.update(bar, description=f"{algo}: task {task.task_id} ({escape(task.name)})")
                task_start = max(t_go, task.arrival_s)
                # carry() counts the delay from the task's arrival: waiting for the UAVs counts against D_max
                rec = exp.carry(task, plan.allocations[task.task_id], task_start, plan.trail.get(task.task_id, {}))
                rec.quality_profile = None if task.quality is None else task.quality.to_dict()
                frame_records.append(rec)
                progress.advance(bar)
            records += frame_records
            frame_rates.append(_frame_rates(state, plan, frame_records))
    except (RadioError, KeyboardInterrupt) as exc:  # keep and report what was finished
        total = sum(len(f) for f in frames)
        aborted = f"{algo}: stopped at task {len(records)} of {total}: {exc or type(exc).__name__}"
    finally:
        exp.close()
        client.close()
        server.stop()
    metrics = _controller_metrics(algo, records, frame_rates, client)
    metrics["rejected_plans"] = rejected
    if exp.map_checks:  # how often the map the controller planned with matched the buildings
        metrics["channel_map"] = {
            "source": fg.controller.channel_map, "links_mapped": len(exp.map_checks),
            "nlos_fraction": float(np.mean([t == "nlos" for _, t in exp.map_checks])),
            "accuracy": float(np.mean([m == t for m, t in exp.map_checks]))}
    phy = StageClock()  # the PHY's share of sounding and hops, from every hop's own clock
    for h in exp.hops.values():
        phy.merge(h.clock)
    metrics["clocks"] = (exp.clock, phy)
    carried = [r.timeline for r in records if r.timeline]  # a task not served has no timeline
    if carried:
        metrics["map"] = _world_map(scenario, min(tl[0]["start_s"] for tl in carried) - 5.0,
                                    max(tl[-1]["start_s"] for tl in carried) + 5.0)
    return records, traces, metrics, aborted


def _torch_device(name: str) -> str:
    """The flowgraph's codecs.device as torch spells it: auto = CUDA when present, else the CPU."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _frame_rates(state: ControllerState, plan: Plan, records: list[TaskRecord]) -> dict[str, Any]:
    """Per user: the rate the controller predicted and the rates measured at sample level, for a
    semantic-relay frame (every task has a predicted rate). Two measured sum rates, both through [P001]'s
    delivery model (controllers.ao.delivered_rates: compute cap, satellite-hop cap, semantic gain):

    - sum_rate_bps: the model's rate formulas at the SNRs the receivers measured on each hop (UAV->user:
      b log2(1 + SNR / Gamma); satellite: its semantic rate at the measured SNR), i.e. what the allocation
      achieves on the air, judged like the prediction;
    - phy_sum_rate_bps: the bits the PHY's MCS actually delivered per second of air time (symbol rate x
      information bits per symbol x blocks passed), which adds the MCS staircase and the coding gap.
    """
    out: dict[str, Any] = {"users": {}}
    if not records or any("rate_bps" not in r.predicted for r in records):
        return out
    from sagin_hil.controllers.ao import delivered_rates, relay_system

    scn, uavs, clusters = relay_system(state)
    n, m = scn.shape
    by_task = {r.task_id: r for r in records}
    gap = 10 ** (max((r.predicted.get("snr_gap_db", 0.0) for r in records), default=0.0) / 10)
    to_band = 10 * math.log10(1 + state.rolloff)  # Es/N0 at Rs -> SNR over the occupied band B = Rs (1 + rolloff)
    x = np.zeros((n, 2 + 3 * m))
    phy_user, cap_user = np.zeros((n, m)), np.zeros((n, m))
    phy_sat, cap_sat = np.zeros(n), np.zeros(n)
    for i, members in enumerate(clusters):
        for k, (tid, route) in enumerate(members[:m]):
            alloc, rec = plan.allocations[tid], by_task[tid]
            sat_link, uav_link = link_id(route.leo, route.uav), link_id(route.uav, route.user)
            x[i, 2 + m + k] = (alloc.hop(uav_link).power_w or 0.0) / scn.uav_power_w
            phy_user[i, k] = rec.hop_rate_bps.get(uav_link, 0.0)
            if uav_link in rec.hop_snr_db:
                b = alloc.hop(uav_link).bandwidth_hz or state.bandwidth_hz[uav_link]
                cap_user[i, k] = b * math.log2(1 + 10 ** ((rec.hop_snr_db[uav_link] - to_band) / 10) / gap)
            if sat_link in rec.hop_snr_db:  # the satellite hop carries semantic symbols (one per Hz)
                b = alloc.hop(sat_link).bandwidth_hz or state.bandwidth_hz[sat_link]
                eps = float(scn.similarity(rec.hop_snr_db[sat_link] - to_band))
                cap_sat[i] = max(cap_sat[i], scn.bits_per_unit / scn.symbols_per_unit * b * eps)
                # the PHY's bits, as semantic symbols of mu bits each: equivalent bits = semantic gain x bits
                phy_sat[i] = max(phy_sat[i], scn.semantic_gain * rec.hop_rate_bps.get(sat_link, 0.0) * eps)
    a = scn.constants(np.zeros((n, 2)))["a"]
    cap, phy = delivered_rates(scn, x, cap_user, cap_sat), delivered_rates(scn, x, phy_user, phy_sat)
    for i, members in enumerate(clusters):
        for k, (tid, route) in enumerate(members[:m]):
            out["users"][route.user] = {
                "task_id": tid, "kind": "semantic" if scn.is_semantic[i, k] else "conventional",
                "predicted_rate_bps": float(plan.allocations[tid].predicted["rate_bps"]),
                "measured_rate_bps": float(cap[i, k]), "phy_rate_bps": float(phy[i, k]),
                "semantic_gain": float(a[i, k]),
            }
    out["sum_rate_bps"] = float((a * cap).sum())
    out["phy_sum_rate_bps"] = float((a * phy).sum())
    out["predicted_sum_rate_bps"] = float(sum(plan.allocations[t].predicted.get("equivalent_rate_bps", 0.0)
                                              for t in by_task))
    return out


def _controller_metrics(algo: str, records: list[TaskRecord], frames: list[dict[str, Any]], client) -> dict[str, Any]:
    """One controller's results in summary["controllers"][algo]."""
    out: dict[str, Any] = {
        "tasks": len(records), "met_deadline": sum(r.met_deadline for r in records),
        "met_quality": sum(r.met_quality for r in records),
        "met_both": sum(r.met_deadline and r.met_quality for r in records),
        "mean_scc": float(np.mean([r.scc for r in records])) if records else None,
        "mean_psnr_db": mean_psnr_db(records),
        "mean_delay_s": float(np.mean([r.delay_s for r in records])) if records else None,
        "fallbacks": client.n_fallbacks,
    }
    rated = [f for f in frames if "sum_rate_bps" in f]
    if rated:
        for key in ("sum_rate_bps", "phy_sum_rate_bps", "predicted_sum_rate_bps"):
            out[key] = float(np.mean([f[key] for f in rated]))
        out["frames"] = rated
    return out


def _account_wall_time(summary: dict[str, Any], clock: StageClock, total_s: float, path: Path | None) -> None:
    """Complete the run's wall-time split once the report is written (its own time included), the rest as
    "other" (controller start-up, progress display), and store it in summary.json again."""
    from sagin_hil.flowgraphs.report import clean_json

    summary["wall_time_s"] = total_s
    summary["wall_time_by_stage_s"] = {**clock.wall_s, "other": max(total_s - sum(clock.wall_s.values()), 0.0)}
    if path is not None and path.exists():
        path.write_text(json.dumps(clean_json(summary), indent=2))


def _modes_left_out(fg: Flowgraph) -> dict[str, str]:
    """The flowgraph's modes that cannot run for want of the user's weights, each with the files to provide."""
    from sagin_hil.codecs.modes import MODES

    why = {m: MODES.get(m).missing_weights(fg.codecs.weights_dir) for m in fg.controller.modes}
    return {m: w for m, w in why.items() if w}


def run_flowgraph(fg: Flowgraph, out_dir: Path = Path("runs"), console: Console | None = None,
                  run_id: str | None = None, report: bool = True, record_dir: Path | None = None) -> RunResult:
    """Run `fg` end to end under its controller (and those it compares); write out_dir/<run id>/ and return
    the summary. The same flowgraph and seed give the same tasks.csv (with timing = "measured").
    report=False writes nothing (a sweep point keeps only its summary: the report is most of a small run).
    record_dir: write every hop's received samples of the flowgraph's own controller there as SigMF (one
    recording per hop); a run with radio kind "replay" and uri = that folder replays them."""
    from sagin_hil import __version__
    from sagin_hil.codecs.modes import load_mode_table

    started = time.perf_counter()
    clock = StageClock()
    rng = np.random.default_rng(fg.seed)
    scenario = _load_scenario(fg)
    if not scenario.uavs or not scenario.users or not scenario.satellites:
        raise FlowgraphError(f"{fg.source}: the scenario needs at least one satellite, UAV and user; it has "
                             f"{len(scenario.satellites)}, {len(scenario.uavs)} and {len(scenario.users)}")
    try:
        images = _load_images(fg)
    except ValueError as exc:
        raise FlowgraphError(f"{fg.source}: [images] {exc}") from None
    frames = _make_frames(fg, images, scenario, rng)
    left_out = _modes_left_out(fg)
    if left_out:  # the controller plans without them; the report says why
        kept = [m for m in fg.controller.modes if m not in left_out]
        if not kept:
            raise FlowgraphError(f"{fg.source}: no mode of [controller] modes can run: " + "; ".join(left_out.values()))
        fg = fg.model_copy(update={"controller": fg.controller.model_copy(update={"modes": kept})})
        if console is not None:
            for mode, why in left_out.items():
                console.print(escape(f"{mode} left out: {why}"))
    try:
        mode_table = load_mode_table()
    except FileNotFoundError:
        mode_table = None
    clock.add("setup", time.perf_counter() - started)
    if fg.tasks.quality_profile:  # the transmitter measures each image's own quality per mode (cached per image)
        from sagin_hil.codecs.profile import measure_quality_profile

        with clock("quality profiles"):
            for task in (t for f in frames for t in f):
                task.quality = measure_quality_profile(task.image, fg.controller.modes)
    algos = [fg.controller.algo] + [c for c in fg.controller.compare if c != fg.controller.algo]
    n_tasks = sum(len(f) for f in frames)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=console is None,
    )
    results = {}
    with progress:
        bar = progress.add_task("carrying images", total=n_tasks * len(algos))
        for algo in algos:
            results[algo] = _run_controller(fg, algo, frames, mode_table, progress, bar,
                                            record_dir if algo == fg.controller.algo else None)
    records, traces, _, aborted = results[fg.controller.algo]
    aborted = "; ".join(a for *_, a in results.values() if a) or None
    phy = StageClock()
    for r in results.values():
        stages, phy_stages = r[2].pop("clocks")
        clock.merge(stages)
        phy.merge(phy_stages)
    # the links that carried data; the links only sounded (candidate routes not taken) stay out of the report
    links = [traces[k] for k in sorted(traces) if traces[k].bler_points]
    meta = {
        "description": fg.description,
        "flowgraph": fg.source,
        "run_id": run_id or new_run_id(fg.name),
        "seed": fg.seed,
        "version": __version__,
        "timing": fg.timing,
        "resolved_flowgraph": fg.model_dump(mode="json"),
        "wall_time_s": time.perf_counter() - started,
        "wall_time_by_stage_s": clock.wall_s,
        "phy_wall_time_s": phy.wall_s,
        "radio": fg.radio.model_dump(mode="json"),
        "controller": fg.controller.algo,
        "map": results[fg.controller.algo][2].pop("map", None),
        "controllers": {algo: {k: v for k, v in r[2].items() if k != "map"} for algo, r in results.items()},
        "symbol_rate_hz": fg.phy.symbol_rate_hz,
        "aborted": aborted,
        "modes_left_out": left_out,
    }
    summary = build_summary(fg.name, records, links, meta)
    run_dir = Path(out_dir) / meta["run_id"]
    if not report:
        _account_wall_time(summary, clock, time.perf_counter() - started, None)
        return RunResult(summary=summary, out_dir=run_dir, aborted=aborted)
    with clock("report"):
        index = write_report(run_dir, summary, records, links, fg.report.max_constellation_points)
    _account_wall_time(summary, clock, time.perf_counter() - started, run_dir / "summary.json")
    if console is not None:
        _print_table(console, records, f"tasks ({fg.controller.algo})")
        tot = summary["totals"]
        scc = "-" if tot["mean_scc"] is None else f"{tot['mean_scc']:.3f}"
        console.print(
            f"{tot['tasks']} tasks: {tot['met_deadline']} met the deadline, {tot['met_quality']} the quality floor, "
            f"mean SCC {scc}; {summary['wall_time_s']:.1f} s wall time"
        )
        if len(algos) > 1 or "sum_rate_bps" in meta["controllers"][fg.controller.algo]:
            for algo, m in meta["controllers"].items():
                rate = (f", sum rate {m['predicted_sum_rate_bps'] / 1e6:.2f} Mbit/s predicted, "
                        f"{m['sum_rate_bps'] / 1e6:.2f} at the measured SNRs, {m['phy_sum_rate_bps'] / 1e6:.2f} "
                        "delivered by the PHY" if "sum_rate_bps" in m else "")
                console.print(f"  {algo}: {m['met_both']}/{m['tasks']} tasks met both, mean SCC "
                              f"{(m['mean_scc'] or 0):.3f}{rate}")
        console.print(f"report: {index}")
    return RunResult(summary=summary, out_dir=run_dir, aborted=aborted)
