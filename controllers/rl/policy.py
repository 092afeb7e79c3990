"""The trained policies at decision time, in numpy: DSAC (option head + waypoint head) and MAPPO (per-UAV heads).

`act_world` decides every environment of a SaginWorld at once (evaluation, reproduce); the controllers
(controllers/rl/controller.py) use the same networks on a ControllerState. Both act greedily: the most
probable option, LEO and mode, users claimed with probability > 1/2, the mean move.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sagin_hil.controllers.rl.decide import SlotDecision, decide_world, world_uav_features
from sagin_hil.controllers.rl.dsac import choose
from sagin_hil.controllers.rl.features import FEATURES, world_options
from sagin_hil.controllers.rl.nets import NumpyMlp, load_weights

__all__ = ["DsacPolicy", "MappoPolicy", "load_policy"]


def _argmax_pick(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return choose(logits, mask, None)


class DsacPolicy:
    """DSAC's actor heads from a safetensors file written by `sagin-hil train dsac`."""

    algo = "dsac"

    def __init__(self, path: str | Path):
        state, meta = load_weights(path)
        if meta.get("algo") != "dsac":
            raise ValueError(f"{path} holds a {meta.get('algo')!r} policy, not DSAC; pass a file written by "
                             "`sagin-hil train dsac`")
        if tuple(meta.get("features", ())) != FEATURES:
            raise ValueError(f"{path} was trained on features {meta.get('features')}; this version computes "
                             f"{list(FEATURES)}: retrain with `sagin-hil train dsac`")
        self.meta = meta
        self.option_actor = NumpyMlp(state, "option_actor")
        self.waypoint_actor = NumpyMlp(state, "waypoint_actor")

    def score(self, feats: np.ndarray) -> np.ndarray:
        return self.option_actor(feats)[..., 0]

    def move(self, uav_feats: np.ndarray) -> np.ndarray:
        return np.tanh(self.waypoint_actor(uav_feats)[..., :3])

    def act_world(self, world, hover: bool = False, allow_wait: bool = True) -> SlotDecision:
        wp = None if hover else self.move(world_uav_features(world))
        return decide_world(world, world_options(world), self.score, _argmax_pick, waypoint=wp,
                            allow_wait=allow_wait)


class MappoPolicy:
    """MAPPO's shared actor heads from a safetensors file written by `sagin-hil train mappo`."""

    algo = "mappo"

    def __init__(self, path: str | Path):
        state, meta = load_weights(path)
        if meta.get("algo") != "mappo":
            raise ValueError(f"{path} holds a {meta.get('algo')!r} policy, not MAPPO; pass a file written by "
                             "`sagin-hil train mappo`")
        self.meta = meta
        self.leo, self.users = NumpyMlp(state, "leo"), NumpyMlp(state, "users")
        self.mode, self.waypoint = NumpyMlp(state, "mode"), NumpyMlp(state, "waypoint")

    def heads(self, rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Greedy head outputs from agent rows ([..., N, ...]): LEO, user claims, modes, moves."""
        leo = np.argmax(self.leo(rows["leo"])[..., 0], -1)
        users = self.users(rows["users"])[..., 0] > 0.0
        mode = np.argmax(self.mode(rows["mode"])[..., 0], -1)
        move = np.tanh(self.waypoint(rows["uav"]))
        return leo, users, mode, move

    def act_world(self, world, hover: bool = False, allow_wait: bool = True) -> SlotDecision:
        from sagin_hil.controllers.rl.mappo import joint_action_vec, observe_world

        leo, users, mode, move = self.heads(observe_world(world))
        if hover:
            move = np.zeros_like(move)
        action = joint_action_vec(world, leo, users, mode, move)
        return SlotDecision(None, None, action)


def load_policy(algo: str, path: str | Path | None = None):
    """The policy of `algo` from `path` (default: the shipped weights)."""
    from sagin_hil.controllers.rl.train import shipped_weights

    p = Path(path) if path else shipped_weights(algo)
    return DsacPolicy(p) if algo == "dsac" else MappoPolicy(p)
