"""Control-plane messages: a versioned, schema-checked msgpack envelope (never pickle).

Every message is one msgpack map ``{"v": 1, "kind": str, "id": int, "body": map}``. Requests go from a
client (receiver, runner) to the controller; each gets exactly one reply with the same id. Updates are
pushed on a PUB socket. docs/protocol.md lists every kind and field.

Request kinds and their bodies:

- ``report``: a LinkReport in its wire form (``to_dict``) -> ``ack`` {"n_reports": int}
- ``allocate``: {"state": ControllerState wire form} -> ``allocation`` {"plan": Plan wire form} (version 2;
  version 1 sent one task and got {link_id: Allocation})
- ``ping``: {} -> ``pong`` {"algo": str, "uptime_s": float}
- ``stats``: {} -> ``stats`` {"n_requests", "n_reports", "n_allocations", "n_errors", "errors": {code: n}}

Any request may instead get ``error`` {"code": str, "message": str}; codes are listed in ERROR_CODES.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from sagin_hil.datatypes import ControllerState, LinkReport, Plan, from_dict

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_MESSAGE_BYTES",
    "REQUEST_KINDS",
    "REPLY_KINDS",
    "ERROR_CODES",
    "Message",
    "ProtocolError",
    "encode",
    "decode",
    "parse_report",
    "parse_allocate",
    "plan_to_wire",
    "plan_from_wire",
]

PROTOCOL_VERSION = 2  # 2: allocate carries a ControllerState and answers a Plan
MAX_MESSAGE_BYTES = 1 << 20
REQUEST_KINDS = ("report", "allocate", "ping", "stats")
REPLY_KINDS = ("ack", "allocation", "pong", "stats", "error")
PUSH_KINDS = ("update",)
ERROR_CODES = {
    "decode": "the bytes are not one msgpack map",
    "too_large": f"the message exceeds {MAX_MESSAGE_BYTES} bytes",
    "envelope": "the map lacks v/kind/id/body or they have the wrong types",
    "version": f"v is not {PROTOCOL_VERSION}",
    "kind": "the kind is not a request this server answers",
    "field": "a body field is missing, unknown, of the wrong type or out of range",
    "controller": "the controller raised while deciding",
    "limit": "a bounded server table is full (e.g. more than MAX_LINKS link ids)",
}
MAX_NESTING = 32  # maps/arrays nested deeper are refused (real messages nest 4 levels)


class ProtocolError(ValueError):
    """A message that breaks the schema; `code` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Message:
    """One envelope: kind, request id and body."""

    kind: str
    id: int
    body: dict[str, Any] = field(default_factory=dict)
    v: int = PROTOCOL_VERSION


def encode(msg: Message) -> bytes:
    """Serialise an envelope to msgpack bytes."""
    return msgpack.packb({"v": msg.v, "kind": msg.kind, "id": msg.id, "body": msg.body}, use_bin_type=True)


def decode(data: bytes, allowed_kinds: tuple[str, ...] | None = None) -> Message:
    """Parse and check an envelope; raise ProtocolError naming what is wrong.

    Input
    -----
    data: the raw message bytes.
    allowed_kinds: kinds accepted here (None: any known kind).
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}; split it")
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types for garbage
        raise ProtocolError("decode", f"not a msgpack message: {str(exc)[:200] or 'unreadable'}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("decode", f"expected a msgpack map, got a msgpack {_wire_type(obj)}")
    _check_keys(obj)
    missing = {"v", "kind", "id", "body"} - set(obj)
    if missing:
        raise ProtocolError("envelope", f"envelope lacks {sorted(missing)}; send {{v, kind, id, body}}")
    extra = set(obj) - {"v", "kind", "id", "body"}
    if extra:
        raise ProtocolError("envelope", f"envelope has unknown key(s) {sorted(extra)}")
    if not isinstance(obj["v"], int) or isinstance(obj["v"], bool):
        raise ProtocolError("envelope", f"v = {obj['v']!r} must be an integer")
    if obj["v"] != PROTOCOL_VERSION:
        raise ProtocolError("version", f"protocol version {obj['v']} is not supported; use v={PROTOCOL_VERSION}")
    if not isinstance(obj["id"], int) or isinstance(obj["id"], bool) or not 0 <= obj["id"] < 2**63:
        raise ProtocolError("envelope", f"id = {obj['id']!r} must be an integer in [0, 2^63)")
    if not isinstance(obj["body"], dict):
        raise ProtocolError("envelope", f"body must be a map, got {type(obj['body']).__name__}")
    kinds = allowed_kinds or (REQUEST_KINDS + REPLY_KINDS + PUSH_KINDS)
    if obj["kind"] not in kinds:
        raise ProtocolError("kind", f"kind {obj['kind']!r} is not one of {list(kinds)}")
    return Message(obj["kind"], obj["id"], obj["body"], obj["v"])


def _wire_type(obj: Any) -> str:
    """The msgpack name of a decoded value (replies name wire types, not Python classes)."""
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (bytes, "bin"),
                    (list, "array"), (dict, "map"), (type(None), "nil")):
        if isinstance(obj, t):
            return name
    return "extension"


def _check_keys(obj: Any) -> None:
    """Every map key a string, nesting at most MAX_NESTING (iterative: no recursion to exhaust)."""
    stack = [(obj, "", 0)]
    while stack:
        o, where, depth = stack.pop()
        if depth > MAX_NESTING:
            raise ProtocolError("decode", f"message nested deeper than {MAX_NESTING} levels (at {where or 'top'})")
        if isinstance(o, dict):
            for k, v in o.items():
                if not isinstance(k, str):
                    raise ProtocolError("envelope", f"map key {k!r:.60} at {where or 'top level'} is {_wire_type(k)}; "
                                        "every key must be a UTF-8 string (msgpack str, not bin)")
                stack.append((v, f"{where}.{k}" if where else k, depth + 1))
        elif isinstance(o, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(o))


def _typed(body: dict[str, Any], kind: str, cls: type) -> Any:
    if not isinstance(body, dict) or body.get("type") != kind:
        got = body.get("type") if isinstance(body, dict) else type(body).__name__
        raise ProtocolError("field", f"expected a {kind} map (type={kind!r}), got type={got!r}")
    try:
        return from_dict(body)
    except (ValueError, TypeError) as exc:
        raise ProtocolError("field", f"{kind}: {exc}") from None


def parse_report(body: dict[str, Any]) -> LinkReport:
    """The LinkReport in a ``report`` body; out-of-range fields raise ProtocolError('field')."""
    return _typed(body, "LinkReport", LinkReport)


def parse_allocate(body: dict[str, Any]) -> ControllerState:
    """The ControllerState of an ``allocate`` body {"state": ControllerState wire form}."""
    extra = set(body) - {"state"}
    if extra or "state" not in body:
        raise ProtocolError("field", f"allocate body needs exactly 'state' (a ControllerState); got keys {sorted(body)}")
    try:
        return ControllerState.from_dict(body["state"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ProtocolError("field", f"state: {exc}") from None


def plan_to_wire(plan: Plan) -> dict[str, Any]:
    """Plan -> its wire map."""
    return plan.to_dict()


def plan_from_wire(data: Any) -> Plan:
    """Inverse of `plan_to_wire`, checking every Allocation."""
    if not isinstance(data, dict):
        raise ProtocolError("field", f"plan must be a map (Plan wire form), got {type(data).__name__}")
    try:
        return Plan.from_dict(data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ProtocolError("field", f"plan: {exc}") from None
