"""Training SPIFF's engine and the NCB baseline on the outcome table, over seeds, resumable; and their
evaluation on the held-out images and network states (Table IV's layout).

Checkpoints (actor, critics, optimisers, replay, noise and random state) go to OUT/<kind>-seed<k>.pt every
`checkpoint_every` steps; a re-run continues from them. The shipped weights are the actors only, all seeds, in
one safetensors file per kind under controllers/spiff/weights/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sagin_hil.controllers.spiff.engine import TARGETS, Engine, EngineConfig, OutcomeEnv, cost_of

__all__ = ["train_engine", "train_all", "shipped_path", "load_actors", "evaluate", "plot_curves", "EVAL_SEED"]

WEIGHTS = Path(__file__).parent / "weights"
EVAL_SEED = 10_000  # network-state seeds of the evaluation: disjoint from the training seeds (0, 1, 2, ...)


def shipped_path(kind: str) -> Path:
    return WEIGHTS / f"{kind}-actors.safetensors"


def train_engine(kind: str, table: dict[str, Any], seed: int, steps: int, out: Path, device: str = "cpu",
                 checkpoint_every: int = 1000, progress: Callable[[int], None] | None = None) -> tuple[Engine, list[float]]:
    """Train one engine for `steps` bandit steps on the train images (resuming OUT/<kind>-seed<seed>.pt);
    returns it and the running mean realised cost per 250 steps."""
    import torch

    eng = Engine(EngineConfig(kind=kind), seed=seed, device=device)
    env = OutcomeEnv(table, "train", seed=seed)
    ck = out / f"{kind}-seed{seed}.pt"
    curve: list[float] = []
    if ck.exists():
        sd = torch.load(ck, map_location=device, weights_only=False)  # our own checkpoint (numpy arrays inside)
        eng.load_state_dict(sd["engine"])
        env.rng.bit_generator.state = sd["env_rng"]
        curve = sd["curve"]
    window: list[float] = []
    while eng.steps < steps:
        window.append(eng.train_step(env))
        if len(window) == 250:
            curve.append(float(np.mean(window)))
            window = []
        if eng.steps % checkpoint_every == 0 or eng.steps >= steps:
            out.mkdir(parents=True, exist_ok=True)
            torch.save({"engine": eng.state_dict(), "env_rng": env.rng.bit_generator.state, "curve": curve}, ck)
        if progress:
            progress(eng.steps)
    return eng, curve


def _job(args: tuple) -> tuple[str, int, list[float], float, dict[str, Any]]:
    """One (kind, seed) training run in a worker process; returns its actor's weights as numpy arrays."""
    import torch

    kind, seed, table, steps, out, device, threads = args
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    eng, curve = train_engine(kind, table, seed, steps, out, device)
    return kind, seed, curve, time.perf_counter() - t0, {k: v.cpu().numpy() for k, v in eng.actor.state_dict().items()}


def train_all(table: dict[str, Any], out: Path, steps: int, seeds: int, kinds: tuple[str, ...] = ("spiff", "ncb"),
              device: str = "cpu", ship: bool = True, workers: int = 1, threads: int = 1,
              progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Every kind x seed, over `workers` processes (each with `threads` torch threads); the actors of all seeds
    saved together per kind (shipped weights, or OUT/ without `ship`); learning curves in OUT/curves.json.
    `progress(kind, seed, steps)` is called as each run finishes."""
    import torch
    from safetensors.torch import save_file

    jobs = [(kind, s, table, steps, out, device, threads) for kind in kinds for s in range(seeds)]
    summary: dict[str, Any] = {"steps": steps, "seeds": seeds, "curves": {}, "wall_s": {}}
    tensors: dict[str, dict[str, Any]] = {kind: {} for kind in kinds}
    if workers == 1:
        results = map(_job, jobs)
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_job, jobs)
    for kind, s, curve, wall, actor in results:
        summary["curves"][f"{kind}-seed{s}"] = curve
        summary["wall_s"][f"{kind}-seed{s}"] = wall
        tensors[kind].update({f"seed{s}.{k}": torch.from_numpy(v).contiguous() for k, v in actor.items()})
        if progress:
            progress(kind, s, steps)
    if workers > 1:
        pool.close()
    for kind in kinds:
        path = shipped_path(kind) if ship else out / f"{kind}-actors.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(dict(sorted(tensors[kind].items())), str(path),
                  metadata={"kind": kind, "seeds": str(seeds), "steps": str(steps)})
    out.mkdir(parents=True, exist_ok=True)
    (out / "curves.json").write_text(json.dumps(summary))
    plot_curves(summary, out / "curves.png")
    return summary


def plot_curves(summary: dict[str, Any], path: Path) -> None:
    """Realised cost per 250 training steps, mean and range over seeds, per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for kind in sorted({k.rsplit("-seed", 1)[0] for k in summary["curves"]}):
        curves = [c for k, c in summary["curves"].items() if k.rsplit("-seed", 1)[0] == kind and c]
        if not curves:  # fewer than 250 steps: no point yet
            continue
        n = min(map(len, curves))
        c = np.asarray([v[:n] for v in curves])
        x = 250 * (np.arange(n) + 1)
        ax.plot(x, c.mean(0), label=f"{kind} ({len(curves)} seeds)")
        ax.fill_between(x, c.min(0), c.max(0), alpha=0.25)
    ax.set_xlabel("training step (image)")
    ax.set_ylabel("realised cost (Eq. 2a + delay penalty)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_actors(kind: str, path: str | Path | None = None, device: str = "cpu") -> list[Engine]:
    """The engines (actors only) of every seed stored for `kind`."""
    from safetensors.torch import load_file

    p = Path(path) if path is not None else shipped_path(kind)
    if not p.exists():
        raise FileNotFoundError(f"no {kind} actors at {p}; train them with `sagin-hil train spiff`")
    tensors = load_file(str(p))
    seeds = sorted({int(k.split(".")[0][4:]) for k in tensors})
    out = []
    for s in seeds:
        eng = Engine(EngineConfig(kind=kind), seed=s, device=device)
        eng.actor.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"seed{s}.")})
        out.append(eng)
    return out


def evaluate(table: dict[str, Any], engines: dict[str, list[Engine]], states: int = 20, split: str = "eval",
             seed: int = EVAL_SEED, n_boot: int = 1000) -> dict[str, Any]:
    """Table IV: per target and scheme, P(PF_0 >= min), P(SF_0 >= min), mean bandwidth saving (1 - bits / the
    reference file), P(delay <= d_max) and the mean realised cost, over the `split` images x `states` network
    states; learned schemes are averaged over their seeds. 95 % intervals: bootstrap over images."""
    rows = table["images"][split]
    out: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for target, (fp, fs, _, _) in TARGETS.items():
        out[target] = {}
        for scheme in ("spiff", "ncb", "jpeg", "caption"):
            per_image = np.zeros((len(rows), 5))  # p_pf, p_sf, saving, p_delay, cost (means per image)
            per_seed = []
            runs = engines.get(scheme, [None]) if scheme in ("spiff", "ncb") else [None]
            for k, eng in enumerate(runs):
                env = OutcomeEnv(table, split, seed=seed + k)
                acc = np.zeros((len(rows), 5))
                for i in range(len(rows)):
                    for _ in range(states):
                        st = env.sample_state(target=target, image=i)
                        if eng is None:
                            terms = _fixed_terms(rows[i], scheme, st, env)
                        else:
                            terms = env.outcome(st, eng.act(env.image_part(st), env.target_part(st)))
                        acc[i] += [terms[1] >= fp, terms[2] >= fs, 1 - terms[0], terms[5] <= 1.0, cost_of(terms, target)]
                acc /= states
                per_seed.append(acc.mean(0))
                per_image += acc / len(runs)
            boot = np.stack([per_image[rng.integers(len(rows), size=len(rows))].mean(0) for _ in range(n_boot)])
            lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
            m = per_image.mean(0)
            names = ("p_pf", "p_sf", "saving", "p_delay", "cost")
            out[target][scheme] = {**{n: float(m[j]) for j, n in enumerate(names)},
                                   **{f"{n}_ci95": [float(lo[j]), float(hi[j])] for j, n in enumerate(names)},
                                   "per_seed": [{n: float(v[j]) for j, n in enumerate(names)} for v in per_seed]}
    return out


def _fixed_terms(row: dict[str, Any], scheme: str, st: dict[str, Any], env: OutcomeEnv) -> np.ndarray:
    """JPEG quality 45 or caption-only: fixed payloads, the same delay model (Pillow's codec times are ~ms)."""
    from sagin_hil.controllers.spiff.engine import D_MAX_S, PROPAGATION_S

    o = row["jpeg" if scheme == "jpeg" else "caption_only"]
    rate = st["rate_bps"] * float(np.exp(env.rng.normal(0.0, 0.2)))
    delay = o["bits"] / rate + PROPAGATION_S
    return np.asarray([o["bits"] / row["ref_bits"], o["pf"][0], o["sf"][0], o["pf"][1], o["sf"][1], delay / D_MAX_S])
