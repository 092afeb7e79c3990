"""Soak: the emulator service streaming 2 MS/s through PUSH/PULL for an hour, its client restarting.

    make soak                                   # SOAK_S=3600 seconds, writes runs/soak/summary.json + soak.png
    make soak SOAK_S=120 SOAK_CLIENT_S=30       # a short check
    python tests/test_soak.py                   # the same without pytest (SOAK_* from the environment)

The service runs in its own process (as `sagin-hil emulator serve` would) with a control socket: an AWGN
channel at SNR_DB with a fixed signal power, tags passed. Each client is a fresh process that binds the
transmitter's PUSH, connects a PULL to the service's output and streams QPSK blocks paced at the sample
rate for SOAK_CLIENT_S seconds, then waits for everything it sent and exits; the next one starts at once.
Block b holds the QPSK symbols drawn from seed b and one tag ("seq", b) at its first item, so the receiver
knows what each block must be:
- lost / duplicated / reordered samples: the tag's sequence number and the tag-header offset (the service's
  own running item count) must both advance by exactly one block per message, across client restarts;
- SNR: 10 log10(1 / mean |y - x|^2) per block, summarised per second;
- memory: the service's RSS every RSS_EVERY_S seconds; flat = the last tenth within RSS_GROWTH_MB of the
  tenth after the first client (allocator warm-up excluded);
- the service's counters: samples_in == samples_out == samples sent, nothing rejected or dropped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sagin_hil.hil.ports import free_endpoint

SOAK_S = float(os.environ.get("SOAK_S", "3600"))
SOAK_RATE = float(os.environ.get("SOAK_RATE", "2e6"))
SOAK_CLIENT_S = float(os.environ.get("SOAK_CLIENT_S", "180"))
SOAK_OUT = Path(os.environ.get("SOAK_OUT", "runs/soak"))
BLOCK_ITEMS = 20_000  # 10 ms at 2 MS/s
SNR_DB = 20.0
RSS_EVERY_S = 5.0
RSS_GROWTH_MB = 16.0
SNR_SPREAD_DB = 0.5  # max - min of the per-second SNR (each from 2e6 samples: its own spread is ~0.01 dB)




def qpsk_block(b: int, n: int = BLOCK_ITEMS) -> np.ndarray:
    """The samples of block b: unit-power QPSK from seed b (the receiver regenerates them)."""
    sym = np.random.default_rng(b).integers(0, 4, n)
    return (np.exp(1j * (np.pi / 4 + np.pi / 2 * sym))).astype(np.complex64)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# ------------------------------------------------------------------------------------------- processes
def run_service(tx_ep: str, rx_ep: str, ctl_ep: str, rate: float) -> None:
    from sagin_hil.hil.emulator_service import EmulatorService
    from sagin_hil.phy.channel.emulator import ChannelEmulator, ChannelParams

    em = ChannelEmulator(rate, 0.0, ChannelParams(snr_db=SNR_DB, signal_power=1.0), seed=1)
    EmulatorService(em, tx_ep, rx_ep, control_endpoint=ctl_ep, pass_tags=True).run()


def run_client(tx_ep: str, rx_ep: str, rate: float, duration_s: float, first_block: int, out_path: str) -> None:
    """Stream blocks first_block.. for duration_s at `rate`, check every block that comes back, write JSON."""
    import zmq

    from sagin_hil.hil.zmq_iq import IqTag, decode_iq, encode_iq

    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.connect(rx_ep)
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.bind(tx_ep)
    time.sleep(0.3)  # the service's PULL reconnects to our PUSH (its retry interval is 0.1 s)
    n_blocks = max(1, int(duration_s * rate / BLOCK_ITEMS))
    sent = [0]
    lag_s = [0.0]

    tx_s = [0.0]

    def transmit() -> None:
        t0 = time.perf_counter()
        for i in range(n_blocks):
            b = first_block + i
            t_due = t0 + i * BLOCK_ITEMS / rate
            wait = t_due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            else:
                lag_s[0] = max(lag_s[0], -wait)
            push.send(encode_iq(qpsk_block(b), [IqTag(b * BLOCK_ITEMS, "seq", b)], offset=b * BLOCK_ITEMS))
            sent[0] += 1
        tx_s[0] = time.perf_counter() - t0

    tx = threading.Thread(target=transmit, daemon=True)
    t_start = time.time()
    tx.start()
    expect_b = first_block
    lost = dup = reordered = bad = 0
    snr_per_s: list[float] = []
    acc_err, acc_n = 0.0, 0
    deadline_pad_s = 15.0
    while expect_b < first_block + n_blocks:
        if not pull.poll(int(deadline_pad_s * 1000)):
            break  # nothing for 15 s: what is missing is lost
        payload = pull.recv_multipart()[-1]
        y, tags = decode_iq(payload, pass_tags=True)
        offset = int.from_bytes(payload[3:11], "little")
        seq = [t.value for t in tags if t.key == "seq"]
        if len(seq) != 1 or len(y) != BLOCK_ITEMS:
            bad += 1
            continue
        b = seq[0]
        if b < expect_b:
            dup += 1
            continue
        if b > expect_b:
            lost += b - expect_b
            reordered += 1
        if offset != b * BLOCK_ITEMS or tags[0].offset != b * BLOCK_ITEMS:
            bad += 1  # the service's running count disagrees with the sequence: samples lost or added
        acc_err += float(np.sum(np.abs(y - qpsk_block(b)) ** 2))
        acc_n += len(y)
        if acc_n >= rate:
            snr_per_s.append(10 * np.log10(acc_n / acc_err))
            acc_err, acc_n = 0.0, 0
        expect_b = b + 1
    lost += first_block + n_blocks - expect_b
    tx.join(timeout=5)
    push.close()
    pull.close()
    ctx.term()
    Path(out_path).write_text(json.dumps({
        "first_block": first_block, "blocks": n_blocks, "sent": sent[0], "next_block": expect_b,
        "lost_blocks": lost, "duplicated_blocks": dup, "reordered": reordered, "bad_blocks": bad,
        "snr_db_per_s": snr_per_s, "wall_s": time.time() - t_start, "tx_s": tx_s[0],
        "max_tx_lag_s": lag_s[0],
    }))


# ------------------------------------------------------------------------------------------- the soak
def soak(duration_s: float = SOAK_S, rate: float = SOAK_RATE, client_s: float = SOAK_CLIENT_S,
         out_dir: Path = SOAK_OUT, log=print) -> dict:
    """Run the soak; returns (and writes to out_dir/summary.json) the summary with its verdicts."""
    import zmq

    out_dir.mkdir(parents=True, exist_ok=True)
    tx_ep, rx_ep, ctl_ep = free_endpoint(), free_endpoint(), free_endpoint()
    me = str(Path(__file__).resolve())
    svc = subprocess.Popen([sys.executable, me, "service", tx_ep, rx_ep, ctl_ep, str(rate)])
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.REQ_RELAXED, 1)
    req.connect(ctl_ep)

    def stats() -> dict | None:
        req.send_json({"cmd": "stats"})
        return req.recv_json()["stats"] if req.poll(10_000) else None

    rss: list[tuple[float, float]] = []
    stop = threading.Event()
    t0 = time.time()

    def sample_rss() -> None:
        while not stop.is_set() and svc.poll() is None:
            rss.append((time.time() - t0, rss_mb(svc.pid)))
            stop.wait(RSS_EVERY_S)

    clients: list[dict] = []
    final: dict | None = None
    try:
        assert stats() is not None, "the service did not answer its control socket within 10 s"
        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        next_block, k = 0, 0
        while time.time() - t0 < duration_s - 1.0:
            dur = min(client_s, duration_s - (time.time() - t0))
            path = out_dir / f"client-{k:03d}.json"
            proc = subprocess.run([sys.executable, me, "client", tx_ep, rx_ep, str(rate), str(dur),
                                   str(next_block), str(path)], capture_output=True, text=True, timeout=dur + 120)
            if proc.returncode != 0:
                raise RuntimeError(f"client {k} failed: {proc.stderr[-2000:]}")
            c = json.loads(path.read_text())
            clients.append(c)
            next_block = c["first_block"] + c["blocks"]
            snr = c["snr_db_per_s"]
            log(f"[soak {time.time() - t0:7.0f} s] client {k}: {c['sent']} blocks, lost {c['lost_blocks']}, "
                f"dup {c['duplicated_blocks']}, bad {c['bad_blocks']}, SNR {min(snr, default=float('nan')):.3f}.."
                f"{max(snr, default=float('nan')):.3f} dB, RSS {rss[-1][1] if rss else float('nan'):.1f} MB")
            k += 1
        final = stats()
        alive = svc.poll() is None
        req.send_json({"cmd": "stop"})
        req.poll(5000)
    finally:
        stop.set()
        try:
            svc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            svc.kill()
        req.close()
        ctx.term()

    elapsed = time.time() - t0
    sent = sum(c["sent"] for c in clients) * BLOCK_ITEMS
    snr_all = [s for c in clients for s in c["snr_db_per_s"]]
    # memory: the tenth of the samples after the first client (allocator warm-up done) vs the last tenth
    t_first = clients[0]["wall_s"] if clients else 0.0
    settled = [m for t, m in rss if t > t_first] or [m for _, m in rss]
    tenth = max(1, len(settled) // 10)
    rss_start, rss_end = float(np.median(settled[:tenth])), float(np.median(settled[-tenth:]))
    summary = {
        "duration_s": elapsed, "rate_sps": rate, "client_s": client_s, "clients": len(clients),
        # while streaming (a restart takes ~1 s: a new process, imports, reconnecting)
        "samples_sent": sent, "achieved_rate_sps": sent / max(1e-9, sum(c["tx_s"] for c in clients)),
        "streaming_fraction": sum(c["tx_s"] for c in clients) / elapsed if elapsed else 0.0,
        "lost_blocks": sum(c["lost_blocks"] for c in clients),
        "duplicated_blocks": sum(c["duplicated_blocks"] for c in clients),
        "reordered": sum(c["reordered"] for c in clients), "bad_blocks": sum(c["bad_blocks"] for c in clients),
        "max_tx_lag_s": max((c["max_tx_lag_s"] for c in clients), default=0.0),
        "service_alive_at_end": alive,
        "service": {k: final.get(k) for k in ("samples_in", "samples_out", "messages_in", "messages_out",
                                              "rejected", "dropped", "internal_errors")} if final else None,
        "rss_mb": {"first": rss[0][1] if rss else None, "start": rss_start, "end": rss_end,
                   "max": max(m for _, m in rss) if rss else None, "growth": rss_end - rss_start},
        "snr_db": {"target": SNR_DB, "mean": float(np.mean(snr_all)) if snr_all else None,
                   "min": min(snr_all, default=None), "max": max(snr_all, default=None),
                   "spread": (max(snr_all) - min(snr_all)) if snr_all else None, "seconds": len(snr_all)},
    }
    summary["verdict"] = {
        "no_loss": summary["lost_blocks"] == 0 and summary["duplicated_blocks"] == 0 and summary["bad_blocks"] == 0,
        "counters_match": bool(final) and final["samples_in"] == final["samples_out"] == sent
        and final["rejected"] == 0 and final["dropped"] == 0 and final["internal_errors"] == 0,
        "memory_flat": abs(summary["rss_mb"]["growth"]) <= RSS_GROWTH_MB,
        "snr_steady": bool(snr_all) and summary["snr_db"]["spread"] <= SNR_SPREAD_DB
        and abs(summary["snr_db"]["mean"] - SNR_DB) < 0.2,
        "alive": alive,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "rss.json").write_text(json.dumps(rss))
    _plot(rss, clients, out_dir / "soak.png")
    log(json.dumps(summary, indent=2))
    return summary


def _plot(rss: list, clients: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    if rss:
        a.plot([t / 60 for t, _ in rss], [m for _, m in rss])
    a.set_ylabel("service RSS, MB")
    t, snr = 0.0, []
    for c in clients:
        s = c["snr_db_per_s"]
        b.plot([(t + i) / 60 for i in range(len(s))], s, ".", ms=1, color="C1")
        t += c["wall_s"]
    b.axhline(SNR_DB, color="k", lw=0.5)
    b.set_ylabel("SNR per second, dB")
    b.set_xlabel("minutes (client restarts between segments)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@pytest.mark.soak
@pytest.mark.timeout(int(SOAK_S) + 900)
def test_soak_emulator_service_push_pull():
    s = soak()
    assert s["verdict"]["alive"], s
    assert s["verdict"]["no_loss"], s
    assert s["verdict"]["counters_match"], s
    assert s["verdict"]["memory_flat"], s["rss_mb"]
    assert s["verdict"]["snr_steady"], s["snr_db"]
    assert s["achieved_rate_sps"] >= 0.95 * SOAK_RATE, s


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "service":
        run_service(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        run_client(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
    else:
        sys.exit(0 if all(soak()["verdict"].values()) else 1)
