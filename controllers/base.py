"""One controller interface and the registry every controller (AO, link adaptation, RL, ...) lives in.

A controller observes link reports and a state map and returns one Allocation per link. The control
plane (plane.py) only ever calls `allocate`, so new controllers plug in without touching the plane.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from sagin_hil.datatypes import Allocation, LinkReport, Task
from sagin_hil.phy.mcs import MCS_TABLE

__all__ = [
    "Controller",
    "register_controller",
    "get_controller",
    "available_controllers",
    "fallback_allocation",
    "fallback_plan",
]

_REGISTRY: dict[str, type[Controller]] = {}


class Controller(ABC):
    """Decisions from measured link quality.

    Input (allocate)
    ----------------
    task: the Task to deliver (deadline, quality floor, SCC weights).
    reports: link_id -> the latest LinkReport measured on that link.
    state: a map; "route" is the list of link ids the task crosses (e.g. ["leo0->uav0", "uav0->user0"]);
      other keys are controller specific (predicted_snr_db, symbol_rate_hz, scenario, ...).

    Output
    ------
    dict link_id -> Allocation, one per link the controller decides for.
    """

    name: str = "controller"

    @abstractmethod
    def allocate(self, task: Task, reports: dict[str, LinkReport], state: dict[str, Any]) -> dict[str, Allocation]:
        ...

    def observe(self, report: LinkReport) -> None:
        """Called for every report the plane receives (learning controllers keep history here)."""

    def reset(self) -> None:
        """Forget any per-run state."""


def register_controller(name: str) -> Callable[[type[Controller]], type[Controller]]:
    """Class decorator: make `get_controller(name)` build this class."""

    def deco(cls: type[Controller]) -> type[Controller]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"controller name {name!r} is already registered by {_REGISTRY[name].__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    # Importing the modules runs their @register_controller decorators.
    from sagin_hil.controllers import ao, baselines, link_adaptation  # noqa: F401


def available_controllers() -> list[str]:
    """Names `get_controller` accepts."""
    _load_builtin()
    return sorted(_REGISTRY)


def get_controller(name: str, **options: Any) -> Controller:
    """Build the controller registered as `name` with its options."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown controller {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**options)


def fallback_allocation(mode: str = "mode1", compression: float = 0.1) -> Allocation:
    """The safe default for one link: the most robust MCS, a low JPEG 2000 budget, fallback=True."""
    m = MCS_TABLE[0]
    return Allocation(mode=mode, mcs=m.name, modulation=m.modulation, code_rate=m.code_rate,
                      compression=compression, fallback=True)


def fallback_plan(route: list[str], mode: str = "mode1", compression: float = 0.1) -> dict[str, Allocation]:
    """`fallback_allocation` for every hop of `route`."""
    return {hop: fallback_allocation(mode, compression) for hop in route}
