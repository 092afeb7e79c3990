"""One controller interface, the registry every controller lives in, and typed controller options.

A controller turns a ControllerState (the task queue with candidate routes, positions, visibility, the
latest LinkReport per link) into a Plan (per task: route, mode, codec budget, MCS / power / bandwidth per
hop; per UAV: a waypoint). The control plane (plane.py) only ever calls `allocate`, so a new controller
plugs in by registering its class; nothing else changes.

Each controller declares its options as a pydantic model `Options` (names, types, defaults, one line of
help each); a flowgraph sets them under [controller.options], and `get_controller` names an unknown or
mistyped option together with the allowed ones.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from sagin_hil.datatypes import Allocation, ControllerState, HopAllocation, LinkReport, Plan, Route
from sagin_hil.phy.mcs import MCS_TABLE
from sagin_hil.registry import Registry

__all__ = [
    "CONTROLLERS",
    "Controller",
    "ControllerOptionError",
    "NoOptions",
    "register_controller",
    "get_controller",
    "available_controllers",
    "controller_options",
    "fallback_allocation",
    "fallback_plan",
]


class NoOptions(BaseModel):
    """A controller with nothing to set."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ControllerOptionError(ValueError):
    """An option the controller does not declare, or a value of the wrong type or range."""


class Controller(ABC):
    """Decisions from measured link quality (see the module docstring).

    Input (allocate): ControllerState. Output: Plan with one Allocation per task of state.tasks it decides
    (a task it leaves out gets the plane's fallback allocation).
    """

    name: str = "controller"
    Options: type[BaseModel] = NoOptions

    @abstractmethod
    def allocate(self, state: ControllerState) -> Plan:
        ...

    def observe(self, report: LinkReport) -> None:
        """Called for every report the plane receives (learning controllers keep history here)."""

    def reset(self) -> None:
        """Forget any per-run state."""


# Built-in controllers, imported only when one is built.
CONTROLLERS: Registry[Controller] = Registry("controller", {
    "link-adaptation": "sagin_hil.controllers.link_adaptation:LinkAdaptation",
    "fixed-robust": "sagin_hil.controllers.baselines:FixedRobust",
    "random": "sagin_hil.controllers.baselines:RandomController",
    "greedy": "sagin_hil.controllers.baselines:GreedyController",
    "ao": "sagin_hil.controllers.ao:AoController",
    "ao-fixed-bandwidth": "sagin_hil.controllers.baselines:AoFixedBandwidth",
    "ao-fixed-power": "sagin_hil.controllers.baselines:AoFixedPower",
    "ao-fixed-location": "sagin_hil.controllers.baselines:AoFixedLocation",
    "dsac": "sagin_hil.controllers.rl.controller:DsacController",
    "mappo": "sagin_hil.controllers.rl.controller:MappoController",
    "jcrra": "sagin_hil.controllers.jcrra_controller:JcrraController",
})


def register_controller(name: str) -> Callable[[type[Controller]], type[Controller]]:
    """Class decorator for a user's own controller: `get_controller(name)` then builds it."""

    def deco(cls: type[Controller]) -> type[Controller]:
        cls.name = name
        CONTROLLERS.register(name, cls)
        return cls

    return deco


def available_controllers() -> list[str]:
    """Names `get_controller` accepts."""
    return CONTROLLERS.names()


def controller_options(name: str) -> type[BaseModel]:
    """The options model of controller `name`."""
    return CONTROLLERS.get(name).Options


def _option_error(name: str, model: type[BaseModel], exc: ValidationError) -> ControllerOptionError:
    allowed = list(model.model_fields)
    lines = []
    for e in exc.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"unknown option {key!r}{hint}")
        else:
            lines.append(f"option {key!r} = {e.get('input')!r}: {e['msg']}")
    choices = ", ".join(f"{k} (default {f.default!r})" for k, f in model.model_fields.items()) or "none"
    return ControllerOptionError(f"controller {name!r}: " + "; ".join(lines) + f". Its options: {choices}")


def get_controller(name: str, **options: Any) -> Controller:
    """Build the controller registered as `name`, its options validated against its `Options` model."""
    cls = CONTROLLERS.get(name)
    model = getattr(cls, "Options", NoOptions)
    try:
        checked = model.model_validate(options)
    except ValidationError as exc:
        raise _option_error(name, model, exc) from None
    ctl = cls(**{k: getattr(checked, k) for k in model.model_fields})
    ctl.name = name
    return ctl


def fallback_allocation(task_id: int, route: Route, mode: str = "mode1", bits_per_pixel: float = 0.1) -> Allocation:
    """The safe default for one task: every hop on the most robust MCS, a low JPEG 2000 budget, fallback=True."""
    hops = {link: HopAllocation(mcs=MCS_TABLE[0].name) for link in route.links}
    return Allocation(task_id, route, mode=mode, bits_per_pixel=bits_per_pixel, hops=hops, fallback=True)


def fallback_plan(state: ControllerState, bits_per_pixel: float = 0.1) -> Plan:
    """`fallback_allocation` for every task of `state` on its first candidate route."""
    return Plan({t.task_id: fallback_allocation(t.task_id, state.routes[t.task_id][0], bits_per_pixel=bits_per_pixel)
                 for t in state.tasks})
