"""SPIFF's trained engine choosing the codec's configuration per image in a run (paper 003: the gateway tunes
SPIFF online from the image and the network state).

The transmitter of `sagin-hil run` (flowgraphs/runner.py) asks :class:`SpiffPolicy` once per task carried in
mode ``spiff`` when the flowgraph sets ``[codecs.spiff] engine = "spiff"`` (or ``"ncb"``). The engine's state
is built as in training (engine.py):

- the image: `outcomes.image_features` of the codec's own segmentation (rank shares, background texture);
- the link rate: the route's end-to-end rate for the allocated MCS and bandwidth (decode and forward, so hop
  air times add: 1 / sum(1 / r_hop)), referred to the engine's d_max: r x D_max(task) / d_max. A payload's
  air time against the task's deadline is then the ratio the engine learnt against its 20 s. The result is
  clamped to the training range RATE_BPS: above its top no configuration of the outcome table comes near
  d_max, so the engine's choice there is its choice at the top;
- the fidelity target: one of Table III's (``[codecs.spiff] target``).

The action is snapped to the nearest point of the outcome grid (BETAS x KEEPS), the configurations the engine
was trained and evaluated on; the caption is on above 0.5. An image whose person share lies outside
HIGH_FRACTION_RANGE (the engine never saw one: no person, or a frame filled by one) keeps the mode's fixed
configuration, and the decision says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sagin_hil.controllers.spiff.engine import D_MAX_S, RATE_BPS, TARGETS, OutcomeEnv, grid_index, image_state
from sagin_hil.controllers.spiff.outcomes import BETAS, HIGH_FRACTION_RANGE, KEEPS, image_features

__all__ = ["SpiffPolicy", "SpiffDecision", "engine_rate_bps", "route_rate_bps"]


def route_rate_bps(hop_rates_bps: list[float]) -> float:
    """End-to-end rate of a decode-and-forward route: the payload crosses the hops one after another, so
    its air times add (0 when a hop carries nothing)."""
    if not hop_rates_bps or min(hop_rates_bps) <= 0:
        return 0.0
    return 1.0 / sum(1.0 / r for r in hop_rates_bps)


def engine_rate_bps(rate_bps: float, deadline_s: float) -> float:
    """The engine's link-rate state for a route of `rate_bps` and a task deadline: the rate at which its
    d_max gives the same air-time budget (rate x deadline / d_max), clamped to its training range."""
    return float(np.clip(rate_bps * deadline_s / D_MAX_S, *RATE_BPS))


@dataclass(frozen=True)
class SpiffDecision:
    """One task's configuration. engine: "spiff" or "ncb"; seed: the trained seed whose actor chose;
    configuration: "engine", or "fixed" when the engine does not apply (why_fixed says why); beta, keep
    (p(0)), caption: what the codec used; person_share: the segmented person's share of the frame;
    rate_bps: the route's end-to-end rate; engine_rate_bps: the rate state the engine saw."""

    engine: str
    seed: int
    target: str
    configuration: str
    beta: float
    keep: float
    caption: bool
    person_share: float
    rate_bps: float
    engine_rate_bps: float
    why_fixed: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class SpiffPolicy:
    """A trained actor (shipped, or a file `sagin-hil train spiff` wrote) that configures SPIFF per image.

    kind: "spiff" (the quantile multi-critic engine) or "ncb" (the risk-neutral baseline); target: strict,
    intermediate or lenient (Table III); seed: which trained seed's actor (the file holds one per seed);
    actors: the safetensors file (None: the shipped one).
    """

    def __init__(self, kind: str = "spiff", target: str = "intermediate", seed: int = 0,
                 actors: str | Path | None = None):
        from sagin_hil.controllers.spiff.train import actors_metadata, load_actors, shipped_path

        if kind not in ("spiff", "ncb"):
            raise ValueError(f"SPIFF engine {kind!r}; use 'spiff' or 'ncb' (or 'fixed' for the mode's fixed configuration)")
        if target not in TARGETS:
            raise ValueError(f"SPIFF target {target!r}; use one of {', '.join(TARGETS)} (Table III)")
        path = Path(actors).expanduser() if actors is not None else shipped_path(kind)
        if not path.is_file():
            raise FileNotFoundError(f"no SPIFF actors at {path}; give a file `sagin-hil train spiff --out DIR` wrote "
                                    f"(DIR/{kind}-actors.safetensors), or leave actors unset for the shipped ones")
        stored = actors_metadata(path).get("kind")
        if stored is not None and stored != kind:
            raise ValueError(f"{path} holds {stored} actors, not {kind}; give DIR/{kind}-actors.safetensors or set "
                             f"engine = {stored!r}")
        engines = {e.seed: e for e in load_actors(kind, path)}
        if seed not in engines:
            raise ValueError(f"{path} has no actor of seed {seed}; it holds seeds {sorted(engines)}")
        self.kind, self.target, self.seed, self.path = kind, target, seed, path
        self.engine = engines[seed]

    def decide(self, image: np.ndarray, ranks: np.ndarray, rate_bps: float, deadline_s: float,
               fixed: tuple[float, float, bool]) -> SpiffDecision:
        """The configuration for one image (uint8 RGB) with relevance `ranks` (0 other, 1 person), sent over a
        route of `rate_bps` under `deadline_s`; `fixed` = (beta, p(0), caption) of the mode, used where the
        engine does not apply."""
        share = float((ranks == 1).mean())
        state = engine_rate_bps(rate_bps, deadline_s)
        common = dict(engine=self.kind, seed=self.seed, target=self.target, person_share=share, rate_bps=float(rate_bps),
                      engine_rate_bps=state)
        lo, hi = HIGH_FRACTION_RANGE
        if not lo <= share <= hi:
            beta, keep, caption = fixed
            return SpiffDecision(configuration="fixed", beta=beta, keep=keep, caption=caption, **common,
                                 why_fixed=f"person share {share:.2f} outside {lo:.2f}-{hi:.2f}, the images the "
                                 "engine was trained on")
        action = self.engine.act(image_state(image_features(image, ranks), state),
                                 OutcomeEnv.target_part({"target": self.target}))
        bi, ki = grid_index(action, BETAS, KEEPS)
        return SpiffDecision(configuration="engine", beta=float(BETAS[bi]), keep=float(KEEPS[ki]),
                             caption=bool(action[2] > 0.5), **common)
