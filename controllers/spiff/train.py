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

from sagin_hil.controllers.spiff.engine import (ALPHA, D_MAX_S, PROPAGATION_S, TARGETS, Engine, EngineConfig, OutcomeEnv,
                                                cost_of, costs_of)
from sagin_hil.controllers.spiff.outcomes import DEFAULT_HELD_OUT

__all__ = ["train_engine", "train_all", "probe_cost", "shipped_path", "load_actors", "actors_metadata", "evaluate", "pool",
           "paired_difference", "hindsight_action", "plot_curves", "EVAL_SEED", "METRICS", "SCHEMES"]

WEIGHTS = Path(__file__).parent / "weights"
EVAL_SEED = 10_000  # network-state seeds of the evaluation: disjoint from the training seeds (0, 1, 2, ...)


def shipped_path(kind: str) -> Path:
    return WEIGHTS / f"{kind}-actors.safetensors"


def train_engine(kind: str, table: dict[str, Any], seed: int, steps: int, out: Path, device: str = "cpu",
                 checkpoint_every: int = 1000, progress: Callable[[int], None] | None = None,
                 alpha: float = ALPHA) -> tuple[Engine, dict[str, list[float]]]:
    """Train one engine for `steps` bandit steps on the train images (resuming OUT/<kind>-seed<seed>.pt);
    returns it and its learning curves, one point per 250 steps: "realised", the mean realised cost of those
    steps (exploration noise included), and "probe", the noise-free actor's cost on fixed states (`probe_cost`).
    `alpha`: SPIFF's risk level (EngineConfig)."""
    import torch

    eng = Engine(EngineConfig(kind=kind, alpha=alpha), seed=seed, device=device)
    env = OutcomeEnv(table, "train", seed=seed)
    ck = out / f"{kind}-seed{seed}.pt"
    curves: dict[str, list[float]] = {"realised": [], "probe": []}
    if ck.exists():
        sd = torch.load(ck, map_location=device, weights_only=False)  # our own checkpoint (numpy arrays inside)
        if kind == "spiff" and sd.get("alpha", ALPHA) != alpha:
            raise ValueError(f"{ck} was trained with alpha = {sd.get('alpha', ALPHA)}, not {alpha}; "
                             "resume with that alpha or train into another --out folder")
        eng.load_state_dict(sd["engine"])
        env.rng.bit_generator.state = sd["env_rng"]
        curves = {"realised": sd["curve"], "probe": sd.get("probe", [])}  # checkpoints before 2026-12-04: no probe
    window: list[float] = []
    while eng.steps < steps:
        window.append(eng.train_step(env))
        if len(window) == 250:
            curves["realised"].append(float(np.mean(window)))
            curves["probe"].append(probe_cost(eng, table))
            window = []
        if eng.steps % checkpoint_every == 0 or eng.steps >= steps:
            out.mkdir(parents=True, exist_ok=True)
            torch.save({"engine": eng.state_dict(), "env_rng": env.rng.bit_generator.state, "curve": curves["realised"],
                        "probe": curves["probe"], "alpha": alpha}, ck)
        if progress:
            progress(eng.steps)
    return eng, curves


PROBE_SEED, PROBE_STATES = 20_000, 96


def probe_cost(eng: Engine, table: dict[str, Any]) -> float:
    """The actor's mean realised cost without exploration noise on PROBE_STATES fixed training states. The
    states and their outcome draws are the same at every call (common random numbers), so successive values
    differ only by what the actor does: the curve shows learning, where the realised cost shows mostly noise."""
    env = OutcomeEnv(table, "train", seed=PROBE_SEED)
    states = [env.sample_state() for _ in range(PROBE_STATES)]
    return float(np.mean([cost_of(env.outcome(st, eng.act(env.image_part(st), env.target_part(st))), st["target"])
                          for st in states]))


def _job(args: tuple) -> tuple[str, int, dict[str, list[float]], float, dict[str, Any]]:
    """One (kind, seed) training run in a worker process; returns its actor's weights as numpy arrays."""
    import torch

    kind, seed, table, steps, out, device, threads, alpha = args
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    eng, curves = train_engine(kind, table, seed, steps, out, device, alpha=alpha)
    return kind, seed, curves, time.perf_counter() - t0, {k: v.cpu().numpy() for k, v in eng.actor.state_dict().items()}


def train_all(table: dict[str, Any], out: Path, steps: int, seeds: int, kinds: tuple[str, ...] = ("spiff", "ncb"),
              device: str = "cpu", ship: bool = True, workers: int = 1, threads: int = 1,
              progress: Callable[[str, int, int], None] | None = None, alpha: float = ALPHA) -> dict[str, Any]:
    """Every kind x seed, over `workers` processes (each with `threads` torch threads); the actors of all seeds
    saved together per kind (shipped weights, or OUT/ without `ship`); learning curves in OUT/curves.json.
    `progress(kind, seed, steps)` is called as each run finishes; `alpha`: SPIFF's risk level. The actors'
    metadata names the photograph `table` holds out (outcomes.hold_out), so an evaluation never meets its
    training images; only actors of the project's own split may be shipped."""
    import torch
    from safetensors.torch import save_file

    held_out = table.get("held_out", DEFAULT_HELD_OUT)
    if ship and held_out != DEFAULT_HELD_OUT:
        raise ValueError(f"actors trained with {held_out!r} held out cannot replace the shipped ones (trained with "
                         f"{DEFAULT_HELD_OUT!r} held out); write them to --out instead of --ship")

    jobs = [(kind, s, table, steps, out, device, threads, alpha) for kind in kinds for s in range(seeds)]
    summary: dict[str, Any] = {"steps": steps, "seeds": seeds, "alpha": alpha, "curves": {}, "probe": {}, "wall_s": {}}
    tensors: dict[str, dict[str, Any]] = {kind: {} for kind in kinds}
    if workers == 1:
        results = map(_job, jobs)
    else:
        import multiprocessing as mp

        procs = mp.get_context("spawn").Pool(workers)
        results = procs.imap_unordered(_job, jobs)
    for kind, s, curves, wall, actor in results:
        summary["curves"][f"{kind}-seed{s}"] = curves["realised"]
        summary["probe"][f"{kind}-seed{s}"] = curves["probe"]
        summary["wall_s"][f"{kind}-seed{s}"] = wall
        tensors[kind].update({f"seed{s}.{k}": torch.from_numpy(v).contiguous() for k, v in actor.items()})
        if progress:
            progress(kind, s, steps)
    if workers > 1:
        procs.close()
    for kind in kinds:
        path = shipped_path(kind) if ship else out / f"{kind}-actors.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(dict(sorted(tensors[kind].items())), str(path),
                  metadata={"kind": kind, "seeds": str(seeds), "steps": str(steps), "held_out": held_out,
                            **({"alpha": str(alpha)} if kind == "spiff" else {})})
    out.mkdir(parents=True, exist_ok=True)
    (out / "curves.json").write_text(json.dumps(summary))
    plot_curves(summary, out / "curves.png")
    return summary


def plot_curves(summary: dict[str, Any], path: Path) -> None:
    """Per kind, mean and range over seeds per 250 training steps: the realised cost (exploration noise included)
    and, beside it, the noise-free actor's cost on the fixed probe states (`probe_cost`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("curves", "realised cost while training\n(Eq. 2a + delay penalty, with exploration)"),
              ("probe", f"noise-free actor's cost on\n{PROBE_STATES} fixed training states"))
    panels = tuple(p for p in panels if any(summary.get(p[0], {}).values()))
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6.5 * max(len(panels), 1), 3.8), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for kind in sorted({k.rsplit("-seed", 1)[0] for k in summary[key]}):
            curves = [c for k, c in summary[key].items() if k.rsplit("-seed", 1)[0] == kind and c]
            n = min(map(len, curves))
            c = np.asarray([v[len(v) - n:] for v in curves])  # the last n points (a resumed run may lack early probes)
            x = 250 * (np.arange(n) + 1 + max(map(len, summary["curves"].values())) - n)
            ax.plot(x, c.mean(0), label=f"{kind} ({len(curves)} seeds)")
            ax.fill_between(x, c.min(0), c.max(0), alpha=0.25)
        ax.set_xlabel("training step (image)")
        ax.set_ylabel(label)
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


def actors_metadata(path: str | Path) -> dict[str, Any]:
    """What the actors at `path` were trained with (their safetensors metadata): "held_out", the photograph
    left out, and for SPIFF "alpha", its risk level; files from before either was recorded get the values then
    in use."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta: dict[str, Any] = dict(f.metadata() or {})
    meta["held_out"] = meta.get("held_out", DEFAULT_HELD_OUT)
    if meta.get("kind") == "spiff":
        meta["alpha"] = float(meta.get("alpha", ALPHA))
    return meta


METRICS = ("p_pf", "p_sf", "saving", "p_delay", "cost", "pf_person", "sf_person")  # the last two: mean PF_1, SF_1
SCHEMES = ("spiff", "ncb", "jpeg", "caption", "hindsight")


def evaluate(table: dict[str, Any], engines: dict[str, list[Engine]], states: int = 20, split: str = "eval",
             seed: int = EVAL_SEED, n_boot: int = 1000) -> dict[str, Any]:
    """Table IV: per target and scheme, P(PF_0 >= min), P(SF_0 >= min), mean bandwidth saving (1 - bits / the
    reference file), P(delay <= d_max), the mean realised cost and the person's (rank 1's) mean PF and SF (the
    paper's table reports rank 0 only; rank 1 enters the cost at lambda = 10), over the `split` images x `states`
    network states; learned schemes are averaged over their seeds. Besides the paper's schemes, "hindsight": per image and
    state the grid configuration of least expected cost, chosen from that image's own measured outcomes (a
    reference no policy of the image features can beat on expected cost). 95 % intervals: bootstrap over images;
    "per_image" keeps each image's values (in METRICS order) for paired comparisons (`paired_difference`) and
    for pooling folds (`pool`). Every scheme meets the same network states and patch seeds (the same random
    stream per seed index)."""
    rows = table["images"][split]
    out: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for target, (fp, fs, _, _) in TARGETS.items():
        out[target] = {}
        for scheme in SCHEMES:
            per_image = np.zeros((len(rows), len(METRICS)))
            per_seed = []
            runs = engines.get(scheme, [None]) if scheme in ("spiff", "ncb") else [None]
            for k, eng in enumerate(runs):
                env = OutcomeEnv(table, split, seed=seed + k)
                acc = np.zeros((len(rows), len(METRICS)))
                for i in range(len(rows)):
                    for _ in range(states):
                        st = env.sample_state(target=target, image=i)
                        if scheme == "hindsight":
                            terms = env.outcome(st, hindsight_action(rows[i], st, env))
                        elif eng is None:
                            terms = _fixed_terms(rows[i], scheme, st, env)
                        else:
                            terms = env.outcome(st, eng.act(env.image_part(st), env.target_part(st)))
                        acc[i] += [terms[1] >= fp, terms[2] >= fs, 1 - terms[0], terms[5] <= 1.0, cost_of(terms, target),
                                   terms[3], terms[4]]
                acc /= states
                per_seed.append(acc.mean(0))
                per_image += acc / len(runs)
            out[target][scheme] = _summary(per_image, per_seed, rng, n_boot)
    return out


def _summary(per_image: np.ndarray, per_seed: list[np.ndarray], rng: np.random.Generator, n_boot: int) -> dict[str, Any]:
    """One scheme's entry of Table IV from its per-image values (images x METRICS) and per-seed means."""
    n = len(per_image)
    boot = np.stack([per_image[rng.integers(n, size=n)].mean(0) for _ in range(n_boot)])
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    m = per_image.mean(0)
    return {**{k: float(m[j]) for j, k in enumerate(METRICS)},
            **{f"{k}_ci95": [float(lo[j]), float(hi[j])] for j, k in enumerate(METRICS)},
            "per_seed": [{k: float(v[j]) for j, k in enumerate(METRICS)} for v in per_seed],
            "per_image": per_image.round(6).tolist()}


def pool(evaluations: list[dict[str, Any]], seed: int = EVAL_SEED, n_boot: int = 1000) -> dict[str, Any]:
    """Several `evaluate` tables (the folds of a leave-one-subject-out run, each on its own held-out images) as
    one over all their images: per-image values concatenated, intervals re-drawn over every image, seed k's
    values the image-weighted mean of the folds' seed k."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for target, schemes in evaluations[0].items():
        out[target] = {}
        for scheme in schemes:
            parts = [e[target][scheme] for e in evaluations]
            n = np.asarray([len(p["per_image"]) for p in parts], float)
            per_seed = [sum(w * np.asarray([p["per_seed"][k][m] for m in METRICS]) for w, p in zip(n / n.sum(), parts))
                        for k in range(min(len(p["per_seed"]) for p in parts))]
            out[target][scheme] = _summary(np.concatenate([np.asarray(p["per_image"]) for p in parts]), per_seed, rng,
                                           n_boot)
    return out


def paired_difference(a: dict[str, Any], b: dict[str, Any], n_boot: int = 2000, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Scheme a minus scheme b on the same images (two entries of one target of `evaluate`'s table): per metric
    the mean difference and its 95 % bootstrap interval over images, resampling the images jointly."""
    d = np.asarray(a["per_image"]) - np.asarray(b["per_image"])
    rng = np.random.default_rng(seed)
    boot = np.stack([d[rng.integers(len(d), size=len(d))].mean(0) for _ in range(n_boot)])
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    return {n: {"mean": float(d[:, j].mean()), "ci95": [float(lo[j]), float(hi[j])]} for j, n in enumerate(METRICS)}


def hindsight_action(row: dict[str, Any], st: dict[str, Any], env: OutcomeEnv) -> np.ndarray:
    """The grid configuration (beta, p(0), caption off) whose measured outcomes for this image give the least
    mean cost at this state's nominal link rate (the mean over the stored patch-sampling seeds). Offline the
    caption changes no fidelity, so it only adds bits and stays off."""
    g = np.asarray([[[[o["bits"] / row["ref_bits"], o["pf"][0], o["sf"][0], o["pf"][1], o["sf"][1], o["bits"],
                       o["encode_s"] + o["decode_s"]] for o in cell] for cell in r] for r in row["grid"]], float)
    delay = (g[..., 6] + g[..., 5] / st["rate_bps"] + PROPAGATION_S) / D_MAX_S  # g: (betas, keeps, seeds, 7)
    terms = np.concatenate([g[..., :5], delay[..., None]], axis=-1)
    bi, ki = np.unravel_index(np.argmin(costs_of(terms, st["target"]).mean(-1)), g.shape[:2])
    return np.asarray([env.betas[bi], env.keeps[ki], 0.0])


def _fixed_terms(row: dict[str, Any], scheme: str, st: dict[str, Any], env: OutcomeEnv) -> np.ndarray:
    """JPEG quality 45 or caption-only: fixed payloads, the same delay model (Pillow's codec times are ~ms)."""
    o = row["jpeg" if scheme == "jpeg" else "caption_only"]
    rate = st["rate_bps"] * float(np.exp(env.rng.normal(0.0, 0.2)))
    delay = o["bits"] / rate + PROPAGATION_S
    return np.asarray([o["bits"] / row["ref_bits"], o["pf"][0], o["sf"][0], o["pf"][1], o["sf"][1], delay / D_MAX_S])
