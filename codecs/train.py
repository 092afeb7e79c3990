"""Training of the project's own codecs (deep JSCC, VQ) on patches of the shipped "train" images.

Patches are cut at random from the train split at three scales (1, 1/2, 1/4 of native resolution, so the
content scale matches the 256 px evaluation crops) with random flips; the "eval" split is never seen.
Each trainer runs for a wall-clock budget (minutes), with Adam and a cosine learning-rate decay over that
budget, then measures PSNR on the held-out images and writes float16 safetensors to codecs/weights/.
CPU threads default to 2 (torch.set_num_threads); CUDA is used when present.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sagin_hil.codecs.base import Budget

__all__ = ["PatchSampler", "train_jscc", "train_jscc_jobs", "train_vq", "evaluate_jscc", "evaluate_vq"]


class PatchSampler:
    """Random size x size patches (float tensors in [0, 1], NCHW) from the train images at 3 scales.

    permute_p: the probability that a patch's RGB channels are put in a random order. Seven of the twelve
    train images are grey and the colour ones are mostly warm, so without it a JSCC never sees a blue sky
    and decodes one purple (docs/jscc-runs.md); 0 keeps the draws of the samplers trained before it existed."""

    def __init__(self, size: int = 64, seed: int = 0, split: str = "train", permute_p: float = 0.0):
        if not 0.0 <= permute_p <= 1.0:
            raise ValueError(f"permute_p = {permute_p}: a probability, in [0, 1]")
        from skimage.transform import rescale

        from sagin_hil.codecs.images import load_full

        self.size, self.permute_p = size, permute_p
        self.rng = np.random.default_rng(seed)
        self.pool: list[np.ndarray] = []
        for _, img in load_full(split):
            for s in (1.0, 0.5, 0.25):
                im = img if s == 1.0 else (rescale(img, s, channel_axis=2, anti_aliasing=True) * 255).astype(np.uint8)
                if min(im.shape[:2]) >= size:
                    self.pool.append(im)
        if not self.pool:
            raise ValueError(f"no training image is at least {size} px")

    def __call__(self, batch: int) -> torch.Tensor:
        out = np.empty((batch, self.size, self.size, 3), np.uint8)
        for i in range(batch):
            im = self.pool[self.rng.integers(len(self.pool))]
            y = self.rng.integers(0, im.shape[0] - self.size + 1)
            x = self.rng.integers(0, im.shape[1] - self.size + 1)
            p = im[y : y + self.size, x : x + self.size]
            if self.rng.random() < 0.5:
                p = p[:, ::-1]
            if self.rng.random() < 0.5:
                p = p[::-1]
            if self.permute_p and self.rng.random() < self.permute_p:
                p = p[:, :, self.rng.permutation(3)]
            out[i] = p
        return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0


def _device(device: str | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device; use device='cpu' or 'auto'")
    return device


def _fit(net: torch.nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor], sampler: PatchSampler,
         minutes: float, batch: int, lr: float, device: str, log: Callable[[str], None] | None) -> dict[str, Any]:
    """Adam with cosine decay over a wall-clock budget; returns steps, time and the final smoothed loss."""
    net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    budget_s, t0, step, smooth = minutes * 60.0, time.perf_counter(), 0, None
    while (elapsed := time.perf_counter() - t0) < budget_s:
        for g in opt.param_groups:
            g["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / budget_s)))
        loss = loss_fn(sampler(batch).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        if log and step % 100 == 0:
            log(f"step {step}  {elapsed:6.0f} s  loss {smooth:.5f}")
    net.eval()
    return {"steps": step, "train_time_s": time.perf_counter() - t0, "final_loss": smooth, "batch": batch,
            "patch": sampler.size}


def evaluate_jscc(codec: Any, snrs_db: tuple[float, ...] = (-2.0, 0.0, 5.0, 10.0, 20.0), n_images: int = 8,
                  size: int = 256, seed: int = 0) -> dict[str, float]:
    """Mean PSNR on held-out images through AWGN at each SNR (symbols as the codec emits them)."""
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import psnr

    from sagin_hil.codecs.jscc import awgn_symbols

    gen = torch.Generator().manual_seed(seed)
    imgs = load_images(n_images, size, "eval")
    out = {}
    for snr in snrs_db:
        vals = []
        for _, img in imgs:
            pay = codec.encode(img, Budget(snr_db=snr))
            rx = awgn_symbols(pay.symbols, snr, gen)
            vals.append(psnr(img, codec.decode(pay.data, symbols=rx, snr_db=snr)))
        out[f"{snr:g}"] = float(np.mean(vals))
    return out


def evaluate_vq(codec: Any, n_images: int = 8, size: int = 256) -> dict[str, float]:
    """Mean PSNR and bits on held-out images."""
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import psnr

    imgs = load_images(n_images, size, "eval")
    pays = [codec.encode(img) for _, img in imgs]
    return {"psnr_db": float(np.mean([psnr(img, codec.decode(p.data)) for (_, img), p in zip(imgs, pays)])),
            "bits": int(pays[0].n_bits)}


def train_vq(mode: str = "3_2", minutes: float = 8.0, batch: int | None = None, patch: int | None = None,
             lr: float = 1e-3, beta: float = 0.25, device: str | None = None, threads: int = 2,
             out_dir: Path | None = None, seed: int = 0, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Train one VQ model (MSE + beta * commitment, EMA codebook with dead-code restarts) and save it."""
    from sagin_hil.codecs.jscc import save_model
    from sagin_hil.codecs.vq import VqCodec, VqConfig, VqNet, weights_path

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = _device(device)
    cfg = VqConfig(mode=mode)
    net = VqNet(cfg)
    patch = patch or max(64, 8 * cfg.downsampling)  # >= 8x8 latent positions per patch
    batch = batch or max(4, 16 * 64 * 64 // (patch * patch))
    sampler = PatchSampler(patch, seed)

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        y, commit = net(x)
        return torch.mean((y - x) ** 2) + beta * commit

    stats = _fit(net, loss_fn, sampler, minutes, batch, lr, dev, log)
    path = weights_path(mode, out_dir)
    codec = VqCodec(net.cpu(), device="cpu")
    stats["eval"] = evaluate_vq(codec)
    save_model(net, cfg, path, {"train": stats})
    return {**stats, "path": str(path), "threads": threads, "device": dev, "mode": mode}


JSCC_FULL_MINUTES = 110.0  # the shipped film weights: 110 min per ratio, side by side on 2 cores
JSCC_QUICK_MINUTES = 8.0


def train_jscc(ratios: tuple[str, ...] = ("1/12", "1/6"), minutes: float = JSCC_FULL_MINUTES,
               channels: int = 64, batch: int = 16, patch: int = 64, lr: float | None = None, arch: str = "adjscc",
               device: str | None = None, threads: int = 2, out_dir: Path | None = None,
               checkpoint_dir: Path = Path("runs/jscc-train"), resume: bool = True,
               checkpoint_every_s: float = 120.0, eval_every_s: float = 300.0, eval_images: int = 8,
               seed: int = 0, split: str = "train", permute_p: float = 0.0, log: Callable[[str], None] | None = print,
               progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Train a deep JSCC resumably: arch "adjscc" is one SNR- and ratio-adaptive network serving every ratio
    of `ratios`; arch "film" (the shipped one) serves one ratio (FiLM on the SNR only): `ratios` must name one.
    lr: Adam's initial rate (default: 7e-4 for adjscc, 1e-3 for film, the rates each recipe was tuned at).
    split: the images patches are cut from; permute_p: the probability that a patch's colour channels are
    shuffled (PatchSampler). `train jscc --colour` sets "train+colour" and 0.5.

    Each patch draws a ratio from `ratios` and an SNR (70 % uniform on [snr_min, 12] dB, 30 % on [12, snr_max]:
    most links the bench and the controllers see sit below 12 dB). Adam with a cosine decay over `minutes`
    of training time (summed over resumes), gradient norm clipped at 1; non-finite steps are skipped.
    checkpoint_dir/checkpoint.pt is written every `checkpoint_every_s` and on SIGTERM/SIGINT (the run then
    stops cleanly and still writes its weights); a later call with the same settings continues from it.
    The curve (steps, train time, learning rate, smoothed train loss, held-out PSNR per ratio at 0/5/10 dB on
    up to 3 of the `eval_images` held-out 256 px images) goes to checkpoint_dir/curve.{json,csv,png}; the final
    held-out PSNR per ratio and SNR (stored in the weights' metadata) uses all `eval_images`.

    Output: dict with steps, train_time_s, final_loss, eval_psnr_db {ratio: {snr: PSNR}}, paths, device.
    """
    import json
    import signal

    from sagin_hil.codecs.jscc import JsccCodec, JsccConfig, awgn, build_net, save_model, weights_path

    if arch == "film" and len(ratios) != 1:
        raise ValueError(f"a film JSCC serves one ratio, got ratios {list(ratios)}; train one per ratio "
                         f"(or use arch adjscc for one network serving all)")
    lr = lr if lr is not None else (7e-4 if arch == "adjscc" else 1e-3)
    torch.set_num_threads(threads)
    dev = _device(device)
    wide = max(ratios, key=lambda r: Fraction(r))
    cfg = JsccConfig(ratio=wide, channels=channels, arch=arch, latent_ratio=wide if arch == "adjscc" else "")
    ks = torch.tensor([_k_of(r) for r in ratios])
    settings = {"ratios": list(ratios), "channels": channels, "batch": batch, "patch": patch, "lr": lr, "seed": seed}
    if arch != "adjscc":  # checkpoints written before film could resume have no arch: they are adjscc
        settings["arch"] = arch
    if split != "train" or permute_p:  # nor have those written before the colour recipe
        settings.update(split=split, permute_p=permute_p)
    torch.manual_seed(seed)
    net = build_net(cfg).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sampler = PatchSampler(patch, seed, split, permute_p)
    state = {"step": 0, "train_time_s": 0.0, "smooth": None, "curve": [], "skipped": 0}
    ckpt = Path(checkpoint_dir) / "checkpoint.pt"
    if resume and ckpt.exists():
        saved = torch.load(ckpt, map_location=dev, weights_only=False)
        if saved["settings"] != settings:
            raise ValueError(f"{ckpt} was written with {saved['settings']}, this run has {settings}; "
                             f"pass the same options, or --fresh to start over (the checkpoint is then replaced)")
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        sampler.rng.bit_generator.state = saved["sampler_rng"]
        torch.set_rng_state(saved["torch_rng"])
        state = saved["state"]
        if log:
            log(f"resumed from {ckpt}: step {state['step']}, {state['train_time_s'] / 60:.1f} of {minutes:.0f} min")

    def save_checkpoint() -> None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"settings": settings, "net": net.state_dict(), "opt": opt.state_dict(), "state": state,
                    "sampler_rng": sampler.rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, tmp)
        tmp.replace(ckpt)  # atomic: a kill mid-write leaves the previous checkpoint

    stop = {"flag": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["flag"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    eval_imgs = _eval_crops(min(eval_images, 3))
    budget_s = minutes * 60.0
    last_ckpt = last_eval = time.perf_counter()
    if not state["curve"]:
        state["curve"].append(_curve_row(net, cfg, ks, state, lr, eval_imgs, dev))
    net.train()
    try:
        while state["train_time_s"] < budget_s and not stop["flag"]:
            t0 = time.perf_counter()
            frac = state["train_time_s"] / budget_s
            cur_lr = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = cur_lr
            x = sampler(batch).to(dev)
            k = ks[torch.randint(len(ks), (batch,))].to(dev)
            snr = _draw_snr(batch, cfg.snr_min_db, cfg.snr_max_db).to(dev)
            loss = torch.mean((net.decode_k(awgn(net.encode_k(x, snr, k), snr), snr, k) - x) ** 2)
            opt.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                state["smooth"] = loss.item() if state["smooth"] is None else 0.98 * state["smooth"] + 0.02 * loss.item()
            else:
                state["skipped"] += 1
            state["step"] += 1
            now = time.perf_counter()
            state["train_time_s"] += now - t0
            if progress:
                progress(min(state["train_time_s"] / budget_s, 1.0))
            if now - last_eval >= eval_every_s:
                state["curve"].append(_curve_row(net, cfg, ks, state, cur_lr, eval_imgs, dev))
                net.train()
                last_eval = time.perf_counter()
                if log:
                    row = state["curve"][-1]
                    log(f"step {state['step']}  {state['train_time_s']:6.0f} s  loss {state['smooth']:.5f}  "
                        + "  ".join(f"{key} {v:.2f}" for key, v in row.items() if key.startswith("psnr")))
            if now - last_ckpt >= checkpoint_every_s:
                save_checkpoint()
                last_ckpt = time.perf_counter()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    state["curve"].append(_curve_row(net, cfg, ks, state, opt.param_groups[0]["lr"], eval_imgs, dev))
    save_checkpoint()
    net.eval()
    stats = {"steps": state["step"], "train_time_s": state["train_time_s"], "budget_s": budget_s,
             "final_loss": state["smooth"], "skipped_steps": state["skipped"], "batch": batch, "patch": patch,
             "channels": channels, "arch": arch, "split": split,
             "permute_p": permute_p, "stopped_early": bool(state["train_time_s"] < budget_s)}
    curve_paths = _write_curve(state["curve"], Path(checkpoint_dir))
    out: dict[str, Any] = {**stats, "device": dev, "threads": threads, "paths": [], "eval_psnr_db": {},
                           "curve": [str(p) for p in curve_paths]}
    # evaluated as stored (float16), so the recorded PSNR is what the shipped file gives
    state_cpu = {k_: v.detach().cpu().half().float() for k_, v in net.state_dict().items()}
    for ratio in ratios:
        rcfg = JsccConfig(ratio=ratio, channels=channels, arch=arch, latent_ratio=cfg.latent_ratio)
        rnet = build_net(rcfg)
        rnet.load_state_dict(state_cpu)
        ev = evaluate_jscc(JsccCodec(rnet, device="cpu"), n_images=eval_images)
        out["eval_psnr_db"][ratio] = ev
        path = weights_path(ratio, out_dir)
        save_model(rnet, rcfg, path, {"train": {**stats, "eval_psnr_db": ev}})
        out["paths"].append(str(path))
    if log:
        log(json.dumps({k_: out[k_] for k_ in ("steps", "train_time_s", "eval_psnr_db", "paths")}))
    return out


def train_jscc_jobs(jobs: list[dict[str, Any]], on_log: Callable[[int, str], None],
                    on_progress: Callable[[int, float], None]) -> list[dict[str, Any]]:
    """Run :func:`train_jscc` (keyword arguments `jobs[i]`) for every job at once, each in a spawned
    process of its own, so one network's Python loop never waits on another's interpreter lock.

    on_log(i, line) and on_progress(i, fraction) are called here, in the parent. Ctrl-C reaches the children
    too: each checkpoints, writes its weights and reports as usual, and this call waits for them. Output: the
    jobs' results in order; RuntimeError naming every job that failed, once all have ended."""
    import multiprocessing as mp
    import queue

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_job_main, args=(i, job, q)) for i, job in enumerate(jobs)]
    for proc in procs:
        proc.start()
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    errors: dict[int, str] = {}
    while len(errors) + sum(r is not None for r in results) < len(jobs):
        try:
            kind, i, payload = q.get(timeout=1.0)
        except queue.Empty:  # a process killed outside Python sends nothing: its exit code says so
            for i, proc in enumerate(procs):
                if results[i] is None and i not in errors and proc.exitcode not in (None, 0):
                    errors[i] = f"the process exited with code {proc.exitcode}"
            continue
        except KeyboardInterrupt:  # the children checkpoint and still report
            continue
        if kind == "log":
            on_log(i, payload)
        elif kind == "progress":
            on_progress(i, payload)
        elif kind == "result":
            results[i] = payload
        else:
            errors[i] = payload
    for proc in procs:
        proc.join()
    if errors:
        raise RuntimeError("; ".join(f"ratios {','.join(jobs[i]['ratios'])}: {e}" for i, e in sorted(errors.items())))
    return [r for r in results if r is not None]


def _job_main(i: int, job: dict[str, Any], q: Any) -> None:
    last = [0.0]

    def progress(frac: float) -> None:  # at most once a second: the queue is shared
        now = time.monotonic()
        if now - last[0] >= 1.0 or frac >= 1.0:
            last[0] = now
            q.put(("progress", i, frac))

    try:
        q.put(("result", i, train_jscc(**job, log=lambda line: q.put(("log", i, line)), progress=progress)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which names the job
        q.put(("error", i, f"{type(exc).__name__}: {exc}"))


def _k_of(ratio: str) -> int:
    from sagin_hil.codecs.jscc import JsccConfig

    return JsccConfig(ratio=ratio).symbols_per_position


def _draw_snr(n: int, lo: float, hi: float) -> torch.Tensor:
    """70 % uniform on [lo, 12] dB, 30 % uniform on [12, hi] dB."""
    mid = min(12.0, hi)
    low = torch.rand(n) * (mid - lo) + lo
    high = torch.rand(n) * (hi - mid) + mid
    return torch.where(torch.rand(n) < 0.7, low, high)


def _eval_crops(n: int) -> torch.Tensor:
    from sagin_hil.codecs.images import load_images

    imgs = [img for _, img in load_images(n, 256, "eval")]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def _curve_row(net: torch.nn.Module, cfg: Any, ks: torch.Tensor, state: dict, lr: float, imgs: torch.Tensor,
               dev: str) -> dict[str, float]:
    """One point of the training curve: held-out PSNR per ratio at 0, 5 and 10 dB (fixed noise seed)."""
    from sagin_hil.codecs.jscc import awgn

    net.eval()
    row: dict[str, float] = {"step": state["step"], "train_time_s": round(state["train_time_s"], 1), "lr": lr,
                             "train_mse": state["smooth"] if state["smooth"] is not None else float("nan")}
    gen_state = torch.get_rng_state()
    torch.manual_seed(1234)
    x = imgs.to(dev)
    for k in ks.tolist():
        for snr_db in (0.0, 5.0, 10.0):
            snr = torch.full((x.shape[0],), snr_db, device=dev)
            kk = torch.full((x.shape[0],), k, device=dev)
            y = net.decode_k(awgn(net.encode_k(x, snr, kk), snr), snr, kk)
            mse = torch.mean((y.mul(255).round() / 255 - x) ** 2, dim=(1, 2, 3))
            row[f"psnr_k{k}_{snr_db:g}db"] = float(torch.mean(10 * torch.log10(1 / mse.clamp_min(1e-10))))
    torch.set_rng_state(gen_state)
    return row


def _write_curve(rows: list[dict[str, float]], folder: Path) -> list[Path]:
    """curve.json, curve.csv and curve.png (held-out PSNR and train loss against training time)."""
    import csv
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "curve.json").write_text(json.dumps(rows, indent=1))
    keys = list(rows[-1].keys())
    with open(folder / "curve.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    t = [r["train_time_s"] / 60 for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for key in keys:
        if key.startswith("psnr_k"):
            k, snr = key[len("psnr_k"):].split("_")
            a1.plot(t, [r[key] for r in rows], "-o", ms=2, label=f"ratio {Fraction(int(k), 48)}, {snr[:-2]} dB")
    a1.set_xlabel("training time (min)")
    a1.set_ylabel("held-out PSNR (dB), AWGN")
    a1.grid(alpha=0.3)
    a1.legend(fontsize=7)
    a2.semilogy(t, [r["train_mse"] for r in rows], "-", color="C3")
    a2.set_xlabel("training time (min)")
    a2.set_ylabel("train MSE (smoothed)")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "curve.png", dpi=110)
    plt.close(fig)
    return [folder / "curve.json", folder / "curve.csv", folder / "curve.png"]
