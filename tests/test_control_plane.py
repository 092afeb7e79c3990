"""The ZeroMQ control plane with real sockets: round trips, bad messages, a slow controller, pushed updates."""

import math
import sys
import time
import subprocess

import msgpack
import numpy as np
import pytest
import zmq

from sagin_hil.controllers import Controller
from sagin_hil.controllers.messages import PROTOCOL_VERSION, Message, encode
from sagin_hil.controllers.plane import ControlClient, ControlServer
from sagin_hil.datatypes import Allocation, ControllerState, HopAllocation, LinkReport, Plan, Route, Task, to_dict
from sagin_hil.hil.ports import free_port
from sagin_hil.phy.mcs import MCS_TABLE, get_mcs

ROUTE = ["leo0->uav0", "uav0->user0"]
PATH = Route(("leo0", "uav0", "user0"))
QUALITY = {"bpp": [0.05, 0.25, 1.0, 2.0], "psnr_db": [22.0, 28.0, 34.5, 38.0]}


class StepBler:
    """A test BLER table: an MCS works above the Shannon SNR of its efficiency plus 2 dB."""

    def bler(self, name, snr_db):
        se = get_mcs(name).spectral_efficiency
        return 0.0 if snr_db >= 10 * np.log10(2**se - 1) + 2.0 else 1.0


class SlowController(Controller):
    def __init__(self, delay_s):
        self.delay_s = delay_s

    def allocate(self, state):
        time.sleep(self.delay_s)
        return Plan({t.task_id: Allocation(t.task_id, PATH, hops={h: HopAllocation("16qam-1/2") for h in ROUTE})
                     for t in state.tasks})


class BrokenController(Controller):
    def allocate(self, state):
        raise RuntimeError("solver diverged")


def _task(i=1):
    return Task(task_id=i, image=None, source="leo0", destination="user0", deadline_s=5.0, quality_min_db=25.0,
                shape=(256, 256, 3))


def _state(*task_ids, snr=None):
    """A ControllerState with one task per id on the LEO -> UAV -> user route; `snr` predicted on every hop."""
    tasks = [_task(i) for i in task_ids or (1,)]
    return ControllerState(tasks=tasks, routes={t.task_id: [PATH] for t in tasks},
                           predicted_snr_db={h: snr for h in ROUTE} if snr is not None else {},
                           bandwidth_hz={h: 10e6 for h in ROUTE}, propagation_delay_s={h: 1e-3 for h in ROUTE})


@pytest.fixture
def la():
    from sagin_hil.controllers.link_adaptation import LinkAdaptation

    return LinkAdaptation(bler_table=StepBler(), quality_table=QUALITY)  # objects, not options: built directly


@pytest.fixture
def served(la):
    srv = ControlServer(la, endpoint="tcp://127.0.0.1:0").start()
    cli = ControlClient(srv.endpoint, timeout_s=2.0)
    yield srv, cli
    cli.close()
    srv.stop()


def test_tcp_report_then_allocation_uses_measured_snr(served, la):
    srv, cli = served
    assert srv.endpoint.startswith("tcp://127.0.0.1:") and not srv.endpoint.endswith(":0")
    assert cli.report(LinkReport("leo0->uav0", time_s=1.0, snr_db=14.0, bler=0.01))
    assert cli.report(LinkReport("uav0->user0", time_s=1.0, snr_db=2.0))
    alloc = cli.request_allocation(_state(1)).allocations[1]
    assert alloc.hop("leo0->uav0").mcs == la.choose_mcs(14.0).name
    assert alloc.hop("uav0->user0").mcs == la.choose_mcs(2.0).name
    assert not alloc.fallback
    assert srv.reports["leo0->uav0"].bler == 0.01
    st = cli.stats()
    assert st["n_reports"] == 2 and st["n_allocations"] == 1 and st["n_errors"] == 0
    assert cli.ping()["algo"] == "link-adaptation"


def test_inproc_shares_the_context(la):
    ctx = zmq.Context()
    srv = ControlServer(la, endpoint="inproc://ctl-test", context=ctx).start()
    with ControlClient(srv.endpoint, timeout_s=2.0, context=ctx) as cli:
        alloc = cli.request_allocation(_state(1, snr=20.0)).allocations[1]
        assert all(h.mcs == la.choose_mcs(20.0).name for h in alloc.hops.values())
    with pytest.raises(ValueError, match="context"):
        ControlClient(srv.endpoint)
    srv.stop()
    ctx.term()


def _raw(cli, obj_or_bytes):
    data = obj_or_bytes if isinstance(obj_or_bytes, bytes) else msgpack.packb(obj_or_bytes)
    reply = cli.request_raw(data)
    assert reply is not None, "the server must answer every message"
    return reply


@pytest.mark.parametrize("payload, code, words", [
    (b"\xc1\xff garbage", "decode", "msgpack"),
    ({"v": 99, "kind": "ping", "id": 3, "body": {}}, "version", "99"),
    ({"v": PROTOCOL_VERSION, "kind": "reboot", "id": 3, "body": {}}, "kind", "reboot"),
    ({"v": PROTOCOL_VERSION, "kind": "ping", "body": {}}, "envelope", "id"),
    ({"v": PROTOCOL_VERSION, "kind": "report", "id": 4,
      "body": {**to_dict(LinkReport("a->b", 0.0, 5.0)), "snr_db": 500.0}}, "field", "snr_db"),
    ({"v": PROTOCOL_VERSION, "kind": "report", "id": 5,
      "body": {**to_dict(LinkReport("a->b", 0.0, 5.0)), "colour": "red"}}, "field", "colour"),
    ({"v": PROTOCOL_VERSION, "kind": "allocate", "id": 6,
      "body": {"state": {**_state(1).to_dict(), "tasks": [{**to_dict(_task()), "deadline_s": -1.0}]}}},
     "field", "deadline_s"),
    ({"v": PROTOCOL_VERSION, "kind": "allocate", "id": 7,
      "body": {"state": {**_state(1).to_dict(), "routes": {"1": [["leo0"]]}}}}, "field", "Route.nodes"),
    ({"v": PROTOCOL_VERSION, "kind": "allocate", "id": 8, "body": {"task": to_dict(_task())}}, "field", "'state'"),
])
def test_bad_messages_get_named_errors_and_are_counted(served, payload, code, words):
    srv, cli = served
    reply = _raw(cli, payload)
    assert reply.kind == "error" and reply.body["code"] == code
    assert words in reply.body["message"]
    assert srv.stats["errors"][code] == 1 and srv.stats["n_errors"] == 1
    assert cli.ping() is not None  # still serving


def test_fuzzed_bytes_never_kill_the_server(served):
    srv, cli = served
    rng = np.random.default_rng(7)
    for n in range(40):
        reply = _raw(cli, rng.integers(0, 256, size=int(rng.integers(1, 64)), dtype=np.uint8).tobytes())
        assert reply.kind == "error"
    assert srv.stats["n_errors"] == 40
    assert cli.request_allocation(_state(1)).allocations[1].fallback is False


def test_slow_controller_falls_back_and_the_run_carries_on():
    srv = ControlServer(SlowController(0.4), endpoint="tcp://127.0.0.1:0").start()
    with ControlClient(srv.endpoint, timeout_s=0.1) as cli:
        t0 = time.monotonic()
        alloc = cli.request_allocation(_state(1)).allocations[1]
        assert time.monotonic() - t0 < 0.3
        assert set(alloc.hops) == set(ROUTE) and alloc.fallback
        assert all(h.mcs == MCS_TABLE[0].name for h in alloc.hops.values())
        assert cli.n_timeouts == 1 and cli.n_fallbacks == 1
        time.sleep(0.5)  # the late reply arrives now; it must not be taken for the next answer
        cli.timeout_s = 2.0
        alloc = cli.request_allocation(_state(2)).allocations[2]
        assert not alloc.fallback and all(h.mcs == "16qam-1/2" for h in alloc.hops.values())
    srv.stop()


def test_broken_controller_gets_error_reply_and_client_falls_back():
    srv = ControlServer(BrokenController(), endpoint="tcp://127.0.0.1:0").start()
    with ControlClient(srv.endpoint, timeout_s=2.0) as cli:
        assert cli.request_allocation(_state(1)).allocations[1].fallback
        assert "solver diverged" in cli.last_error
        assert srv.stats["errors"] == {"controller": 1}
    srv.stop()


def test_allocations_are_pushed_to_subscribers(served):
    srv, cli = served
    cli.subscribe()
    time.sleep(0.2)  # PUB/SUB join
    plan = cli.request_allocation(_state(9))
    got = cli.poll_update(2.0)  # every allocation is pushed too
    assert got is not None and got == plan and 9 in got.allocations
    srv.publish(Plan({11: Allocation(11, PATH, hops={"uav0->user0": HopAllocation("qpsk-3/4")})},
                     waypoints_m={"uav0": (5.0, 0.0, 50.0)}))
    pushed = cli.poll_update(2.0)
    assert pushed is not None and pushed.allocations[11].hop("uav0->user0").mcs == "qpsk-3/4"
    assert pushed.waypoints_m == {"uav0": (5.0, 0.0, 50.0)}


def test_wire_round_trip_of_a_plan_message():
    from sagin_hil.controllers.messages import decode, plan_from_wire, plan_to_wire

    plan = Plan({3: Allocation(3, PATH, mode="jscc-1/12", bandwidth_ratio=1 / 12,
                               hops={"leo0->uav0": HopAllocation("analog", power_w=0.5, bandwidth_hz=2e6)})},
                waypoints_m={"uav0": (1.0, 2.0, 1000.0)}, trail={3: {"why": "test"}})
    msg = decode(encode(Message("allocation", 5, {"plan": plan_to_wire(plan)})))
    assert msg.id == 5 and plan_from_wire(msg.body["plan"]) == plan


def test_server_in_another_process(tmp_path):
    """`sagin-hil controller serve` in a child process answers a client in this one."""
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "sagin_hil", "controller", "serve", "--algo", "fixed-robust",
                             "--endpoint", endpoint], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with ControlClient(endpoint, timeout_s=0.5) as cli:
            info = None
            for _ in range(60):
                info = cli.ping()
                if info is not None:
                    break
            assert info is not None and info["algo"] == "fixed-robust"
            cli.timeout_s = 5.0
            alloc = cli.request_allocation(_state(1)).allocations[1]
            assert not alloc.fallback and all(h.mcs == MCS_TABLE[0].name for h in alloc.hops.values())
        proc.terminate()  # SIGTERM: the server stops cleanly and prints its counters
        out = proc.communicate(timeout=10)[0].decode()
        assert "stopped; stats" in out and '"n_allocations": 1' in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_tasks_missing_from_a_plan_fall_back(served):
    srv, cli = served

    class PartialController(Controller):
        def allocate(self, state):
            return Plan({1: Allocation(1, PATH, hops={"leo0->uav0": HopAllocation("qpsk-3/4")})})

    srv.controller = PartialController()
    plan = cli.request_allocation(_state(1, 2))
    assert plan.allocations[1].hop("leo0->uav0").mcs == "qpsk-3/4" and not plan.allocations[1].fallback
    assert plan.allocations[2].fallback and cli.n_fallbacks == 1 and "lacks task(s) [2]" in cli.last_error


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(snr=st.floats(-50, 100), ber=st.one_of(st.floats(0, 1), st.just(float("nan"))),
       cfo=st.floats(-1e6, 1e6), t=st.floats(0, 1e6), link=st.text(min_size=1, max_size=20))
def test_report_wire_round_trip_property(snr, ber, cfo, t, link):
    from sagin_hil.controllers.messages import decode, parse_report

    rep = LinkReport(link, time_s=t, snr_db=snr, ber=ber, cfo_hz=cfo)
    back = parse_report(decode(encode(Message("report", 1, to_dict(rep)))).body)
    assert back.link_id == link and back.snr_db == snr and back.cfo_hz == cfo
    assert (math.isnan(back.ber) and math.isnan(ber)) or back.ber == ber


@settings(max_examples=40, deadline=None)
@given(snr=st.one_of(st.floats(100.001, 1e9), st.floats(-1e9, -50.001), st.just(float("inf"))))
def test_out_of_range_reports_are_field_errors(snr):
    from sagin_hil.controllers.messages import ProtocolError, decode, parse_report

    body = {**to_dict(LinkReport("a->b", 0.0, 1.0)), "snr_db": snr}
    with pytest.raises(ProtocolError) as err:
        parse_report(decode(encode(Message("report", 1, body))).body)
    assert err.value.code == "field" and "snr_db" in str(err.value)
