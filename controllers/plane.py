"""The ZeroMQ control plane: a controller served over ROUTER/DEALER, updates pushed over PUB/SUB.

ControlServer runs a controller in a background thread. Requests (messages.py) arrive on a ROUTER
socket; each gets one reply carrying the request id. Every allocation is also published on a PUB socket
(topic b"allocation"). A bad message gets an ``error`` reply and is counted; the server keeps serving.

ControlClient talks to it from the same process (inproc://, pass the server's context) or another one
(tcp://). It uses a DEALER socket so a late reply never blocks the next request: replies whose id is
not the one awaited are dropped. If no reply comes within `timeout_s`, `request_allocation` returns the
safe fallback plan (every allocation ``fallback=True``) and the caller carries on.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from typing import Any

import zmq

from sagin_hil.controllers.base import Controller, fallback_allocation, fallback_plan
from sagin_hil.controllers.messages import (
    MAX_MESSAGE_BYTES,
    REPLY_KINDS,
    REQUEST_KINDS,
    Message,
    ProtocolError,
    decode,
    encode,
    parse_allocate,
    parse_report,
    plan_from_wire,
    plan_to_wire,
)
from sagin_hil.datatypes import ControllerState, LinkReport, Plan, to_dict

__all__ = ["ControlServer", "ControlClient", "UPDATE_TOPIC"]

UPDATE_TOPIC = b"allocation"
_POLL_MS = 20
MAX_LINKS = 4096  # distinct link ids whose latest report the server keeps; reports for more are refused
MAX_LINK_ID_CHARS = 128
_MAX_RECV_BYTES = 16 * MAX_MESSAGE_BYTES  # ZeroMQ drops a peer sending more; 1..16 MiB get a too_large reply
log = logging.getLogger(__name__)


def _pub_endpoint_for(endpoint: str) -> str:
    if endpoint.startswith("tcp://"):
        host = endpoint[len("tcp://"):].rsplit(":", 1)[0]
        return f"tcp://{host}:*"
    return endpoint + ".pub"  # inproc:// and ipc://


def _bindable(endpoint: str) -> str:
    # ZeroMQ picks a free port for "*"; accept the usual ":0" spelling too.
    return endpoint[:-2] + ":*" if endpoint.startswith("tcp://") and endpoint.endswith(":0") else endpoint


class ControlServer:
    """Serve a Controller over ZeroMQ.

    Parameters
    ----------
    controller: the Controller whose `allocate` answers ``allocate`` requests.
    endpoint: where the ROUTER socket binds, e.g. "tcp://127.0.0.1:5560", "tcp://127.0.0.1:0" (any free
      port) or "inproc://ctl" (same process; clients must then share `context`).
    context: a zmq.Context to use (default: a new one, terminated by `stop`).
    pub_endpoint: where the PUB socket binds (default: same host, any port; or "<inproc>.pub").

    After `start()`, `endpoint` and `pub_endpoint` hold the bound addresses; `stats` counts requests and
    errors by code.
    """

    def __init__(self, controller: Controller, endpoint: str = "tcp://127.0.0.1:5560",
                 context: zmq.Context | None = None, pub_endpoint: str | None = None):
        if not isinstance(controller, Controller):
            raise TypeError(f"controller must be a Controller, got {type(controller).__name__}; "
                            "build one with get_controller(name)")
        self.controller = controller
        self.endpoint = endpoint
        self.pub_endpoint = pub_endpoint or _pub_endpoint_for(endpoint)
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.reports: dict[str, LinkReport] = {}
        self.stats: dict[str, Any] = {"n_requests": 0, "n_reports": 0, "n_allocations": 0, "n_errors": 0,
                                      "errors": {}}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._outbox: queue.Queue[bytes] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> ControlServer:
        """Bind the sockets and serve in a daemon thread; returns self once bound."""
        if self._thread is not None:
            raise RuntimeError("ControlServer already started; call stop() first")
        self._thread = threading.Thread(target=self._serve, name="sagin-control-server", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"ControlServer could not bind {self.endpoint}: {self._startup_error}")
        return self

    def stop(self) -> None:
        """Stop serving, close the sockets (and the context if the server made it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self._own_context:
            self.context.destroy(linger=0)  # never hangs on a client socket left open in this context

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def publish(self, plan: Plan) -> None:
        """Push a plan update to every subscriber (thread-safe)."""
        self._outbox.put(encode(Message("update", 0, {"plan": plan_to_wire(plan)})))

    # -- serving -----------------------------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            router = self.context.socket(zmq.ROUTER)
            router.setsockopt(zmq.LINGER, 0)
            router.setsockopt(zmq.MAXMSGSIZE, _MAX_RECV_BYTES)
            router.bind(_bindable(self.endpoint))
            self.endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
            pub = self.context.socket(zmq.PUB)
            pub.setsockopt(zmq.LINGER, 0)
            pub.bind(_bindable(self.pub_endpoint))
            self.pub_endpoint = pub.getsockopt(zmq.LAST_ENDPOINT).decode()
        except zmq.ZMQError as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if poller.poll(_POLL_MS):
                    frames = router.recv_multipart()
                    reply = self._handle(frames[-1])
                    router.send_multipart(frames[:-1] + [encode(reply)])
                    if reply.kind == "allocation":
                        pub.send_multipart([UPDATE_TOPIC, encode(Message("update", reply.id, reply.body))])
                while not self._outbox.empty():
                    pub.send_multipart([UPDATE_TOPIC, self._outbox.get_nowait()])
        finally:
            router.close()
            pub.close()

    def _error(self, code: str, message: str, msg_id: int = 0) -> Message:
        self.stats["n_errors"] += 1
        self.stats["errors"][code] = self.stats["errors"].get(code, 0) + 1
        return Message("error", msg_id, {"code": code, "message": message})

    def _handle(self, data: bytes) -> Message:
        self.stats["n_requests"] += 1
        msg_id = 0
        try:
            msg = decode(data, REQUEST_KINDS)
            msg_id = msg.id
            if msg.kind == "report":
                report = parse_report(msg.body)
                if len(report.link_id) > MAX_LINK_ID_CHARS:
                    raise ProtocolError("field", f"link_id of {len(report.link_id)} characters is longer than "
                                        f"{MAX_LINK_ID_CHARS}; name links 'tx->rx', e.g. 'leo0->uav0'")
                if report.link_id not in self.reports and len(self.reports) >= MAX_LINKS:
                    # bounded: a client inventing link ids must not grow the server (or the controller)
                    raise ProtocolError("limit", f"report for a new link {report.link_id[:80]!r} refused: the server "
                                        f"keeps at most {MAX_LINKS} links; reuse link ids or restart the server")
                self.reports[report.link_id] = report
                self.controller.observe(report)
                self.stats["n_reports"] += 1
                return Message("ack", msg_id, {"n_reports": self.stats["n_reports"]})
            if msg.kind == "allocate":
                state = parse_allocate(msg.body)
                # the receivers' latest reports, under any the requester measured itself
                state.reports = {**self.reports, **state.reports}
                try:
                    plan = self.controller.allocate(state)
                except Exception as exc:  # the controller's bug must not kill the plane
                    # the controller's own words for its author; the exception's class only when it said nothing
                    why = str(exc) or f"raised {type(exc).__name__} without a message"
                    return self._error("controller", f"controller {self.controller.name!r} failed on this state: {why}",
                                       msg_id)
                self.stats["n_allocations"] += 1
                return Message("allocation", msg_id, {"plan": plan_to_wire(plan)})
            if msg.kind == "ping":
                return Message("pong", msg_id, {"algo": self.controller.name, "pub_endpoint": self.pub_endpoint,
                                                "uptime_s": time.monotonic() - self._t0})
            return Message("stats", msg_id, {k: (dict(v) if isinstance(v, dict) else v)
                                             for k, v in self.stats.items()})
        except ProtocolError as exc:
            return self._error(exc.code, str(exc), msg_id)
        except Exception as exc:  # anything unforeseen is still a counted error, never a crash
            log.debug("control plane: request not understood", exc_info=True)
            return self._error("field", f"the request body could not be read: {str(exc)[:300]}", msg_id)


class ControlClient:
    """Send link reports and ask for allocations.

    Parameters
    ----------
    endpoint: the server's endpoint (ControlServer.endpoint).
    timeout_s: how long to wait for each reply before falling back.
    context: zmq.Context; must be the server's for inproc:// endpoints.

    `n_timeouts`, `n_errors` and `last_error` record what went wrong; nothing raises on a slow or
    broken controller.
    """

    def __init__(self, endpoint: str, timeout_s: float = 0.5, context: zmq.Context | None = None):
        if not timeout_s > 0:
            raise ValueError(f"timeout_s = {timeout_s!r} must be > 0 seconds")
        if endpoint.startswith("inproc://") and context is None:
            raise ValueError(f"{endpoint} is an inproc endpoint: pass the server's context, "
                             "ControlClient(srv.endpoint, context=srv.context)")
        self.endpoint = endpoint
        self.timeout_s = float(timeout_s)
        self._own_context = context is None
        self.context = context or zmq.Context()
        self._sock = self.context.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self._sub: zmq.Socket | None = None
        self._ids = itertools.count(1)
        self.n_timeouts = 0
        self.n_errors = 0
        self.n_fallbacks = 0
        self.last_error: str | None = None

    def close(self) -> None:
        self._sock.close()
        if self._sub is not None:
            self._sub.close()
        if self._own_context:
            self.context.term()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- request/reply -----------------------------------------------------------------------------------
    def request(self, kind: str, body: dict[str, Any]) -> Message | None:
        """Send one request and wait for its reply; None on timeout. Error replies are returned as-is."""
        msg_id = next(self._ids)
        self._sock.send_multipart([b"", encode(Message(kind, msg_id, body))])
        return self._await(msg_id)

    def request_raw(self, payload: bytes) -> Message | None:
        """Send raw bytes (tests, fuzzing) and return the next reply, or None on timeout."""
        self._sock.send_multipart([b"", payload])
        return self._await(None)

    def _await(self, msg_id: int | None) -> Message | None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            left_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            if not self._sock.poll(left_ms, zmq.POLLIN):
                self.n_timeouts += 1
                self.last_error = f"no reply within {self.timeout_s} s from {self.endpoint}"
                return None
            try:
                reply = decode(self._sock.recv_multipart()[-1], REPLY_KINDS)
            except ProtocolError as exc:
                self.n_errors += 1
                self.last_error = f"bad reply: {exc}"
                continue
            if msg_id is None or reply.id == msg_id or (reply.kind == "error" and reply.id == 0):
                if reply.kind == "error":
                    self.n_errors += 1
                    self.last_error = f"{reply.body.get('code')}: {reply.body.get('message')}"
                return reply
            # A late reply to an earlier, timed-out request: drop it.

    def report(self, report: LinkReport) -> bool:
        """Publish a measurement; True once the server accepted it."""
        reply = self.request("report", to_dict(report))
        return reply is not None and reply.kind == "ack"

    def request_allocation(self, state: ControllerState) -> Plan:
        """The controller's Plan for `state`, or the fallback plan on timeout or error; a task the plan
        leaves out gets the fallback allocation on its first candidate route."""
        reply = self.request("allocate", {"state": state.to_dict()})
        if reply is not None and reply.kind == "allocation":
            try:
                plan = plan_from_wire(reply.body.get("plan"))
            except ProtocolError as exc:
                self.n_errors += 1
                self.last_error = f"bad plan: {exc}"
            else:
                missing = [t for t in state.tasks if t.task_id not in plan.allocations]
                if missing:  # a task the controller did not decide for goes on the safe default
                    self.n_fallbacks += 1
                    self.last_error = f"plan lacks task(s) {[t.task_id for t in missing]}; they use the fallback"
                    for t in missing:
                        plan.allocations[t.task_id] = fallback_allocation(t.task_id, state.routes[t.task_id][0])
                return plan
        self.n_fallbacks += 1
        return fallback_plan(state)

    def ping(self) -> dict[str, Any] | None:
        reply = self.request("ping", {})
        return reply.body if reply is not None and reply.kind == "pong" else None

    def stats(self) -> dict[str, Any] | None:
        reply = self.request("stats", {})
        return reply.body if reply is not None and reply.kind == "stats" else None

    # -- pushed updates ----------------------------------------------------------------------------------
    def subscribe(self, pub_endpoint: str | None = None) -> None:
        """Subscribe to pushed allocations (asks the server for its PUB endpoint if not given)."""
        if pub_endpoint is None:
            info = self.ping()
            if info is None:
                raise TimeoutError(f"server at {self.endpoint} did not answer ping; cannot find its PUB socket")
            pub_endpoint = info["pub_endpoint"]
        self._sub = self.context.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.SUBSCRIBE, UPDATE_TOPIC)
        self._sub.connect(pub_endpoint)

    def poll_update(self, timeout_s: float = 0.0) -> Plan | None:
        """The next pushed Plan, or None if none arrived within timeout_s."""
        if self._sub is None:
            raise RuntimeError("call subscribe() before poll_update()")
        if not self._sub.poll(int(timeout_s * 1000), zmq.POLLIN):
            return None
        _, payload = self._sub.recv_multipart()
        msg = decode(payload, ("update",))
        return plan_from_wire(msg.body.get("plan"))
