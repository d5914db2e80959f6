"""Message shapes (rpc/schema.py): every message type has one, and the check refuses bad ones."""

from __future__ import annotations

import logging

import pytest
from ownrun.engine.rpc import protocol as P
from ownrun.engine.rpc import schema as S
from ownrun.engine.rpc.transport import pack

ADDR = "tcp://127.0.0.1:5000"
PUSH = [P.PUSH_TASK, ADDR, b"t" * 20, "f", 0, "fid", None, 1, 0, [], [], None, None]


def test_every_message_type_has_a_shape():
    kinds = {v for k, v in vars(P).items()
             if k.isupper() and isinstance(v, int) and k not in {"VALUE_INLINE", "VALUE_SHM", "VALUE_ERROR", "MAX_MESSAGE_FRAMES", "PACKED_ARG_MAX"} | P.FIELDS}
    assert kinds == set(S.SHAPES)


@pytest.mark.parametrize("header", [
    [P.HEARTBEAT, None, ADDR, {}, {}, {}],  # the junk heartbeat that crashed the head
    [P.HEARTBEAT, "n1", "not an address", {}, {}, {}],
    [P.HEARTBEAT, "n1", ADDR, {}, {}],  # short
    PUSH[:6],  # a short PUSH_TASK
    [*PUSH[:2], [1, 2], *PUSH[3:]],  # a list as task id
    [*PUSH[:7], 10**9, *PUSH[8:]],  # a count out of range
    [P.EXIT_WORKER],  # no sender
    [P.SHUTDOWN_NODE],  # no target node
    [P.KV_PUT, 1, ADDR, "k", b"v", True, "extra"],
    [P.ACTOR_LOOKUP, 1, ADDR, "name", 7],  # optional field of the wrong type
    [9999], [], ["x"], [None, 1], [True],
])
def test_malformed_headers_are_refused_with_a_reason(header):
    assert not S.check(header)
    assert S.why(header)


@pytest.mark.parametrize("header", [
    PUSH,
    [P.TASK_REPLY, ADDR, b"t", [[P.VALUE_INLINE, 1, None]], None, b"w", 0.5],
    [P.ACTOR_LOOKUP, 1, ADDR, "name"], [P.ACTOR_LOOKUP, 1, ADDR, b"id", None],
    [P.HEARTBEAT, "n1", ADDR, {"CPU": 1.0}, {"CPU": 0.0}, {}],
    [P.EXIT_WORKER, ADDR], [P.SHUTDOWN_NODE, "node0"], [P.REPLY, 3, False, ["E", "m"]],
])
def test_well_formed_headers_pass(header):
    assert S.check(header)


def test_the_inbox_drops_counts_and_logs_once_per_type(caplog):
    inbox = S.Inbox(logging.getLogger("test"), "svc", {P.PUSH_TASK: None, P.KV_GET: None})
    assert inbox.header([pack(PUSH)]) == PUSH
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert inbox.header([pack(PUSH[:5])]) is None
        assert inbox.header([b"\xc1"]) is None
        assert inbox.header([pack([P.HEAD_STATS, 1, ADDR])]) is None  # well-formed, not handled here
    assert inbox.malformed == 5 and inbox.by_kind == {P.PUSH_TASK: 3, "undecodable": 1, P.HEAD_STATS: 1}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and "5 fields, expected 13" in lines[0] and "not handled here" in lines[2]


OID = b"o" * 20
_NESTED_INBOX = {P.WARM_MODULES: None, P.VALUE_REPLY: None}


@pytest.mark.parametrize("frames", [
    [pack([P.WARM_MODULES, ["numpy", {"a": 1}]])],  # a dict where a module name goes
    [pack([P.WARM_MODULES, ["numpy", 7]])],
    [pack([P.WARM_MODULES, ["m"] * (S.MAX_MODULES + 1)])],
    [pack([P.VALUE_REPLY, OID, [], ADDR])],  # no value kind
    [pack([P.VALUE_REPLY, OID, [P.VALUE_INLINE, 2, None], ADDR]), b"x"],  # names 2 frames, has 1
    [pack([P.VALUE_REPLY, OID, [P.VALUE_INLINE, -1, None], ADDR])],
    [pack([P.VALUE_REPLY, OID, [P.VALUE_INLINE, 1, [[OID]]], ADDR]), b"x"],  # a contained ref without owner
    [pack([P.VALUE_REPLY, OID, [P.VALUE_INLINE, 1, [["id", ADDR]]], ADDR]), b"x"],  # a str as its id
    [pack([P.VALUE_REPLY, OID, [P.VALUE_SHM, "n1", 10, None], ADDR])],  # no daemon
    [pack([P.VALUE_REPLY, OID, [P.VALUE_SHM, "n1", "10", None, ADDR], ADDR])],
    [pack([P.VALUE_REPLY, OID, [9, 1, None], ADDR]), b"x"],  # unknown value kind
])
def test_malformed_nested_content_is_dropped_and_counted(frames):
    inbox = S.Inbox(logging.getLogger("test"), "svc", _NESTED_INBOX)
    assert inbox.header(frames) is None
    assert inbox.malformed == 1 and inbox.last_dropped[1] == "malformed nested content"


@pytest.mark.parametrize("frames", [
    [pack([P.WARM_MODULES, ["numpy", "cv2", "apps.video.pipeline"]])],
    [pack([P.VALUE_REPLY, OID, [P.VALUE_INLINE, 1, None], ADDR]), b"x"],
    [pack([P.VALUE_REPLY, OID, [P.VALUE_ERROR, 2, [[OID, ADDR]]], ADDR]), b"x", b"y"],
    [pack([P.VALUE_REPLY, OID, [P.VALUE_SHM, "n1", 10, [[OID, ADDR]], ADDR], ADDR])],
])
def test_well_formed_nested_content_passes(frames):
    inbox = S.Inbox(logging.getLogger("test"), "svc", _NESTED_INBOX)
    assert inbox.header(frames) is not None and inbox.malformed == 0
