"""The runner: wires scenario, codecs, PHY hops and the controller into one experiment, and reports it.

For each task (an image arriving at a LEO satellite): sound each hop of its route with a short probe packet
(the receivers publish LinkReports to the controller), ask the controller for an allocation over the
control plane, encode the image (JPEG 2000 at the allocated budget, or the VQ codec of Modes 3_x), carry
it LEO -> UAV at sample level,
decode and forward it UAV -> user at sample level, decode the image, and score it (PSNR, SSIM, delay, SCC).

When the flowgraph allows deep JSCC (controller.modes) and the controller picks it, the image's symbols
cross each hop as one analog packet with the codec header as its protected side information; the UAV
amplifies and forwards them (renormalised to unit power), and the user decodes with the end-to-end SNR
from the hops' measured SNRs.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sagin_hil.datatypes import Task
from sagin_hil.flowgraphs.config import Flowgraph, FlowgraphError
from sagin_hil.flowgraphs.report import LinkTrace, TaskRecord, build_summary, write_report

__all__ = ["run_flowgraph", "RunResult"]

PROBE_BYTES = 96  # sounding packet payload
PROBE_MCS = "bpsk-1/2"  # the most robust MCS, so a probe is heard on any usable link


@dataclass
class RunResult:
    """summary: what summary.json holds; out_dir: the report folder; aborted: why the run stopped early
    (a radio vanished, Ctrl-C), or None. An aborted run still reports the tasks it finished."""

    summary: dict[str, Any]
    out_dir: Path
    aborted: str | None = None


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


def _route(scenario, user: str, t_s: float) -> tuple[str, str, str]:
    """LEO -> UAV -> user: the UAV nearest the user, the satellite highest above that UAV."""
    uav = min(scenario.uavs, key=lambda u: scenario.link_state(u, user, t_s).distance_m)
    sat = max(scenario.satellites, key=lambda s: scenario.link_state(s, uav, t_s).elevation_deg)
    return sat, uav, user


def _make_tasks(fg: Flowgraph, images: list[tuple[str, np.ndarray]], scenario, rng: np.random.Generator) -> list[tuple[Task, tuple[str, str, str]]]:
    """Tasks spread over the pass of the first satellite over the first UAV."""
    t0, t1 = scenario.visibility_window(scenario.satellites[0], scenario.uavs[0])
    n = len(images)
    interval = min(fg.images.interval_s, (t1 - t0) / (n + 1))
    tasks = []
    for i, (name, img) in enumerate(images):
        t = t0 + interval * (i + 1) if np.isfinite(t0) else interval * i
        user = scenario.users[i % len(scenario.users)]
        route = _route(scenario, user, t)
        task = Task(
            task_id=i,
            image=img,
            source=route[0],
            destination=user,
            deadline_s=float(rng.uniform(*fg.tasks.deadline_s)),
            quality_min_db=float(rng.uniform(*fg.tasks.quality_min_db)),
            arrival_s=float(t),
            weight_quality=fg.tasks.weight_quality,
            weight_delay=1.0 - fg.tasks.weight_quality,
            name=name,
        )
        tasks.append((task, route))
    return tasks


def _pass_traces(scenario, links: list[tuple[str, str]], t0: float, t1: float, symbol_rate_hz: float) -> dict[str, LinkTrace]:
    """The scenario's prediction over the run, as Es/N0 (the budget's SNR is over the link bandwidth)."""
    grid = np.linspace(t0, t1, 120)
    traces = {}
    for tx, rx in links:
        states = [scenario.link_state(tx, rx, float(t)) for t in grid]
        traces[f"{tx}->{rx}"] = LinkTrace(
            link_id=f"{tx}->{rx}",
            t_s=grid,
            predicted_snr_db=np.array([s.snr_db + 10 * np.log10(s.bandwidth_hz / symbol_rate_hz) for s in states]),
            doppler_hz=np.array([s.doppler_hz for s in states]),
            elevation_deg=np.array([s.elevation_deg for s in states]),
        )
    return traces


def _print_table(console: Console, records: list[TaskRecord]) -> None:
    """The per-task table: the deadline and quality floor beside what was achieved, met or MISSED."""
    table = Table(title="tasks", header_style="bold")
    for col in ("#", "image", "route", "mode", "MCS per hop", "kbit", "air ms", "delay s / D_max",
                "PSNR dB / Q_min", "SSIM", "SCC"):
        table.add_column(col, justify="left" if col in ("image", "route", "MCS per hop") else "right")

    def mark(met: bool, text: str) -> str:  # the word survives where colour does not (logs, files)
        return f"[green]{text} met[/]" if met else f"[bold red]{text} MISSED[/]"

    for r in records:
        table.add_row(
            str(r.task_id), r.name, r.route, r.mode, r.mcs, f"{r.bits / 1e3:.1f}", f"{1e3 * r.air_time_s:.1f}",
            mark(r.met_deadline, f"{r.delay_s:.3f} / {r.deadline_s:.2f}"),
            mark(r.met_quality, f"{r.psnr_db:.2f} / {r.quality_min_db:.1f}"), f"{r.ssim:.3f}", f"{r.scc:.3f}",
        )
    console.print(table)


class _Experiment:
    """The live parts of one run: scenario, codec, hops and the control-plane client."""

    def __init__(self, fg: Flowgraph, scenario, client, traces: dict[str, LinkTrace]) -> None:
        from sagin_hil.codecs import get_codec

        self.fg, self.scenario, self.client, self.traces = fg, scenario, client, traces
        self.codecs = {"mode1": get_codec("jpeg2000")}
        self.hops: dict[str, Any] = {}
        self.radios: list[Any] = []  # a bench's transmitter (and receiver), shared by every hop

    def hop(self, tx: str, rx: str):
        from sagin_hil.flowgraphs.hops import EmulatedHop, RadioHop

        key = f"{tx}->{rx}"
        if key not in self.hops:
            seed = self.fg.seed + len(self.hops)
            if self.fg.radio.kind == "emulated":
                self.hops[key] = EmulatedHop(self.scenario, tx, rx, self.fg.phy, seed=seed)
            else:
                shared = self._bench_radios() if self.fg.radio.kind != "pluto-emu" else None
                self.hops[key] = RadioHop(self.scenario, tx, rx, self.fg.phy, self.fg.radio.model_dump(), seed, shared)
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
        """The codec of a transmission mode: "mode1" is JPEG 2000, "mode3_x" the VQ codec vq-3_x, a JSCC
        mode is named as its codec."""
        from sagin_hil.codecs import get_codec

        if mode not in self.codecs:
            self.codecs[mode] = get_codec(f"vq-{mode[4:]}" if mode.startswith("mode3_") else mode)
        return self.codecs[mode]

    def _send(self, tx: str, rx: str, data: bytes | tuple[np.ndarray, bytes], mcs: str, t_s: float,
              probe: bool = False):
        """Carry `data` over one hop and report what its receiver measured; a probe gets no ARQ (and is
        not plotted). mcs "analog": data = (complex symbols, side information bytes), sent once."""
        hop = self.hop(tx, rx)
        if mcs == "analog":
            res = hop.send_symbols(data[0], t_s, side=data[1])
        else:
            res = hop.send(data, mcs, t_s, 0 if probe else self.fg.phy.max_retransmissions)
        self.client.report(res.report)
        trace = self.traces[res.report.link_id]
        trace.measured_t_s.append(res.report.time_s)
        trace.measured_snr_db.append(res.report.snr_db)
        trace.blocks += res.blocks
        trace.block_errors += res.block_errors
        if not probe and res.symbols is not None and trace.constellation is None:
            trace.constellation, trace.mcs_of_constellation = res.symbols, mcs
        return res

    def carry(self, task: Task, route: tuple[str, ...]) -> TaskRecord:
        """One task end to end: sound, allocate, encode, two hops at sample level, decode, score."""
        from sagin_hil.codecs import CodecError
        from sagin_hil.codecs.metrics import psnr, ssim
        from sagin_hil.controllers.link_adaptation import relay_snr_db
        from sagin_hil.controllers.scc import scc_weight

        links = list(zip(route, route[1:]))
        link_ids = [f"{a}->{b}" for a, b in links]
        sounded = []  # sounding: each receiver measures its hop and reports to the controller
        for a, b in links:
            sounded.append(self._send(a, b, bytes(PROBE_BYTES), PROBE_MCS, task.arrival_s, probe=True).report.snr_db)
        pixels = int(task.image.shape[0] * task.image.shape[1])
        state = {
            "modes": list(self.fg.controller.modes),
            "route": link_ids,
            "symbol_rate_hz": self.fg.phy.symbol_rate_hz,
            "image_pixels": pixels,
            "propagation_delay_s": {
                lid: self.scenario.link_state(a, b, task.arrival_s).delay_s for (a, b), lid in zip(links, link_ids)
            },
        }
        plan = self.client.request_allocation(task, state)
        first = plan[link_ids[0]]
        analog = first.mode.startswith("jscc")
        codec = self.codec(first.mode)

        t0 = time.perf_counter()
        if analog:  # the encoder is told the SNR the soundings predict end to end
            payload = codec.encode(task.image, snr_db=relay_snr_db(sounded))
        elif first.mode == "mode1":
            payload = codec.encode(task.image, budget_bits=max(int(first.compression * pixels), 2048))
        else:  # a VQ semantic mode: its latent grid fixes the bits
            payload = codec.encode(task.image)
        compute_s = time.perf_counter() - t0
        data, t, air, retx = payload.data, task.arrival_s + compute_s, 0.0, 0
        symbols, gain, hop_snrs = payload.symbols, 1.0, []
        for (a, b), lid in zip(links, link_ids):  # decode (JSCC: amplify) and forward, hop by hop
            if analog:  # the codec header rides in the analog packet as protected side information
                res = self._send(a, b, (symbols, data), "analog", t)
                hop_snrs.append(res.report.snr_db)
                power = max(float(np.mean(np.abs(res.analog) ** 2)), 1e-12)  # the relay renormalises ...
                symbols, gain = res.analog / np.sqrt(power), gain * np.sqrt(power)  # ... the user undoes it
            else:
                res = self._send(a, b, data, plan[lid].mcs, t)
            data, t, air, retx = res.payload, t + res.delay_s, air + res.air_time_s, retx + res.retransmissions
        t0 = time.perf_counter()
        try:
            if analog:
                received = codec.decode(data, symbols=symbols * gain, snr_db=relay_snr_db(hop_snrs))
            else:
                received = codec.decode(data)
        except CodecError:
            received = None  # an erasure: the user sees a grey frame
        delay_s = t - task.arrival_s + (time.perf_counter() - t0)
        shown = received if received is not None else np.full_like(task.image, 128)
        quality_db = float(psnr(task.image, shown))
        return TaskRecord(
            task_id=task.task_id,
            name=task.name,
            route="->".join(route),
            mode=first.mode,
            mcs=" / ".join("analog" if analog else plan[lid].mcs for lid in link_ids),
            compression_bpp=8 * len(payload.data) / pixels,
            bits=len(payload.data) * 8,
            air_time_s=air,
            delay_s=delay_s,
            deadline_s=task.deadline_s,
            psnr_db=quality_db,
            ssim=float(ssim(task.image, shown)),
            quality_min_db=task.quality_min_db,
            scc=float(scc_weight(task, delay_s, quality_db)),
            met_deadline=delay_s <= task.deadline_s,
            met_quality=quality_db >= task.quality_min_db,
            retransmissions=retx,
            sent_image=task.image,
            received_image=received,
        )


def run_flowgraph(fg: Flowgraph, out_dir: Path = Path("runs"), console: Console | None = None) -> RunResult:
    """Run `fg` end to end; write runs/<name>-<time>/ and return the summary."""
    from sagin_hil.codecs.images import load_images
    from sagin_hil.controllers import available_controllers, get_controller
    from sagin_hil.controllers.plane import ControlClient, ControlServer
    from sagin_hil.hil.radio import RadioError

    started = time.perf_counter()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    rng = np.random.default_rng(fg.seed)
    scenario = _load_scenario(fg)
    images = load_images(n=fg.images.count, size=fg.images.size_px, split="run")
    tasks = _make_tasks(fg, images, scenario, rng)
    used_links = sorted({(a, b) for _, r in tasks for a, b in zip(r, r[1:])})
    traces = _pass_traces(
        scenario, used_links, tasks[0][0].arrival_s - 5.0, tasks[-1][0].arrival_s + 15.0, fg.phy.symbol_rate_hz
    )

    if fg.controller.algo not in available_controllers():
        raise FlowgraphError(
            f"{fg.source}: key 'controller.algo' = {fg.controller.algo!r} is not a controller; "
            f"choose one of: {', '.join(available_controllers())}"
        )
    controller = get_controller(fg.controller.algo, target_bler=fg.controller.target_bler)
    endpoint = "inproc://sagin-control" if fg.controller.transport == "inproc" else "tcp://127.0.0.1:0"
    server = ControlServer(controller, endpoint=endpoint)
    server.start()
    client = ControlClient(server.endpoint, timeout_s=fg.controller.timeout_s, context=server.context)
    experiment = _Experiment(fg, scenario, client, traces)
    records: list[TaskRecord] = []
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=console is None,
    )
    aborted = None
    try:
        with progress:
            bar = progress.add_task("carrying images", total=len(tasks))
            for task, route in tasks:
                progress.update(bar, description=f"task {task.task_id}: {task.name}")
                records.append(experiment.carry(task, route))
                progress.advance(bar)
    except (RadioError, KeyboardInterrupt) as exc:  # keep and report what was finished
        aborted = f"stopped at task {len(records)} of {len(tasks)}: {exc or type(exc).__name__}"
    finally:
        experiment.close()
        client.close()
        server.stop()

    links = [traces[f"{a}->{b}"] for a, b in used_links]
    meta = {
        "description": fg.description,
        "flowgraph": fg.source,
        "started": stamp,
        "wall_time_s": time.perf_counter() - started,
        "radio": fg.radio.kind,
        "controller": fg.controller.algo,
        "symbol_rate_hz": fg.phy.symbol_rate_hz,
        "aborted": aborted,
    }
    summary = build_summary(fg.name, records, links, meta)
    run_dir = Path(out_dir) / f"{fg.name}-{stamp}"
    index = write_report(run_dir, summary, records, links, fg.report.max_constellation_points)
    if console is not None:
        _print_table(console, records)
        tot = summary["totals"]
        scc = "-" if tot["mean_scc"] is None else f"{tot['mean_scc']:.3f}"
        console.print(
            f"{tot['tasks']} tasks: {tot['met_deadline']} met the deadline, {tot['met_quality']} the quality floor, "
            f"mean SCC {scc}; {summary['wall_time_s']:.1f} s wall time"
        )
        console.print(f"report: {index}")
    return RunResult(summary=summary, out_dir=run_dir, aborted=aborted)
