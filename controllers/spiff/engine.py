"""SPIFF's learning engine (paper 003, Sec. VI): an actor and 2R + 2 distributional critics, and the NCB baseline.

The BITS problem (Eq. 2) per image: minimise bits + sum_l lambda_l [f_l,min - f_l]^+ (perceptual and semantic
fidelity of each relevance rank) subject to the end-to-end delay <= d_max. As a contextual bandit:

- state s: the image's rank shares and background texture (outcomes.image_features), the link rate (log-scaled)
  and the targets (f_0,min per / sem, lambda_0 per / sem), so one actor serves every Table III target;
- action x = (beta, p(0), caption) in [0, 1]^3 (caption on above 0.5);
- critics C^(j), j = 0 .. 2R + 1 (R = 2: six), each an MLP of (image features, rate, action) -> N quantiles of
  one term: j = 0 bits (as a fraction of the reference file), j = 1..2R the fidelities
  (PF_0, SF_0, PF_1, SF_1), j = 2R + 1 the delay / d_max; trained with the quantile Huber loss (Eq. 3-4);
- actor: minimises the aggregated cost of Eq. 5: mean(C^0) + sum_j lambda_j [F_j,min - Q^alpha(C^j)]^+ +
  lambda_del [Q^(1-alpha)(C^(2R+1)) - 1]^+, a low quantile alpha of every fidelity and a high one of the delay.

NCB (the paper's neural-contextual-bandit baseline, risk neutral): the same actor with one critic that regresses
the mean of the whole cost (the BITS objective plus the delay penalty) by mean squared error.

Hyper-parameters from paper 003: 2 x 256 hidden units (ReLU), Adam 1e-4 (actor) / 1e-3 (critics), OU noise theta =
sigma = 0.15, replay 2000, batch 32, d_max = 20 s; rank 1 (person): f_min = 1, lambda = 10. Not given by the
paper, chosen here: N = 32 quantiles, Huber kappa = 0.02 (the terms live in [0, 1]), alpha = 0.1,
lambda_del = 10.

Network: each step draws a link rate log-uniform in RATE_BPS (narrowband satellite links, where d_max can bind)
and a +-20 % (log-normal) rate fluctuation during the transfer; the delay (Eq. 1) is the measured encode time +
bits / rate + a 30 ms propagation leg + the measured decode time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "TARGETS", "D_MAX_S", "RATE_BPS", "ALPHA", "OutcomeEnv", "Engine", "EngineConfig", "aggregated_cost", "cost_of",
    "costs_of", "grid_index", "image_state", "quantile_huber_loss", "quantile_at",
]

# Table III: f_0,min per, f_0,min sem, lambda_0 per, lambda_0 sem
TARGETS: dict[str, tuple[float, float, float, float]] = {
    "strict": (0.8, 0.9, 1.25, 5.0), "intermediate": (0.6, 0.8, 1.2, 4.75), "lenient": (0.4, 0.6, 0.1, 0.5),
}
HIGH_F_MIN, HIGH_LAMBDA = 1.0, 10.0  # rank 1 (person), paper 003 Sec. VII
D_MAX_S = 20.0
RATE_BPS = (5e3, 100e3)
PROPAGATION_S = 0.03
ALPHA = 0.1
LAMBDA_DELAY = 10.0
N_QUANTILES = 32
KAPPA = 0.02
N_TERMS = 6  # bits, PF_0, SF_0, PF_1, SF_1, delay


def image_state(features: list[float], rate_bps: float) -> np.ndarray:
    """The actor's and critics' image input: the image features and the link rate (log, scaled to [-1, 1]
    over RATE_BPS)."""
    lo, hi = np.log(RATE_BPS)
    return np.asarray([*features, 2 * (np.log(rate_bps) - lo) / (hi - lo) - 1], np.float32)


def grid_index(action: np.ndarray, betas: np.ndarray, keeps: np.ndarray) -> tuple[int, int]:
    """(beta index, p(0) index) of the outcome-grid point nearest an action: the configuration it stands for."""
    return int(np.argmin(np.abs(np.asarray(betas) - action[0]))), int(np.argmin(np.abs(np.asarray(keeps) - action[1])))


class OutcomeEnv:
    """Images of one split of the outcome table and sampled network states (see the module doc)."""

    def __init__(self, table: dict[str, Any], split: str, seed: int):
        self.rows = table["images"][split]
        if not self.rows:
            raise ValueError(f"the outcome table has no {split!r} images; measure it with `sagin-hil train spiff`")
        self.betas = np.asarray(table["grid"]["betas"])
        self.keeps = np.asarray(table["grid"]["keeps"])
        self.rng = np.random.default_rng(seed)

    def sample_state(self, target: str | None = None, image: int | None = None) -> dict[str, Any]:
        i = int(self.rng.integers(len(self.rows))) if image is None else image
        name = target or str(self.rng.choice(list(TARGETS)))
        rate = float(np.exp(self.rng.uniform(*np.log(RATE_BPS))))
        return {"image": i, "target": name, "rate_bps": rate}

    def image_part(self, st: dict[str, Any]) -> np.ndarray:
        return image_state(self.rows[st["image"]]["features"], st["rate_bps"])

    @staticmethod
    def target_part(st: dict[str, Any]) -> np.ndarray:
        fp, fs, lp, ls = TARGETS[st["target"]]
        return np.asarray([fp, fs, lp / 5.0, ls / 5.0], np.float32)

    def outcome(self, st: dict[str, Any], action: np.ndarray) -> np.ndarray:
        """The six terms (bits fraction, PF_0, SF_0, PF_1, SF_1, delay / d_max) of one transmission."""
        row = self.rows[st["image"]]
        bi, ki = grid_index(action, self.betas, self.keeps)
        cell = row["grid"][bi][ki]
        o = cell[int(self.rng.integers(len(cell)))]
        bits = o["bits"] + (row["caption_bits"] if action[2] > 0.5 else 0)
        rate = st["rate_bps"] * float(np.exp(self.rng.normal(0.0, 0.2)))
        delay = o["encode_s"] + bits / rate + PROPAGATION_S + o["decode_s"]
        return np.asarray([bits / row["ref_bits"], o["pf"][0], o["sf"][0], o["pf"][1], o["sf"][1], delay / D_MAX_S],
                          np.float32)


def costs_of(terms: np.ndarray, target: str) -> np.ndarray:
    """The realised BITS cost (Eq. 2a, bits as a fraction of the reference) plus the delay penalty, for terms of
    shape (..., 6)."""
    fp, fs, lp, ls = TARGETS[target]
    t = np.asarray(terms, float)
    fmin = np.asarray([fp, fs, HIGH_F_MIN, HIGH_F_MIN])
    lam = np.asarray([lp, ls, HIGH_LAMBDA, HIGH_LAMBDA])
    shortfall = np.maximum(0.0, fmin - t[..., 1:5]) @ lam
    return t[..., 0] + shortfall + LAMBDA_DELAY * np.maximum(0.0, t[..., 5] - 1.0)


def cost_of(terms: np.ndarray, target: str) -> float:
    """`costs_of` for one transmission's six terms."""
    return float(costs_of(terms, target))


# ---- torch parts ------------------------------------------------------------------------------------------------

def quantile_huber_loss(pred: Any, target: Any, kappa: float = KAPPA) -> Any:
    """Eq. 3-4: pred (B, N) quantile estimates at tau_i = (2i + 1) / 2N, target (B,) samples."""
    import torch

    n = pred.shape[1]
    tau = (torch.arange(n, device=pred.device, dtype=pred.dtype) + 0.5) / n
    u = target[:, None] - pred
    huber = torch.where(u.abs() <= kappa, 0.5 * u ** 2, kappa * (u.abs() - 0.5 * kappa))
    return ((tau - (u < 0).to(pred.dtype)).abs() * huber / kappa).mean()


def quantile_at(pred: Any, level: float) -> Any:
    """Q^level of (B, N) quantile estimates (sorted, linear between the tau_i)."""
    import torch

    q, _ = torch.sort(pred, dim=1)
    n = q.shape[1]
    pos = min(max(level * n - 0.5, 0.0), n - 1.0)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    w = pos - lo
    return (1 - w) * q[:, lo] + w * q[:, hi]


def aggregated_cost(quantiles: list[Any], targets: Any, alpha: float = ALPHA) -> Any:
    """Eq. 5 for a batch: quantiles[j] (B, N) of each term, targets (B, 4) = (f_0 per, f_0 sem, lambda_0 per / 5,
    lambda_0 sem / 5) as in OutcomeEnv.target_part."""
    import torch

    fmin = [targets[:, 0], targets[:, 1], torch.full_like(targets[:, 0], HIGH_F_MIN), torch.full_like(targets[:, 0], HIGH_F_MIN)]
    lam = [5 * targets[:, 2], 5 * targets[:, 3], torch.full_like(targets[:, 0], HIGH_LAMBDA),
           torch.full_like(targets[:, 0], HIGH_LAMBDA)]
    cost = quantiles[0].mean(dim=1)
    for j in range(4):
        cost = cost + lam[j] * torch.relu(fmin[j] - quantile_at(quantiles[1 + j], alpha))
    return cost + LAMBDA_DELAY * torch.relu(quantile_at(quantiles[5], 1 - alpha) - 1.0)


def _mlp(n_in: int, n_out: int, hidden: int = 256) -> Any:
    import torch.nn as nn

    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def _critic_stack(n_critics: int, n_in: int, n_out: int, hidden: int = 256) -> Any:
    """`n_critics` independent 2 x `hidden` ReLU MLPs evaluated as one batched matrix product per layer
    (the same networks as separate nn.Linear stacks, a third of the time on a CPU)."""
    import torch
    import torch.nn as nn

    class Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            dims = [n_in, hidden, hidden, n_out]
            self.w = nn.ParameterList()
            self.b = nn.ParameterList()
            for a, b in zip(dims, dims[1:]):
                bound = 1.0 / math.sqrt(a)  # nn.Linear's default initialisation
                self.w.append(nn.Parameter(torch.empty(n_critics, a, b).uniform_(-bound, bound)))
                self.b.append(nn.Parameter(torch.empty(n_critics, 1, b).uniform_(-bound, bound)))

        def forward(self, x: Any) -> Any:  # (B, n_in) -> (n_critics, B, n_out)
            h = x.unsqueeze(0).expand(n_critics, -1, -1)
            for k, (w, b) in enumerate(zip(self.w, self.b)):
                h = torch.baddbmm(b, h, w)
                if k < len(self.w) - 1:
                    h = torch.relu(h)
            return h

    return Stack()


@dataclass(frozen=True)
class EngineConfig:
    kind: str = "spiff"  # "spiff" (2R + 2 quantile critics) or "ncb" (one mean-cost critic)
    hidden: int = 256
    actor_lr: float = 1e-4
    critic_lr: float = 1e-3
    ou_theta: float = 0.15
    ou_sigma: float = 0.15
    replay: int = 2000
    batch: int = 32
    n_quantiles: int = N_QUANTILES
    alpha: float = ALPHA  # risk level: the fidelity quantile the actor holds to its targets (delay: 1 - alpha)

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 0.5:
            raise ValueError(f"alpha = {self.alpha}; use a low quantile level in (0, 0.5]")


class Engine:
    """Actor + critics; `act` gives the deterministic configuration, `train_step` one bandit step."""

    N_IMAGE = 4  # image features (3) + rate
    N_TARGET = 4

    def __init__(self, config: EngineConfig = EngineConfig(), seed: int = 0, device: str = "cpu"):
        import torch

        if config.kind not in ("spiff", "ncb"):
            raise ValueError(f"engine kind {config.kind!r}; use 'spiff' or 'ncb'")
        self.cfg, self.device, self.seed = config, torch.device(device), seed
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.actor = _mlp(self.N_IMAGE + self.N_TARGET, 3, config.hidden).to(self.device)
        if config.kind == "spiff":
            self.critics = _critic_stack(N_TERMS, self.N_IMAGE + 3, config.n_quantiles, config.hidden).to(self.device)
        else:
            self.critics = _critic_stack(1, self.N_IMAGE + self.N_TARGET + 3, 1, config.hidden).to(self.device)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, foreach=True)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=config.critic_lr, foreach=True)
        self.buffer = np.zeros((config.replay, self.N_IMAGE + self.N_TARGET + 3 + N_TERMS + 1), np.float32)
        self.size, self.pos, self.steps = 0, 0, 0
        self.noise = np.zeros(3)

    def policy(self, x: Any) -> Any:
        import torch

        return torch.sigmoid(self.actor(x))

    def act(self, image_part: np.ndarray, target_part: np.ndarray, explore: bool = False) -> np.ndarray:
        import torch

        with torch.no_grad():
            x = torch.as_tensor(np.concatenate([image_part, target_part])[None], device=self.device)
            a = self.policy(x)[0].cpu().numpy().astype(float)
        if explore:  # Ornstein-Uhlenbeck exploration noise
            self.noise += self.cfg.ou_theta * -self.noise + self.cfg.ou_sigma * self.rng.standard_normal(3)
            a = np.clip(a + self.noise, 0.0, 1.0)
        return a

    def remember(self, image_part: np.ndarray, target_part: np.ndarray, action: np.ndarray, terms: np.ndarray,
                 cost: float) -> None:
        self.buffer[self.pos] = np.concatenate([image_part, target_part, action, terms, [cost]])
        self.pos = (self.pos + 1) % self.cfg.replay
        self.size = min(self.size + 1, self.cfg.replay)

    def _critic_out(self, img: Any, tgt: Any, act: Any) -> list[Any]:
        import torch

        if self.cfg.kind == "spiff":
            return list(self.critics(torch.cat([img, act], dim=1)))
        return [self.critics(torch.cat([img, tgt, act], dim=1))[0, :, 0]]

    def learn(self) -> dict[str, float]:
        import torch

        if self.size < self.cfg.batch:
            return {}
        idx = self.rng.integers(self.size, size=self.cfg.batch)
        b = torch.as_tensor(self.buffer[idx], device=self.device)
        ni, nt = self.N_IMAGE, self.N_TARGET
        img, tgt, act = b[:, :ni], b[:, ni : ni + nt], b[:, ni + nt : ni + nt + 3]
        terms, cost = b[:, ni + nt + 3 : ni + nt + 3 + N_TERMS], b[:, -1]
        out = self._critic_out(img, tgt, act)
        if self.cfg.kind == "spiff":
            critic_loss = sum(quantile_huber_loss(q, terms[:, j]) for j, q in enumerate(out))
        else:
            critic_loss = torch.mean((out[0] - cost) ** 2)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        a = self.policy(torch.cat([img, tgt], dim=1))
        self.critics.requires_grad_(False)  # the actor's gradient flows through the critics, not into them
        q = self._critic_out(img, tgt, a)
        actor_loss = (aggregated_cost(q, tgt, self.cfg.alpha) if self.cfg.kind == "spiff" else q[0]).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        self.critics.requires_grad_(True)
        self.steps += 1
        return {"critic_loss": float(critic_loss.detach()), "actor_cost": float(actor_loss.detach())}

    def train_step(self, env: OutcomeEnv) -> float:
        """One image: act with exploration, observe, remember, learn; returns the realised cost."""
        st = env.sample_state()
        ip, tp = env.image_part(st), env.target_part(st)
        a = self.act(ip, tp, explore=True)
        terms = env.outcome(st, a)
        c = cost_of(terms, st["target"])
        self.remember(ip, tp, a, terms, c)
        self.learn()
        return c

    # ---- persistence ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "critics": self.critics.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "buffer": self.buffer, "size": self.size, "pos": self.pos, "steps": self.steps, "noise": self.noise,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.actor.load_state_dict(sd["actor"])
        self.critics.load_state_dict(sd["critics"])
        self.actor_opt.load_state_dict(sd["actor_opt"])
        self.critic_opt.load_state_dict(sd["critic_opt"])
        self.buffer, self.size, self.pos, self.steps = sd["buffer"], sd["size"], sd["pos"], sd["steps"]
        self.noise = sd["noise"]
        self.rng.bit_generator.state = sd["rng"]
