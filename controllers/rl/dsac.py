"""Distributional soft actor-critic (DSAC) of [P000] Eq. 19-32 with the refinements of its authors' later
version, DSAC-T (docs/references.md), each switchable (docs/rl.md).

The soft return Z(s, a) is Gaussian N(Q, sigma^2) (Eq. 20-21); the critic minimises the negative log-likelihood
of the soft Bellman target (Eq. 23-27) with sigma clamped below by `std_min` (Eq. 28) and the target clipped
to Q +- `td_bound` in the sigma gradient (Eq. 29-30); the policy maximises Q - alpha log pi (Eq. 31-32), the
entropy coefficient alpha tuned toward a target entropy; target networks follow by Polyak averaging.
Refinements (DSACConfig): `twin` two value distributions, the one of smaller mean in the target and the policy
loss; `expected_value` the mean is regressed on the expected target r + gamma (Q' - alpha log pi') and only
sigma on the sampled one; `variance_scaled` the critic loss is scaled by a running mean of sigma^2, so its
gradient does not grow or shrink with the reward's scale (and td_bound becomes 3 x the batch's mean sigma).

Two heads share this machinery (the hybrid action, docs/rl.md): `OptionHead`, a categorical over each window
task's options (route x mode, or wait), the critic scoring each option from its features; `WaypointHead`, a
tanh-squashed Gaussian over each UAV's move (reparameterised, Eq. 32).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sagin_hil.controllers.rl.nets import mlp

__all__ = ["DSACConfig", "OptionHead", "WaypointHead", "gaussian_critic_loss"]


@dataclass
class DSACConfig:
    """DSAC settings; defaults from DSAC-T except where a 20-minute CPU budget needs otherwise (docs/rl.md)."""

    hidden: tuple[int, ...] = (64, 64)
    lr_value: float = 3e-4
    lr_policy: float = 3e-4
    lr_alpha: float = 3e-4
    gamma: float = 0.99  # [P000] Sec. V
    tau: float = 0.005
    policy_delay: int = 2
    batch: int = 256
    std_min: float = 0.05  # Eq. 28's clamp (the paper's 1 is for its reward scale; SCC per task is in [0, 1])
    td_bound: float = 1.0  # Eq. 30's bound; with variance_scaled: this many x 3 x the batch's mean sigma
    target_entropy_ratio: float = 0.05  # options: target entropy = ratio x log(number of valid options)
    init_alpha: float = 0.005  # small: a soft value that pays entropy for waiting would hold tasks back
    twin: bool = True
    expected_value: bool = True
    variance_scaled: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


def _sigma(raw: torch.Tensor, std_min: float) -> torch.Tensor:
    return torch.clamp(F.softplus(raw) + 1e-4, min=std_min)  # Eq. 28: sigma = max(sigma, sigma_min)


def gaussian_critic_loss(mu: torch.Tensor, sigma: torch.Tensor, y_q: torch.Tensor, y_z: torch.Tensor,
                         cfg: DSACConfig, omega: float) -> torch.Tensor:
    """Eq. 23-30 as a loss whose gradient is Eq. 25: the mean moves by (y - Q) / sigma^2 (Eq. 26), sigma by
    ((y_clipped - Q)^2 - sigma^2) / sigma^3 (Eq. 27, 29-30). y_q: target of the mean; y_z: sampled target."""
    sd = sigma.detach()
    bound = cfg.td_bound * (3.0 * sd.mean() if cfg.variance_scaled else 1.0)
    y_clip = torch.clamp(y_z, mu.detach() - bound, mu.detach() + bound)
    loss = ((y_q - mu) ** 2 / (2 * sd ** 2) + torch.log(sigma) + (y_clip - mu.detach()) ** 2 / (2 * sigma ** 2))
    scale = omega if cfg.variance_scaled else 1.0
    return scale * loss.mean()


class _Head:
    """Critics (one or two Gaussian value distributions), their targets, the actor, alpha and the optimisers."""

    def __init__(self, n_critic_in: int, n_actor_in: int, n_actor_out: int, cfg: DSACConfig, device: str):
        self.cfg, self.device = cfg, device
        n_critics = 2 if cfg.twin else 1
        self.critics = [mlp(n_critic_in, 2, cfg.hidden).to(device) for _ in range(n_critics)]
        self.targets = [copy.deepcopy(c) for c in self.critics]
        self.actor = mlp(n_actor_in, n_actor_out, cfg.hidden).to(device)
        self.actor_target = copy.deepcopy(self.actor)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=device, requires_grad=True)
        self.opt_q = torch.optim.Adam([p for c in self.critics for p in c.parameters()], lr=cfg.lr_value)
        self.opt_pi = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_policy)
        self.opt_alpha = torch.optim.Adam([self.log_alpha], lr=cfg.lr_alpha)
        self.omega = 1.0  # running mean of sigma^2 (variance-scaled gradient)
        self.updates = 0

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp().detach()

    def _dist(self, nets, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for n in nets:
            o = n(x)
            out.append((o[..., 0], _sigma(o[..., 1], self.cfg.std_min)))
        return out

    def _pick(self, dists):
        """Twin: per sample the distribution of smaller mean (DSAC-T); else the only one."""
        if len(dists) == 1:
            return dists[0]
        (m1, s1), (m2, s2) = dists
        first = m1 <= m2
        return torch.where(first, m1, m2), torch.where(first, s1, s2)

    def _critic_step(self, x: torch.Tensor, y_q: torch.Tensor, y_z: torch.Tensor) -> float:
        dists = self._dist(self.critics, x)
        loss = sum(gaussian_critic_loss(m, s, y_q, y_z, self.cfg, self.omega) for m, s in dists)
        self.opt_q.zero_grad()
        loss.backward()
        self.opt_q.step()
        var = float(torch.stack([s.detach() ** 2 for _, s in dists]).mean())
        self.omega = 0.995 * self.omega + 0.005 * var if self.updates else var
        return float(loss.detach())

    def _alpha_step(self, entropy: torch.Tensor, target: torch.Tensor) -> None:
        loss = (self.log_alpha * (entropy - target).detach()).mean()
        self.opt_alpha.zero_grad()
        loss.backward()
        self.opt_alpha.step()

    def _polyak(self) -> None:
        tau = self.cfg.tau
        with torch.no_grad():
            for net, tgt in [*zip(self.critics, self.targets), (self.actor, self.actor_target)]:
                for p, pt in zip(net.parameters(), tgt.parameters()):
                    pt.mul_(1 - tau).add_(tau * p)

    def modules(self) -> dict:
        out = {"actor": self.actor}
        out.update({f"critic{i}": c for i, c in enumerate(self.critics)})
        return out

    def state_dict(self) -> dict:
        return {"critics": [c.state_dict() for c in self.critics], "targets": [t.state_dict() for t in self.targets],
                "actor": self.actor.state_dict(), "actor_target": self.actor_target.state_dict(),
                "log_alpha": self.log_alpha.detach().cpu(), "opt_q": self.opt_q.state_dict(),
                "opt_pi": self.opt_pi.state_dict(), "opt_alpha": self.opt_alpha.state_dict(),
                "omega": self.omega, "updates": self.updates}

    def load_state_dict(self, d: dict) -> None:
        for c, s in zip(self.critics, d["critics"]):
            c.load_state_dict(s)
        for t, s in zip(self.targets, d["targets"]):
            t.load_state_dict(s)
        self.actor.load_state_dict(d["actor"])
        self.actor_target.load_state_dict(d["actor_target"])
        with torch.no_grad():
            self.log_alpha.copy_(d["log_alpha"])
        self.opt_q.load_state_dict(d["opt_q"])
        self.opt_pi.load_state_dict(d["opt_pi"])
        self.opt_alpha.load_state_dict(d["opt_alpha"])
        self.omega, self.updates = float(d["omega"]), int(d["updates"])


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.masked_fill(~mask, -1e9), -1)


class OptionHead(_Head):
    """Categorical policy over a task's options; each option scored from its feature row by a shared MLP, so
    tasks with any number of options share one network. Transitions: (feats [A, F], mask [A], action, reward,
    done, next feats, next mask)."""

    def __init__(self, n_features: int, cfg: DSACConfig, device: str = "cpu"):
        super().__init__(n_features, n_features, 1, cfg, device)

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        x, m, a = b["feats"], b["mask"], b["action"]
        with torch.no_grad():
            logp2 = masked_log_softmax(self.actor_target(b["next_feats"])[..., 0], b["next_mask"])
            p2 = logp2.exp()
            mu2, s2 = self._pick(self._dist(self.targets, b["next_feats"]))  # [B, A]
            alpha = self.alpha
            soft = torch.where(b["next_mask"], mu2 - alpha * logp2, torch.zeros_like(mu2))
            v_exp = (p2 * soft).sum(-1)
            a2 = torch.multinomial(p2 + 1e-12, 1)[:, 0]
            i = torch.arange(len(a2))
            z2 = mu2[i, a2] + s2[i, a2] * torch.randn_like(v_exp)
            v_sample = z2 - alpha * logp2[i, a2]
            notdone = 1.0 - b["done"]
            y_z = b["reward"] + cfg.gamma * notdone * v_sample
            y_q = b["reward"] + cfg.gamma * notdone * v_exp if cfg.expected_value else y_z
        xa = x[torch.arange(len(a)), a]
        info = {"critic_loss": self._critic_step(xa, y_q, y_z)}
        self.updates += 1
        if self.updates % cfg.policy_delay == 0:
            logp = masked_log_softmax(self.actor(x)[..., 0], m)
            p = logp.exp()
            with torch.no_grad():
                q, _ = self._pick(self._dist(self.critics, x))
            alpha = self.alpha
            inner = torch.where(m, alpha * logp - q, torch.zeros_like(q))
            loss = (p * inner).sum(-1).mean()
            self.opt_pi.zero_grad()
            loss.backward()
            self.opt_pi.step()
            ent = -(p * torch.where(m, logp, torch.zeros_like(logp))).sum(-1)
            target = cfg.target_entropy_ratio * torch.log(m.sum(-1).clamp(min=1).float())
            self._alpha_step(ent, target)
            self._polyak()
            info.update(policy_loss=float(loss.detach()), entropy=float(ent.detach().mean()), alpha=float(self.alpha))
        return info

    @torch.no_grad()
    def act(self, feats: np.ndarray, mask: np.ndarray, rng: np.random.Generator, explore: bool = True) -> np.ndarray:
        """One option per row of feats [B, A, F] among mask [B, A] (rows without any: -1)."""
        logits = self.actor(torch.as_tensor(feats, device=self.device))[..., 0].cpu().numpy()
        return choose(logits, mask, rng if explore else None)


def choose(logits: np.ndarray, mask: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """Sample (rng) or take the most probable (rng None) of the masked softmax of logits [B, A]; -1 if none."""
    z = np.where(mask, logits, -np.inf)
    any_ = mask.any(-1)
    if rng is None:
        out = np.argmax(z, -1)
    else:
        g = z + rng.gumbel(size=z.shape)  # Gumbel-max sampling
        out = np.argmax(g, -1)
    return np.where(any_, out, -1)


class WaypointHead(_Head):
    """tanh-squashed Gaussian over one UAV's move in [-1, 1]^3 (units of v_max x slot); the critic takes the
    UAV's features and the move. Transitions: (obs [Fu], action [3], reward, done, next obs)."""

    ACT = 3

    def __init__(self, n_features: int, cfg: DSACConfig, device: str = "cpu"):
        super().__init__(n_features + self.ACT, n_features, 2 * self.ACT, cfg, device)

    def _sample(self, net, obs: torch.Tensor):
        out = net(obs)
        mean, log_std = out[..., :self.ACT], out[..., self.ACT:].clamp(-5.0, 1.0)
        std = log_std.exp()
        u = mean + std * torch.randn_like(mean)  # Eq. 32: a = mean + rho (.) std
        a = torch.tanh(u)
        logp = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - torch.log(1 - a ** 2 + 1e-6).sum(-1)
        return a, logp

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        with torch.no_grad():
            a2, logp2 = self._sample(self.actor_target, b["next_obs"])
            mu2, s2 = self._pick(self._dist(self.targets, torch.cat([b["next_obs"], a2], -1)))
            alpha = self.alpha
            notdone = 1.0 - b["done"]
            y_z = b["reward"] + cfg.gamma * notdone * (mu2 + s2 * torch.randn_like(mu2) - alpha * logp2)
            y_q = b["reward"] + cfg.gamma * notdone * (mu2 - alpha * logp2) if cfg.expected_value else y_z
        info = {"critic_loss": self._critic_step(torch.cat([b["obs"], b["action"]], -1), y_q, y_z)}
        self.updates += 1
        if self.updates % cfg.policy_delay == 0:
            a, logp = self._sample(self.actor, b["obs"])
            q, _ = self._pick(self._dist(self.critics, torch.cat([b["obs"], a], -1)))
            loss = (self.alpha * logp - q).mean()
            self.opt_pi.zero_grad()
            loss.backward()
            self.opt_pi.step()
            self._alpha_step(-logp, torch.tensor(-float(self.ACT)))
            self._polyak()
            info.update(waypoint_policy_loss=float(loss.detach()))
        return info

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool = True) -> np.ndarray:
        o = torch.as_tensor(obs, device=self.device)
        if explore:
            return self._sample(self.actor, o)[0].cpu().numpy()
        return torch.tanh(self.actor(o)[..., :self.ACT]).cpu().numpy()
