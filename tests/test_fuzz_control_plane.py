"""Hostile input at the control plane (ControlServer over real ZeroMQ sockets).

First the findings of issue 20 (30,000 reports with distinct link ids kept forever; error replies naming raw
Python exceptions; bytes keys taken as a field error), then hypothesis fuzzing: random bytes, random msgpack
values, envelopes with random fields, mutated valid messages, deep nesting. Every message must get exactly
one reply (an `error` with a listed code and a message without Python exception names, or the answer to
a valid request), and the server must answer ping / stats / a report correctly afterwards.
`make fuzz` sends FUZZ_MESSAGES (100,000).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sagin_hil.controllers import get_controller
from sagin_hil.controllers.messages import ERROR_CODES, MAX_MESSAGE_BYTES, MAX_NESTING, PROTOCOL_VERSION, Message, encode
from sagin_hil.controllers.plane import MAX_LINK_ID_CHARS, MAX_LINKS, ControlClient, ControlServer
from sagin_hil.datatypes import LinkReport, to_dict

FUZZ_MESSAGES = int(os.environ.get("FUZZ_MESSAGES", "100000"))
FAST_MESSAGES = 300
REPORT_DIR = Path(os.environ.get("FUZZ_REPORT_DIR", "runs/fuzz"))
PY_EXCEPTION = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Data)\b")  # TypeError, ExtraData, KeyError ...


@pytest.fixture
def served():
    srv = ControlServer(get_controller("link-adaptation"), endpoint="tcp://127.0.0.1:0").start()
    cli = ControlClient(srv.endpoint, timeout_s=5.0)
    yield srv, cli
    cli.close()
    srv.stop()


def report_body(link_id: str, snr_db: float = 10.0) -> dict:
    return to_dict(LinkReport(link_id, time_s=1.0, snr_db=snr_db))


def raw(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def check_error(reply: Message | None, code: str, needle: str) -> None:
    assert reply is not None, "no reply"
    assert reply.kind == "error" and reply.body["code"] == code, reply
    assert needle in reply.body["message"], reply.body
    assert not PY_EXCEPTION.search(reply.body["message"]), reply.body


def assert_answers_correctly(srv: ControlServer, cli: ControlClient) -> None:
    assert srv._thread is not None and srv._thread.is_alive()
    pong = cli.ping()
    assert pong is not None and pong["algo"] == "link-adaptation"
    n = cli.stats()["n_reports"]
    assert cli.report(LinkReport("leo0->uav0", time_s=2.0, snr_db=12.5))  # a link it already knows, or room
    assert cli.stats()["n_reports"] == n + 1
    assert srv.reports["leo0->uav0"].snr_db == 12.5


# ============================================================================ the findings of the issue
def test_thirty_thousand_link_ids_are_bounded(served):
    srv, cli = served
    cli.report(LinkReport("leo0->uav0", time_s=1.0, snr_db=10.0))
    ctx = zmq.Context.instance()
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.connect(srv.endpoint)
    codes: dict[str, int] = {}
    limit_msg = ""
    for start in range(0, 30_000, 500):  # pipelined in windows (the ROUTER drops past its high-water mark)
        for i in range(start, start + 500):
            d.send_multipart([b"", encode(Message("report", i + 1, report_body(f"x{i}->y{i}")))])
        for _ in range(500):
            assert d.poll(10_000), "a report went unanswered"
            reply = msgpack.unpackb(d.recv_multipart()[-1])
            kind = reply["body"]["code"] if reply["kind"] == "error" else reply["kind"]
            codes[kind] = codes.get(kind, 0) + 1
            if kind == "limit":
                limit_msg = reply["body"]["message"]
    d.close()
    assert codes == {"ack": MAX_LINKS - 1, "limit": 30_000 - MAX_LINKS + 1}, codes
    assert f"at most {MAX_LINKS} links" in limit_msg and "refused" in limit_msg
    assert len(srv.reports) == MAX_LINKS and srv.stats["errors"]["limit"] == 30_000 - MAX_LINKS + 1
    assert_answers_correctly(srv, cli)  # a known link still reports


def test_long_link_id_is_refused(served):
    srv, cli = served
    check_error(cli.request("report", report_body("a->" + "b" * 500)), "field", f"longer than {MAX_LINK_ID_CHARS}")
    assert_answers_correctly(srv, cli)


def test_errors_do_not_name_python_exceptions(served):
    srv, cli = served
    check_error(cli.request_raw(b"\x92\x01\x02"), "decode", "expected a msgpack map, got a msgpack array")
    check_error(cli.request_raw(raw({"v": 1}) + b"\x00"), "decode", "not a msgpack message: ")
    check_error(cli.request_raw(b"\xc1"), "decode", "not a msgpack message")
    check_error(cli.request_raw(raw({"v": PROTOCOL_VERSION, "kind": "report", "id": 3, "body": {"type": "LinkReport"}})),
                "field", "LinkReport")
    check_error(cli.request_raw(raw({"v": PROTOCOL_VERSION, "kind": "report", "id": 3,
                                     "body": {**report_body("a->b"), "snr_db": "x"}})), "field", "LinkReport")
    check_error(cli.request_raw(raw({"v": PROTOCOL_VERSION, "kind": "allocate", "id": 4, "body": {"state": [1]}})),
                "field", "state")
    assert_answers_correctly(srv, cli)


def test_bytes_keys_are_an_envelope_error(served):
    srv, cli = served
    mixed = {"v": PROTOCOL_VERSION, b"kind": "ping", "kind": "ping", "id": 5, "body": {}}
    check_error(cli.request_raw(raw(mixed)), "envelope", "map key b'kind' at top level is bin")
    in_body = {"v": PROTOCOL_VERSION, "kind": "report", "id": 6, "body": {**report_body("a->b"), b"snr_db": 1.0}}
    check_error(cli.request_raw(raw(in_body)), "envelope", "map key b'snr_db' at body is bin")
    assert_answers_correctly(srv, cli)


def test_deep_nesting_and_oversize_are_refused(served):
    srv, cli = served
    deep = {"v": PROTOCOL_VERSION, "kind": "ping", "id": 7, "body": {"a": None}}
    node = deep["body"]
    for _ in range(MAX_NESTING + 5):
        node["a"] = {"a": None}
        node = node["a"]
    check_error(cli.request_raw(raw(deep)), "decode", f"nested deeper than {MAX_NESTING} levels")
    reply = cli.request_raw(b"\x91" * 100_000 + b"\xc0")  # msgpack's own stack limit
    assert reply is not None and reply.kind == "error" and reply.body["code"] == "decode"
    check_error(cli.request_raw(b"\x00" * (MAX_MESSAGE_BYTES + 1)), "too_large", f"exceeds {MAX_MESSAGE_BYTES}")
    assert_answers_correctly(srv, cli)


# ============================================================================ fuzzing
scalar = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=12)
          | st.binary(max_size=12))
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8) | st.binary(max_size=4), inner, max_size=4), max_leaves=12)
link_id = st.sampled_from(["leo0->uav0", "uav0->user0", "", "->", "a->b"]) | st.text(max_size=20)
weird_num = st.floats() | st.integers(-(2**63), 2**64 - 1) | st.sampled_from([1e300, -1e300, 500.0, "x", None, True])
report_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["LinkReport", "LinkReport", "Task", 5]), "link_id": link_id, "time_s": weird_num,
     "snr_db": weird_num},
    optional={"bler": weird_num, "ber": weird_num, "evm_rms": weird_num, "n_blocks": weird_num, "extra": value},
)
envelope = st.fixed_dictionaries(
    {"v": st.sampled_from([PROTOCOL_VERSION, PROTOCOL_VERSION, 1, 2, 99, "1", None, True, -1]),
     "kind": st.sampled_from(["report", "report", "ping", "stats", "allocate", "reboot", "", 3, None]),
     "id": st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1, -1, "x", 1.5, True]) | st.integers(0, 2**62),
     "body": st.one_of(report_like, value, st.just({}),
                       st.fixed_dictionaries({"state": value}, optional={"task": value, "x": value}))},
    optional={"extra": value},
)


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        if not b:
            break
        i = pos % len(b)
        if val < 128:
            b[i] = val * 2 % 256
        elif val < 192:
            b.insert(i, val)
        else:
            del b[i]
    return bytes(b)


def _deep(depth: int, kind: int) -> bytes:
    if kind == 0:
        return b"\x91" * depth + b"\xc0"  # arrays
    return b"\x81\xa1a" * depth + b"\xc0"  # maps {"a": ...}


message = st.one_of(
    envelope.map(raw), envelope.map(raw), envelope.map(raw),
    value.map(raw),
    st.binary(max_size=200),
    st.tuples(envelope.map(raw), st.lists(st.tuples(st.integers(0, 10**4), st.integers(0, 255)), min_size=1,
                                          max_size=4)).map(lambda t: _mutate(*t)),
    st.builds(_deep, st.integers(1, 200_000), st.integers(0, 1)),
    st.sampled_from([b"", b"\xc0", b"\x80", raw({"v": PROTOCOL_VERSION, "kind": "ping", "id": 1, "body": {}}) * 2]),
)


def fuzz_plane(srv: ControlServer, cli: ControlClient, n_messages: int) -> dict:
    counts = {"messages": 0, "replies": 0, "errors": 0, "answers": 0, "examples": 0}
    codes: dict[str, int] = {}

    @settings(max_examples=max(10, min(500, n_messages // 4)), deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(message, min_size=1, max_size=8))
    def run(batch):
        for data in batch:
            reply = cli.request_raw(data)
            counts["messages"] += 1
            assert reply is not None, f"no reply to {data!r:.300}"
            counts["replies"] += 1
            if reply.kind == "error":
                counts["errors"] += 1
                code = reply.body["code"]
                codes[code] = codes.get(code, 0) + 1
                assert code in ERROR_CODES, reply.body
                if code != "controller":  # a controller's own failure is reported with its exception type
                    assert not PY_EXCEPTION.search(reply.body["message"]), reply.body
            else:
                counts["answers"] += 1
                assert reply.kind in ("ack", "pong", "stats", "allocation"), reply
        assert cli.ping() is not None  # a valid request after every batch
        counts["examples"] += 1

    t0 = time.perf_counter()
    while counts["messages"] < n_messages:
        run()
    counts["wall_s"] = round(time.perf_counter() - t0, 1)
    counts["error_codes"] = codes
    counts["links_kept"] = len(srv.reports)
    assert_answers_correctly(srv, cli)
    return counts


def test_control_plane_fuzz_fast(served):
    srv, cli = served
    counts = fuzz_plane(srv, cli, FAST_MESSAGES)
    assert counts["replies"] == counts["messages"] >= FAST_MESSAGES


@pytest.mark.fuzz
@pytest.mark.timeout(3600)
def test_control_plane_fuzz_long(served):
    srv, cli = served
    counts = fuzz_plane(srv, cli, FUZZ_MESSAGES)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / "control-plane.json").write_text(json.dumps(counts, indent=2))
    print(f"fuzz control-plane: {counts}")
    assert counts["replies"] == counts["messages"] >= FUZZ_MESSAGES and counts["links_kept"] <= MAX_LINKS
