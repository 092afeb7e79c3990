"""Reproduction of paper 003's Table IV: SPIFF's engine vs NCB, JPEG (quality 45) and caption-only, for the
strict, intermediate and lenient targets of Table III, on the held-out person images (grace_hopper variants)
and held-out network-state seeds, from the shipped outcome table and actors (`sagin-hil train spiff` makes both);
or, leaving each person photograph out in turn (`train spiff --hold-out`), over all three people's variants.

Writes OUT/paper-003.json ("table4": {target: {scheme: {"p_pf", "p_sf", "saving", ...}}}, with the reference
scheme "hindsight" beside the paper's four; "spiff_vs_ncb": {target: {metric: {"mean", "ci95"}}}, the paired
difference over the same images and states; "folds": each held-out photograph's own, when pooled) and
OUT/paper-003.png.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["reproduce_paper_003", "PAPER_TABLE4"]

# Paper 003 Table IV (P(PF_0 >= min), P(SF_0 >= min), bandwidth saving), for the record beside ours.
PAPER_TABLE4 = {
    "strict": {"spiff": (0.96, 1.00, 0.74), "ncb": (0.84, 0.99, 0.53), "jpeg": (0.83, 1.00, 0.75), "caption": (0.00, 0.02, 0.99)},
    "intermediate": {"spiff": (0.98, 0.94, 0.79), "ncb": (0.40, 0.37, 0.83), "jpeg": (1.00, 1.00, 0.75),
                     "caption": (0.00, 0.38, 0.99)},
    "lenient": {"spiff": (1.00, 1.00, 0.85), "ncb": (1.00, 1.00, 0.83), "jpeg": (1.00, 1.00, 0.75), "caption": (0.05, 0.98, 0.99)},
}


def _checks(table4: dict[str, Any]) -> dict[str, Any]:
    """The paper's ordering, target by target: SPIFF meets each fidelity target at least as often as NCB while
    saving at least as much, and both meet them more often than caption-only."""
    out = {}
    for target, s in table4.items():
        sp, nc, cap = s["spiff"], s["ncb"], s["caption"]
        out[target] = {
            "spiff_meets_at_least_as_often_as_ncb": sp["p_pf"] >= nc["p_pf"] and sp["p_sf"] >= nc["p_sf"],
            "spiff_saves_at_least_as_much_as_ncb": sp["saving"] >= nc["saving"],
            "both_ahead_of_caption_only": min(sp["p_pf"] + sp["p_sf"], nc["p_pf"] + nc["p_sf"]) > cap["p_pf"] + cap["p_sf"],
        }
    return out


def _plot(table4: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from sagin_hil.controllers.spiff.train import SCHEMES

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, (metric, label) in zip(axes, (("p_pf", "P(PF_0 >= min)"), ("p_sf", "P(SF_0 >= min)"), ("saving", "bandwidth saving"))):
        x = np.arange(len(table4))
        for k, sc in enumerate(SCHEMES):
            v = [table4[t][sc][metric] for t in table4]
            ci = np.array([table4[t][sc][f"{metric}_ci95"] for t in table4]).T
            ax.bar(x + (k - (len(SCHEMES) - 1) / 2) * 0.16, v, 0.16, label=sc, yerr=[np.subtract(v, ci[0]), np.subtract(ci[1], v)], capsize=2)
        ax.set_xticks(x, list(table4))
        ax.set_title(label)
        ax.set_ylim(0, 1.05)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle("Table IV on held-out person images (95 % bootstrap intervals over images)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reproduce_paper_003(out: str | Path, quick: bool = False, states: int | None = None,
                        log: Callable[[str], None] = print, outcomes: str | Path | None = None,
                        actors_dir: str | Path | None = None,
                        folds: Sequence[str | Path | None] | None = None) -> dict[str, Any]:
    """Evaluate the shipped (or `actors_dir`'s) SPIFF and NCB actors and the fixed baselines; write the JSON and
    the plot. `states` network states per held-out image (default 40; quick 8). Each set of actors is evaluated
    on the photograph its training held out (their metadata, outcomes.hold_out). `folds`: several actor folders
    (None: the shipped actors), one per held-out photograph, pooled into one Table IV over all their held-out
    images (a leave-one-subject-out evaluation; "folds" in the JSON keeps each one's own)."""
    import torch

    from sagin_hil.controllers.spiff.engine import D_MAX_S, RATE_BPS, TARGETS
    from sagin_hil.controllers.spiff.outcomes import hold_out, load_outcomes
    from sagin_hil.controllers.spiff.train import EVAL_SEED, actors_metadata, evaluate, load_actors, pool, shipped_path

    torch.set_num_threads(1)
    states = states or (8 if quick else 40)
    if states < 1:
        raise ValueError(f"states = {states}; use 1 or more network states per image")
    if folds is not None and actors_dir is not None:
        raise ValueError("give the actors either as one folder or as folds, not both")
    table = load_outcomes(outcomes)
    runs: dict[str, dict[str, Any]] = {}
    for d in (folds if folds is not None else [actors_dir]):
        paths = {k: shipped_path(k) if d is None else Path(d) / f"{k}-actors.safetensors" for k in ("spiff", "ncb")}
        engines = {k: load_actors(k, p) for k, p in paths.items()}
        meta = {k: actors_metadata(p) for k, p in paths.items()}
        held = {k: m["held_out"] for k, m in meta.items()}
        if held["spiff"] != held["ncb"]:
            raise ValueError(f"the SPIFF and NCB actors in {d or 'the package'} hold out different photographs "
                             f"({held['spiff']}, {held['ncb']}); train both in one `train spiff --hold-out` run")
        if held["spiff"] in runs:
            raise ValueError(f"two folds hold out {held['spiff']}; give one actor folder per held-out photograph")
        fold = hold_out(table, held["spiff"])
        log(f"evaluating {len(engines['spiff'])} SPIFF and {len(engines['ncb'])} NCB seeds on "
            f"{len(fold['images']['eval'])} held-out images ({held['spiff']}) x {states} network states")
        runs[held["spiff"]] = {"table4": evaluate(fold, engines, states=states), "alpha": meta["spiff"]["alpha"],
                               "held_out_images": [r["tag"] for r in fold["images"]["eval"]],
                               "train_images": len(fold["images"]["train"])}
    if len({r["alpha"] for r in runs.values()}) > 1:
        raise ValueError(f"the folds' SPIFF actors were trained at different risk levels "
                         f"({ {k: r['alpha'] for k, r in runs.items()} }); pool folds of one alpha")
    table4 = pool([r["table4"] for r in runs.values()]) if len(runs) > 1 else next(iter(runs.values()))["table4"]
    result = {
        "table4": table4, "checks": _checks(table4), "paper_table4": PAPER_TABLE4,
        "spiff_vs_ncb": _spiff_vs_ncb(table4),
        "setup": {
            "held_out_images": [t for r in runs.values() for t in r["held_out_images"]],
            "train_images": {k: r["train_images"] for k, r in runs.items()}, "states_per_image": states,
            "eval_seed": EVAL_SEED, "metrics": table.get("metrics"), "metrics_are_proxies": table.get("proxy"),
            "targets": TARGETS, "d_max_s": D_MAX_S, "rate_bps": RATE_BPS, "alpha": next(iter(runs.values()))["alpha"],
            "saving_reference": "the image as a quality-95 JPEG file",
        },
    }
    if len(runs) > 1:
        result["folds"] = {k: {"table4": _without_per_image(r["table4"]), "checks": _checks(r["table4"]),
                               "spiff_vs_ncb": _spiff_vs_ncb(r["table4"])} for k, r in runs.items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "paper-003.json").write_text(json.dumps(result, indent=1))
    _plot(table4, out / "paper-003.png")
    return result


def _spiff_vs_ncb(table4: dict[str, Any]) -> dict[str, Any]:
    from sagin_hil.controllers.spiff.train import paired_difference

    return {t: paired_difference(s["spiff"], s["ncb"]) for t, s in table4.items()}


def _without_per_image(table4: dict[str, Any]) -> dict[str, Any]:
    return {t: {sc: {k: v for k, v in r.items() if k != "per_image"} for sc, r in s.items()} for t, s in table4.items()}
