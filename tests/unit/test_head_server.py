"""The head's request handling, driven with a recording transport (no sockets) and real tables."""

from __future__ import annotations

import time

import pytest
from ownrun.engine.head.liveness import DEFAULT_DEAD_AFTER
from ownrun.engine.head.server import PEER_LINGER, Head
from ownrun.engine.head.tables import HeadTables
from ownrun.engine.rpc import protocol as P
from ownrun.engine.rpc.transport import pack, unpack

CLIENT = "tcp://127.0.0.1:5001"
INFO = {"class_name": "Counter", "methods": {"incr": {}}, "owner": CLIENT}


class RecordingTransport:
    def __init__(self):
        self.sent: list[tuple[str, list]] = []
        self.watched: dict[str, object] = {}  # address -> token (watch_peer)
        self.disconnected: list[str] = []

    def send(self, address, frames) -> bool:
        self.sent.append((address, unpack(frames[0])))
        return True

    def watch_peer(self, address, token) -> None:
        self.watched[address] = token

    def disconnect(self, address) -> None:
        self.disconnected.append(address)

    def replies(self) -> dict[int, tuple[bool, object]]:
        return {h[1]: (h[2], h[3]) for _, h in self.sent if h[0] == P.REPLY}


@pytest.fixture
def head(tmp_path):
    tables = HeadTables.open(str(tmp_path))
    h = Head(RecordingTransport(), tables)
    yield h
    h.tables.close()


def send(head: Head, *header) -> None:
    head.handle([pack(list(header))])


def restarted(head: Head) -> Head:
    path = head.tables.path
    head.tables.close()
    return Head(RecordingTransport(), HeadTables(path))


def test_lookup_of_a_starting_actor_waits_until_it_is_alive(head):
    send(head, P.ACTOR_REGISTER, 1, CLIENT, b"a1", "svc", INFO)
    send(head, P.ACTOR_LOOKUP, 2, CLIENT, "svc")
    assert 2 not in head.transport.replies()
    send(head, P.ACTOR_UPDATE, b"a1", "ALIVE", "tcp://127.0.0.1:6000", None, b"w1")
    ok, view = head.transport.replies()[2]
    assert ok and view["address"] == "tcp://127.0.0.1:6000" and view["info"]["class_name"] == "Counter"


def test_duplicate_live_name_is_refused(head):
    send(head, P.ACTOR_REGISTER, 1, CLIENT, b"a1", "svc", INFO)
    send(head, P.ACTOR_REGISTER, 2, CLIENT, b"a2", "svc", INFO)
    assert head.transport.replies()[2] == (False, "an actor named 'svc' already exists")


def test_get_if_exists_of_concurrent_creators_gets_the_one_registered_actor(head):
    asking = dict(INFO, get_if_exists=True, max_restarts=2, max_task_retries=-1)
    send(head, P.ACTOR_REGISTER, 1, CLIENT, b"a1", "svc", asking)
    send(head, P.ACTOR_REGISTER, 2, "tcp://127.0.0.1:5002", b"a2", "svc", asking)
    replies = head.transport.replies()
    assert replies[1] == (True, None)  # registered: the first creator creates it
    ok, view = replies[2]
    assert ok and view["actor_id"] == b"a1"  # the second gets the first's, not an error
    assert (view["info"]["max_restarts"], view["info"]["max_task_retries"]) == (2, -1)
    assert head.tables.find_actor("svc").actor_id == b"a1" and b"a2" not in head.tables.actors


def test_actors_of_a_dead_owner_die_with_it_pending_ones_too_but_detached_ones_live_on(head):
    send(head, P.ACTOR_REGISTER, 1, CLIENT, b"pending", "svc", INFO)
    send(head, P.ACTOR_REGISTER, 2, CLIENT, b"alive", None, INFO)
    send(head, P.ACTOR_UPDATE, b"alive", "ALIVE", "tcp://127.0.0.1:6000", None, b"w1")
    send(head, P.ACTOR_REGISTER, 3, CLIENT, b"detached", "kept", dict(INFO, detached=True))
    send(head, P.ACTOR_UPDATE, b"detached", "ALIVE", "tcp://127.0.0.1:6001", None, b"w2")
    send(head, P.ACTOR_LOOKUP, 4, "tcp://127.0.0.1:5009", "svc")  # waits: svc is still starting
    send(head, P.WORKER_DIED_REMOTE, "node-1", b"owner", CLIENT, "exited with code 1")
    assert head.tables.find_actor(b"pending").dead() and head.tables.find_actor(b"alive").dead()
    assert "owner" in head.tables.find_actor(b"pending").reason
    ok, view = head.transport.replies()[4]
    assert ok and view["state"] == "DEAD"  # the waiting lookup is answered
    assert head.tables.live_actor_names() == ["kept"]
    # Nobody restarts the detached actor now: its death is final.
    send(head, P.WORKER_DIED_REMOTE, "node-1", b"w2", "tcp://127.0.0.1:6001", "killed by SIGKILL")
    assert head.tables.find_actor(b"detached").dead()


def test_a_detached_actor_whose_death_is_heard_before_its_creators_is_dead_once_that_is_heard(head):
    """(The node reports deaths in the order its zygote reaps them: a detached actor killed
    while its creator's process still awaits reaping can be reported first.)"""
    send(head, P.ACTOR_REGISTER, 1, CLIENT, b"detached", "kept", dict(INFO, detached=True))
    send(head, P.ACTOR_UPDATE, b"detached", "ALIVE", "tcp://127.0.0.1:6001", None, b"w2")
    send(head, P.WORKER_DIED_REMOTE, "node-1", b"w2", "tcp://127.0.0.1:6001", "killed by SIGKILL")
    assert head.tables.find_actor(b"detached").state == "RESTARTING"  # its creator may restart it
    send(head, P.ACTOR_LOOKUP, 2, "tcp://127.0.0.1:5009", "kept")  # waits for the restart
    send(head, P.WORKER_DIED_REMOTE, "node-1", b"owner", CLIENT, "killed by SIGKILL")
    record = head.tables.find_actor(b"detached")
    assert record.dead() and "creator" in record.reason  # nobody will restart it now
    ok, view = head.transport.replies()[2]
    assert ok and view["state"] == "DEAD"  # the waiting lookup is answered, not left to time out
    assert head.tables.live_actor_names() == []


def test_a_restarted_head_finds_named_actors_and_kv_pairs(head):
    send(head, P.ACTOR_REGISTER, 1, CLIENT, b"a1", "svc", INFO)
    send(head, P.ACTOR_UPDATE, b"a1", "ALIVE", "tcp://127.0.0.1:6000", None, b"w1")
    send(head, P.KV_PUT, 2, CLIENT, b"ckpt", b"state", True)
    head = restarted(head)
    try:
        send(head, P.ACTOR_LOOKUP, 3, CLIENT, "svc")
        send(head, P.KV_GET, 4, CLIENT, b"ckpt")
        send(head, P.HEAD_STATS, 5, CLIENT)
        replies = head.transport.replies()
        assert replies[3][1]["state"] == "ALIVE" and replies[3][1]["worker_id"] == b"w1"
        assert replies[4] == (True, b"state")
        assert replies[5][1]["incarnation"] == 2 and replies[5][1]["actors"] == 1
    finally:
        head.tables.close()


def test_kv_requests(head):
    send(head, P.KV_PUT, 1, CLIENT, b"k", b"v1", True)
    send(head, P.KV_PUT, 2, CLIENT, b"k", b"v2", False)
    send(head, P.KV_LIST, 3, CLIENT, b"")
    send(head, P.KV_DELETE, 4, CLIENT, b"k")
    send(head, P.KV_GET, 5, CLIENT, b"k")
    assert head.transport.replies() == {1: (True, True), 2: (True, False), 3: (True, [b"k"]),
                                        4: (True, True), 5: (True, None)}


def test_a_failing_request_is_answered_with_an_error(head):
    send(head, P.KV_PUT, 1, CLIENT, b"k", "not bytes", True)
    ok, error = head.transport.replies()[1]
    assert not ok and error[0] == "TypeError" and "str" in error[1]


def test_heartbeat_registers_the_node_and_answers_with_the_cluster_view(head):
    send(head, P.HEARTBEAT, "n1", "tcp://127.0.0.1:7001", {"CPU": 2.0}, {"CPU": 1.0}, {})
    send(head, P.HEARTBEAT, "n2", "tcp://127.0.0.1:7002", {"CPU": 4.0}, {"CPU": 4.0}, {})
    address, view = head.transport.sent[-1]
    assert address == "tcp://127.0.0.1:7002" and view[0] == P.CLUSTER_VIEW
    assert view[1] == {
        "n1": {"address": "tcp://127.0.0.1:7001", "total": {"CPU": 2.0}, "available": {"CPU": 1.0}, "alive": True,
               "suspect": False, "bundles": []},
        "n2": {"address": "tcp://127.0.0.1:7002", "total": {"CPU": 4.0}, "available": {"CPU": 4.0}, "alive": True,
               "suspect": False, "bundles": []},
    }
    head = restarted(head)
    try:
        assert set(head.tables.nodes) == {"n1", "n2"}
    finally:
        head.tables.close()


def test_unknown_message_types_are_counted_and_ignored(head):
    send(head, 9999, 1, CLIENT)
    assert head.transport.sent == [] and head.inbox.malformed == 1 and head.inbox.by_kind[9999] == 1


def test_handler_exceptions_are_counted_not_only_logged(head):
    send(head, P.HEARTBEAT, "node-1")  # malformed: a bug in the sender, dropped and counted
    send(head, P.KV_PUT, 1, CLIENT, "key", "not bytes", True)  # the caller's mistake: answered
    assert head.transport.replies()[1][0] is False
    assert head.handler_errors == 0 and head.inbox.malformed == 1
    assert head.failed_requests == 1
    send(head, P.HEAD_STATS, 2, CLIENT)
    ok, stats = head.transport.replies()[2]
    assert ok and stats["handler_errors"] == 0 and stats["failed_requests"] == 1 and stats["malformed"] == 1


def test_junk_heartbeats_are_dropped_and_the_head_keeps_serving(head):
    """Two junk HEARTBEATs used to crash the head for good (issue 11 §2)."""
    send(head, P.HEARTBEAT, None, None, None, None, None)
    send(head, P.HEARTBEAT, [1], "tcp://127.0.0.1:7000", {}, {}, {})
    send(head, P.HEARTBEAT)
    head.handle([b"\xc1junk"])
    head.check_liveness(1e12)
    assert head.inbox.malformed == 4 and head.handler_errors == 0 and head.tables.nodes == {}
    send(head, P.KV_PUT, 1, CLIENT, "k", b"v", True)
    send(head, P.NODE_LIST, 2, CLIENT)
    assert head.transport.replies()[1] == (True, True) and head.transport.replies()[2] == (True, {})


def test_liveness_checks_the_other_nodes_when_one_fails(head, monkeypatch):
    for node in ("n1", "n2"):
        send(head, P.HEARTBEAT, node, f"tcp://127.0.0.1:70{node[1]}0", {"CPU": 1}, {"CPU": 1}, {})
    real = head.tables.mark_node_dead
    monkeypatch.setattr(head.tables, "mark_node_dead",
                        lambda node_id: (_ for _ in ()).throw(RuntimeError("disk")) if node_id == "n1" else real(node_id))
    head.check_liveness(1e12)  # never raises
    assert head.handler_errors == 1 and head.tables.nodes["n2"]["alive"] is False


def test_a_null_node_row_from_an_older_head_is_skipped_and_dead_marks_persist(head):
    head.tables._db.execute("INSERT INTO nodes VALUES (NULL, 'tcp://127.0.0.1:1', ?, 1, 0)", (pack({}),))
    send(head, P.HEARTBEAT, "n1", "tcp://127.0.0.1:7010", {"CPU": 1}, {"CPU": 1}, {})
    head.check_liveness(1e12)
    again = restarted(head)
    assert list(again.tables.nodes) == ["n1"] and again.tables.nodes["n1"]["alive"] is False
    again.tables.close()


def test_a_dead_nodes_own_clients_are_told_it_died(head):
    send(head, P.HEARTBEAT, "n1", "tcp://127.0.0.1:7010", {"CPU": 1}, {"CPU": 1}, {})
    send(head, P.NODE_CLIENTS, "n1", [CLIENT], [])
    head.check_liveness(1e12)
    told = [(addr, h) for addr, h in head.transport.sent if h[0] == P.NODE_DIED]
    assert [(addr, h[1], h[2]) for addr, h in told] == [(CLIENT, "n1", "tcp://127.0.0.1:7010")]


def test_dead_actor_rows_and_their_subscribers_are_pruned(head, monkeypatch):
    from ownrun.engine.head import tables as T

    monkeypatch.setattr(T, "KEEP_DEAD_ACTORS", 2)
    for i in range(3):
        send(head, P.ACTOR_REGISTER, 10 + i, CLIENT, b"a%d" % i, f"svc{i}", INFO)
        send(head, P.ACTOR_UPDATE, b"a%d" % i, "ALIVE", "tcp://127.0.0.1:6000", None, b"w%d" % i)
        send(head, P.ACTOR_LOOKUP, 20 + i, CLIENT, f"svc{i}")
    assert set(head.actor_subscribers) == {b"a0", b"a1", b"a2"}
    send(head, P.WORKER_DIED_REMOTE, "n1", b"w9", CLIENT, "gone")  # the subscriber died
    assert head.actor_subscribers == {}
    send(head, P.ACTOR_LOOKUP, 30, "tcp://127.0.0.1:5002", "svc2")
    for i in range(3):
        send(head, P.ACTOR_UPDATE, b"a%d" % i, "DEAD", None, "killed", None)
    assert head.actor_subscribers == {}  # told of the death, then forgotten
    assert set(head.tables.actors) == {b"a1", b"a2"} and "svc0" not in head.tables.names
    send(head, P.ACTOR_LOOKUP, 31, CLIENT, "svc2")
    assert head.transport.replies()[31][1]["state"] == "DEAD" and head.actor_subscribers == {}
    again = restarted(head)
    assert set(again.tables.actors) == {b"a1", b"a2"}
    again.tables.close()


def test_a_malformed_request_is_answered_with_an_error_when_it_can_be(head):
    send(head, P.KV_PUT, 1, CLIENT, "k")  # short: its sender would wait for its timeout
    send(head, P.KV_GET, 2, "not an address", "k")  # nobody to answer
    assert list(head.transport.replies()) == [1] and head.inbox.malformed == 2
    ok, (name, message) = head.transport.replies()[1]
    assert not ok and name == "EngineError" and "malformed request: 4 fields, expected 6" in message


# ---- liveness: suspect, dead, fenced (issue 11 §3) -------------------------------------------------
def _token(node: str) -> bytes:
    return f"token-of-{node}".encode()


def _beat(head: Head, node: str, port: int) -> str:
    addr = f"tcp://127.0.0.1:{port}"
    send(head, P.HEARTBEAT, node, addr, {"CPU": 1.0}, {"CPU": 1.0}, {}, _token(node))
    return addr


def test_a_silent_node_is_marked_suspect_in_the_cluster_view_not_dead(head):
    _beat(head, "n1", 7001)
    _beat(head, "n2", 7002)
    head.check_liveness(time.monotonic() + 2.0)  # 2 s of silence: suspect (default 1 s), not dead (30 s)
    _beat(head, "n2", 7002)
    view = head.transport.sent[-1][1][1]
    assert view["n1"]["alive"] is True and view["n1"]["suspect"] is True
    assert view["n2"]["suspect"] is False
    assert not [h for _, h in head.transport.sent if h[0] == P.NODE_DIED]


def test_a_dead_node_that_beats_again_is_fenced(head):
    addr = _beat(head, "n1", 7001)
    send(head, P.NODE_CLIENTS, "n1", [CLIENT], [], {}, _token("n1"))
    head.check_liveness(time.monotonic() + DEFAULT_DEAD_AFTER + 1.0)
    assert [a for a, h in head.transport.sent if h[0] == P.NODE_DIED] == [CLIENT]
    head.transport.sent.clear()
    _beat(head, "n1", 7001)
    reason = f"declared dead: no heartbeat for {DEFAULT_DEAD_AFTER + 1:.1f}s (timeout {DEFAULT_DEAD_AFTER:g}s)"
    assert head.transport.sent == [(addr, [P.NODE_FENCED, "n1", reason, _token("n1")])]
    assert head.tables.nodes["n1"]["alive"] is False
    again = restarted(head)  # a restarted head fences it too
    send(again, P.HEARTBEAT, "n1", addr, {"CPU": 1.0}, {"CPU": 1.0}, {}, _token("n1"))
    assert [h[0] for _, h in again.transport.sent] == [P.NODE_FENCED]
    again.tables.close()


def test_a_dropped_daemon_connection_is_a_death_at_once(head):
    addr = _beat(head, "n1", 7001)
    _beat(head, "n2", 7002)
    assert head.transport.watched[addr] == ("node-connection", "n1", addr)
    head.on_connection_lost("n1", addr)
    died = [(a, h[1]) for a, h in head.transport.sent if h[0] == P.NODE_DIED]
    assert died == [("tcp://127.0.0.1:7002", "n1")]
    assert head.tables.nodes["n1"]["alive"] is False and addr in head.transport.disconnected


def test_connections_to_one_shot_clients_are_closed_after_a_linger(head):
    oneshot, node_addr, driver = "tcp://127.0.0.1:7001", "tcp://127.0.0.1:7002", "tcp://127.0.0.1:7003"
    send(head, P.REGISTER_NODE, 1, node_addr, "n1", {"resources": {"CPU": 1.0}})
    send(head, P.NODE_CLIENTS, "n1", [driver], [])
    send(head, P.KV_GET, 2, driver, "k")
    send(head, P.HEAD_STATS, 3, oneshot)
    send(head, P.ACTOR_REGISTER, 4, CLIENT, b"a1", None, INFO)
    send(head, P.ACTOR_LOOKUP, 5, CLIENT, b"a1")  # waits: CLIENT hears from the head later
    now = max(head.replied_to.values())
    assert head.close_idle_peers(now) == []  # just replied: the reply may still be on its way
    assert head.close_idle_peers(now + PEER_LINGER + 0.1) == [oneshot]
    assert head.transport.disconnected == [oneshot] and head.replied_to == {}
    send(head, P.HEAD_STATS, 6, oneshot)  # it may come back: a new connection, closed again later
    assert head.close_idle_peers(max(head.replied_to.values()) + PEER_LINGER + 0.1) == [oneshot]


# ---- who may send what (issue 11: rpc/notices.py) ------------------------------------------------
def test_an_actor_update_without_its_creators_key_is_ignored_and_counted(head):
    key = b"k" * 16
    send(head, P.ACTOR_REGISTER, 1, CLIENT, b"a1", "svc", dict(INFO, actor_key=key))
    send(head, P.ACTOR_UPDATE, b"a1", "ALIVE", "tcp://127.0.0.1:6666", None, b"rogue")  # no key
    send(head, P.ACTOR_UPDATE, b"a1", "DEAD", None, "a rogue says so", None, b"x" * 16)  # a wrong one
    assert head.tables.actors[b"a1"].state == "PENDING" and head.inbox.unauthorized == 2
    send(head, P.ACTOR_UPDATE, b"a1", "ALIVE", "tcp://127.0.0.1:6000", None, b"w1", key)
    record = head.tables.actors[b"a1"]
    assert (record.state, record.address) == ("ALIVE", "tcp://127.0.0.1:6000")
    send(head, P.ACTOR_LOOKUP, 2, CLIENT, "svc")
    assert "actor_key" not in repr(head.transport.replies()[2]) and key not in pack(head.transport.replies()[2])
    again = restarted(head)  # the key outlives a head restart
    send(again, P.ACTOR_UPDATE, b"a1", "DEAD", None, "a rogue says so", None)
    assert again.tables.actors[b"a1"].state == "ALIVE" and again.inbox.unauthorized == 1
    again.tables.close()


def test_the_heads_notices_carry_each_receivers_own_token(head):
    _beat(head, "n1", 7001)
    _beat(head, "n2", 7002)
    driver = "tcp://127.0.0.1:7003"
    send(head, P.NODE_CLIENTS, "n1", [driver], [], {driver: b"driver-token"}, _token("n1"))
    send(head, P.ACTOR_REGISTER, 1, CLIENT, b"a1", "svc", dict(INFO, actor_key=b"k"))
    send(head, P.ACTOR_LOOKUP, 2, CLIENT, b"a1", None, None, b"client-token")
    send(head, P.ACTOR_LOOKUP, 3, CLIENT, b"a1")  # a lookup without a token keeps the one given
    head.transport.sent.clear()
    send(head, P.ACTOR_UPDATE, b"a1", "ALIVE", "tcp://127.0.0.1:6000", None, b"w1", b"k")
    assert [(a, h[-1]) for a, h in head.transport.sent if h[0] == P.ACTOR_STATE] == [(CLIENT, b"client-token")]
    head.on_connection_lost("n1", "tcp://127.0.0.1:7001")
    told = {a: h[-1] for a, h in head.transport.sent if h[0] == P.NODE_DIED}
    assert told == {"tcp://127.0.0.1:7002": _token("n2"), driver: b"driver-token"}
    _beat(head, "n2", 7002)
    assert head.transport.sent[-1] == ("tcp://127.0.0.1:7002", [P.CLUSTER_VIEW, head.cluster_view(), _token("n2")])


def test_a_heartbeat_for_a_known_node_without_its_token_is_refused(head):
    _beat(head, "n1", 7001)
    head.transport.sent.clear()
    send(head, P.HEARTBEAT, "n1", "tcp://127.0.0.1:6666", {"CPU": 1.0}, {"CPU": 1.0}, {}, b"rogue")
    send(head, P.HEARTBEAT, "n1", "tcp://127.0.0.1:6666", {"CPU": 1.0}, {"CPU": 1.0}, {})
    assert head.tables.nodes["n1"]["address"] == "tcp://127.0.0.1:7001" and head.transport.sent == []
    send(head, P.REGISTER_NODE, 1, "tcp://127.0.0.1:6666", "n1", {"resources": {"CPU": 1.0}})
    assert head.tables.nodes["n1"]["address"] == "tcp://127.0.0.1:7001" and head.inbox.unauthorized == 3
    assert head.transport.replies()[1][0] is False
    assert "notice_token" not in repr(head.cluster_view())


def test_a_nodes_reports_of_its_clients_without_its_token_are_refused(head):
    _beat(head, "n1", 7001)
    send(head, P.NODE_CLIENTS, "n1", [CLIENT], [], {}, _token("n1"))
    send(head, P.ACTOR_REGISTER, 1, CLIENT, b"a1", "svc", dict(INFO, actor_key=b"k"))
    send(head, P.ACTOR_UPDATE, b"a1", "ALIVE", "tcp://127.0.0.1:6000", None, b"w1", b"k")
    # A member claims the actor's owner left its node, then that the actor's worker died.
    send(head, P.NODE_CLIENTS, "n1", [], [CLIENT], {})
    send(head, P.WORKER_DIED_REMOTE, "n1", b"w1", "tcp://127.0.0.1:6000", "a rogue says so", b"x" * 16)
    assert head.tables.actors[b"a1"].state == "ALIVE" and head.inbox.unauthorized == 2
    assert head.tables.nodes["n1"]["clients"] == [CLIENT]
    send(head, P.WORKER_DIED_REMOTE, "n1", b"w1", "tcp://127.0.0.1:6000", "killed", _token("n1"))
    assert head.tables.actors[b"a1"].state == "RESTARTING"


def test_a_placement_group_is_sent_to_its_node_created_when_held_and_survives_a_head_restart(head):
    from ownrun.engine.placement_resources import bundle_resources

    send(head, P.HEARTBEAT, "n1", "tcp://127.0.0.1:7001", {"CPU": 2.0}, {"CPU": 2.0}, {})
    pg_id = b"g" * 18
    send(head, P.PG_CREATE, 1, CLIENT, pg_id, [{"CPU": 1}], "PACK", "grp", "", False)
    ok, view = head.transport.replies()[1]
    assert ok and view["state"] == "PENDING"
    address, pushed = head.transport.sent[-1]  # the node hears of its bundle now, not at its next beat
    assert address == "tcp://127.0.0.1:7001" and pushed[1]["n1"]["bundles"] == [[pg_id.hex(), 0, {"CPU": 1}]]
    held = {"CPU": 2.0, **bundle_resources(pg_id.hex(), 0, {"CPU": 1})}
    send(head, P.HEARTBEAT, "n1", "tcp://127.0.0.1:7001", held, {"CPU": 1.0}, {})
    send(head, P.PG_TABLE, 2, CLIENT, "grp", "")
    assert head.transport.replies()[2][1]["state"] == "CREATED"
    again = restarted(head)
    send(again, P.PG_TABLE, 3, CLIENT, pg_id, "")
    assert again.transport.replies()[3][1]["bundles_to_node_id"] == {0: "n1"}
    send(again, P.PG_REMOVE, 4, CLIENT, pg_id)
    assert again.transport.replies()[4] == (True, True)
    again.tables.close()
