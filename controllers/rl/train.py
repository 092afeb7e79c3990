"""Training several seeds of one algorithm, keeping one as the shipped policy, and the learning-curve plot."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["train_seeds", "plot_curves", "WEIGHTS_DIR", "shipped_weights"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def shipped_weights(algo: str) -> Path:
    """The policy file shipped in the package for `algo` ("dsac" or "mappo")."""
    if algo not in ("dsac", "mappo"):
        raise ValueError(f"algo = {algo!r}; the learned controllers are 'dsac' and 'mappo'")
    return WEIGHTS_DIR / f"{algo}.safetensors"


def _trainer(algo: str) -> Callable[..., dict[str, Any]]:
    if algo == "dsac":
        from sagin_hil.controllers.rl.train_dsac import train_dsac

        return train_dsac
    if algo == "mappo":
        from sagin_hil.controllers.rl.mappo import train_mappo

        return train_mappo
    raise ValueError(f"algo = {algo!r}; train 'dsac' or 'mappo'")


def train_seeds(algo: str, out_dir: str | Path, minutes: float, seeds: int = 3, n_envs: int = 16,
                device: str | None = None, ship_to: str | Path | None = None,
                progress: Callable[[int, float, float, float], None] | None = None,
                **kwargs: Any) -> dict[str, Any]:
    """Train `seeds` seeds of `algo` for minutes / seeds each in out_dir (resumable: each seed keeps a
    checkpoint there, and a finished seed is not trained again), plot the curves and copy the seed with the
    best final training score (mean of its last three training episodes: no held-out seed is looked at) to
    `ship_to`. progress(seed, fraction, running_scc, env_steps)."""
    import torch

    torch.set_num_threads(1)
    if seeds < 1:
        raise ValueError(f"seeds = {seeds!r}; train at least one seed (3 for learning curves with a spread)")
    if not minutes > 0:
        raise ValueError(f"minutes = {minutes!r} must be > 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = _trainer(algo)
    runs = {}
    for s in range(seeds):
        done = out / f"{algo}-seed{s}.json"
        if done.is_file():
            runs[s] = json.loads(done.read_text())
            continue
        cb = (lambda f, r, n, s=s: progress(s, f, r, n)) if progress else None
        res = train(out / f"{algo}-seed{s}.safetensors", minutes=minutes / seeds, seed=s, n_envs=n_envs,
                    checkpoint=out / f"{algo}-seed{s}.pt", device=device, progress=cb, **kwargs)
        done.write_text(json.dumps(res, indent=1))
        runs[s] = res

    def final(r: dict) -> float:
        c = [p["scc_per_task"] for p in r["curve"][-3:]]
        return float(np.mean(c)) if c else -1.0

    best = max(runs, key=lambda s: final(runs[s]))
    summary = {"algo": algo, "seeds": {s: {"env_steps": r["env_steps"], "wall_s": round(r["wall_s"], 1),
                                           "final_scc_per_task": round(final(r), 4) if r["curve"] else None}
                         for s, r in runs.items()},
               "shipped_seed": best, "minutes_per_seed": minutes / seeds, "n_envs": n_envs,
               "world": kwargs.get("world_kwargs") or "default",
               "reward": {k: kwargs[k] for k in ("snr_shaping_per_db", "move_cost") if k in kwargs} or "default"}
    plot_curves({s: r["curve"] for s, r in runs.items()}, out / f"{algo}-curves.png", algo)
    (out / f"{algo}-summary.json").write_text(json.dumps(summary, indent=1))
    if ship_to is not None:
        Path(ship_to).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(runs[best]["path"], ship_to)
        summary["shipped_to"] = str(ship_to)
    return summary


def plot_curves(curves: dict[int, list[dict]], path: str | Path, algo: str) -> Path:
    """Mean and spread (min-max over seeds) of the training SCC per task against environment steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = [np.array([p["env_steps"] for p in c], float) for c in curves.values() if c]
    ys = [np.array([p["scc_per_task"] for p in c], float) for c in curves.values() if c]
    if xs:
        grid = np.linspace(max(x[0] for x in xs), min(x[-1] for x in xs), 50)  # where every seed has a point
        yi = np.array([np.interp(grid, x, y, left=np.nan) for x, y in zip(xs, ys)])
        for x, y in zip(xs, ys):
            ax.plot(x, y, lw=0.6, alpha=0.4, color="grey")
        ax.plot(grid, np.nanmean(yi, 0), color="C0", label=f"{algo}: mean of {len(xs)} seeds")
        ax.fill_between(grid, np.nanmin(yi, 0), np.nanmax(yi, 0), color="C0", alpha=0.25, label="min-max")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("SCC per task (training episodes)")
    ax.grid(alpha=0.3)
    if xs:
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
