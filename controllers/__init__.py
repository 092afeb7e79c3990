"""controllers layer of sagin-hil: the control plane and the controllers (docs/controllers.md, docs/protocol.md).

    from sagin_hil.controllers import get_controller
    ctl = get_controller("link-adaptation", target_bler=0.01)
    plan = ctl.allocate(state)          # ControllerState -> Plan
"""

from sagin_hil.controllers.base import (
    CONTROLLERS,
    Controller,
    ControllerOptionError,
    available_controllers,
    controller_options,
    fallback_allocation,
    fallback_plan,
    get_controller,
    register_controller,
)

__all__ = [
    "CONTROLLERS",
    "Controller",
    "ControllerOptionError",
    "available_controllers",
    "controller_options",
    "fallback_allocation",
    "fallback_plan",
    "get_controller",
    "register_controller",
]
