"""controllers layer of sagin-hil: the control plane and the controllers (docs/controllers.md, docs/protocol.md).

    from sagin_hil.controllers import get_controller, Controller
    ctl = get_controller("link-adaptation")
    plan = ctl.allocate(task, reports, state)   # {link_id: Allocation}
"""

from sagin_hil.controllers.base import (
    Controller,
    available_controllers,
    fallback_allocation,
    fallback_plan,
    get_controller,
    register_controller,
)

__all__ = [
    "Controller",
    "available_controllers",
    "fallback_allocation",
    "fallback_plan",
    "get_controller",
    "register_controller",
]
