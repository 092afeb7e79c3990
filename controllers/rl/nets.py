"""Small MLPs for the learned controllers: trained in torch, run in numpy at decision time (a slot's decision
must take <= 2 ms on one CPU core, which a torch call's overhead alone would eat), stored as safetensors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["mlp", "NumpyMlp", "save_weights", "load_weights", "gelu_np"]


def mlp(n_in: int, n_out: int, hidden: tuple[int, ...] = (64, 64)):
    """A torch MLP with tanh-approximated GELU (DSAC-T's activation; the same formula runs in numpy)."""
    import torch.nn as nn

    layers: list[Any] = []
    d = n_in
    for h in hidden:
        layers += [nn.Linear(d, h), nn.GELU(approximate="tanh")]
        d = h
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


def gelu_np(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class NumpyMlp:
    """The forward pass of `mlp` in numpy from its state dict (float32)."""

    def __init__(self, state: dict[str, np.ndarray], prefix: str):
        keys = sorted({k.rsplit(".", 1)[0] for k in state if k.startswith(prefix + ".")},
                      key=lambda k: int(k.rsplit(".", 1)[1]))
        if not keys:
            raise KeyError(f"no layers named {prefix}.* in the weights; found {sorted(state)[:6]}")
        self.layers = [(np.ascontiguousarray(state[k + ".weight"].T, np.float32), state[k + ".bias"].astype(np.float32))
                       for k in keys]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = gelu_np(x)
        return x


def save_weights(path: str | Path, modules: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write torch modules' parameters (as prefix.layer.weight ...) and a JSON `meta` to one safetensors file."""
    from safetensors.numpy import save_file

    tensors = {f"{name}.{k}": v.detach().cpu().numpy().astype(np.float32)
               for name, m in modules.items() for k, v in m.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"meta": json.dumps(meta)})
    return path


def load_weights(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(tensors, meta) of a file written by save_weights; a missing file is named with how to make one."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no policy weights at {path}; train them with `sagin-hil train dsac` or "
                                "`sagin-hil train mappo --out DIR` and pass that file")
    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    return load_file(str(path)), meta
