"""The head's SQLite tables, driven directly with a temporary session directory (no sockets)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3

import pytest
from ownrun.engine.head.tables import DB_NAME, HeadTables


@pytest.fixture
def session(tmp_path):
    return str(tmp_path)


@pytest.fixture
def tables(session):
    t = HeadTables.open(session)
    yield t
    t.close()


def reopen(tables: HeadTables, session: str) -> HeadTables:
    tables.close()
    return HeadTables.open(session)


def test_file_is_in_wal_mode_with_normal_sync(tables, session):
    assert os.path.exists(os.path.join(session, DB_NAME))
    assert tables._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert tables._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_incarnation_counts_opens(tables, session):
    assert tables.incarnation == 1
    again = reopen(tables, session)
    try:
        assert again.incarnation == 2
    finally:
        again.close()


# ---- KV ---------------------------------------------------------------------------------
def test_kv_round_trip_with_str_and_bytes_keys(tables):
    assert tables.kv_put("a", b"1") is True
    assert tables.kv_get(b"a") == b"1"
    assert tables.kv_get("missing") is None
    assert tables.kv_delete("a") is True
    assert tables.kv_delete("a") is False
    assert tables.kv_get("a") is None


def test_kv_put_without_overwrite_keeps_the_old_value(tables):
    assert tables.kv_put("k", b"old")
    assert tables.kv_put("k", b"new", overwrite=False) is False
    assert tables.kv_get("k") == b"old"
    assert tables.kv_put("k", b"new", overwrite=True) is True
    assert tables.kv_get("k") == b"new"


def test_kv_list_by_prefix_is_sorted_and_bytewise(tables):
    for key in [b"ck/2", b"ck/10", b"ck/1", b"other", b"ck\xff", b"\xff\xff", b"ck"]:
        tables.kv_put(key, b"v")
    assert tables.kv_list("ck/") == [b"ck/1", b"ck/10", b"ck/2"]
    assert tables.kv_list(b"ck") == [b"ck", b"ck/1", b"ck/10", b"ck/2", b"ck\xff"]
    assert tables.kv_list(b"\xff") == [b"\xff\xff"]
    assert len(tables.kv_list()) == 7


def test_kv_rejects_values_that_are_not_bytes(tables):
    with pytest.raises(TypeError, match="str"):
        tables.kv_put("k", "not bytes")
    with pytest.raises(TypeError, match="int"):
        tables.kv_get(3)


def test_kv_survives_reopen(tables, session):
    tables.kv_put("ckpt", b"\x00" * 100_000)
    tables.kv_put("gone", b"x")
    tables.kv_delete("gone")
    again = reopen(tables, session)
    try:
        assert again.kv_get("ckpt") == b"\x00" * 100_000
        assert again.kv_get("gone") is None
    finally:
        again.close()


def _put_then_die(session: str, conn) -> None:
    t = HeadTables.open(session)
    t.kv_put("acked", b"yes")
    conn.send("acked")
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint


def test_acknowledged_put_survives_sigkill_of_the_writer(session):
    parent, child = multiprocessing.get_context("fork").Pipe()
    proc = multiprocessing.get_context("fork").Process(target=_put_then_die, args=(session, child))
    proc.start()
    assert parent.recv() == "acked"
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    t = HeadTables.open(session)
    try:
        assert t.kv_get("acked") == b"yes"
    finally:
        t.close()


# ---- actors -----------------------------------------------------------------------------
INFO = {"class_name": "Counter", "methods": {"incr": {}, "read": {"num_returns": 1}},
        "owner": "tcp://127.0.0.1:5000"}


def test_named_actor_lifecycle(tables):
    assert tables.register_actor(b"a1", "counter", INFO) is None
    record = tables.find_actor("counter")
    assert record.state == "PENDING" and not record.settled()
    tables.update_actor(b"a1", "ALIVE", "tcp://127.0.0.1:6000", None, b"w1")
    view = tables.find_actor(b"a1").view()
    assert view["state"] == "ALIVE" and view["address"] == "tcp://127.0.0.1:6000"
    assert view["worker_id"] == b"w1"
    assert view["info"] == {"class_name": "Counter", "methods": INFO["methods"]}


def test_name_is_taken_until_the_actor_is_dead(tables):
    tables.register_actor(b"a1", "svc", INFO)
    assert "already exists" in tables.register_actor(b"a2", "svc", INFO)
    tables.update_actor(b"a1", "DEAD", None, "killed", None)
    assert tables.register_actor(b"a2", "svc", INFO) is None
    assert tables.find_actor("svc").actor_id == b"a2"


def test_dead_is_final(tables):
    tables.register_actor(b"a1", None, INFO)
    tables.update_actor(b"a1", "DEAD", None, "crashed", None)
    assert tables.update_actor(b"a1", "ALIVE", "tcp://127.0.0.1:1", None, b"w") is None
    assert tables.find_actor(b"a1").state == "DEAD"
    assert tables.find_actor(b"a1").reason == "crashed"


def test_update_of_unknown_actor_is_ignored(tables):
    assert tables.update_actor(b"nope", "ALIVE", "tcp://127.0.0.1:1", None, b"w") is None


def test_restart_keeps_address_when_update_has_none(tables):
    tables.register_actor(b"a1", None, INFO)
    tables.update_actor(b"a1", "ALIVE", "tcp://127.0.0.1:1", None, b"w")
    tables.update_actor(b"a1", "RESTARTING", None, "worker died", None)
    record = tables.find_actor(b"a1")
    assert (record.state, record.address, record.reason) == ("RESTARTING", "tcp://127.0.0.1:1", "worker died")


def test_actors_and_names_survive_reopen(tables, session):
    tables.register_actor(b"old", "svc", INFO)
    tables.update_actor(b"old", "DEAD", None, "killed", None)
    tables.register_actor(b"new", "svc", INFO)
    tables.update_actor(b"new", "ALIVE", "tcp://127.0.0.1:7000", None, b"w7")
    tables.register_actor(b"anon", None, INFO)
    again = reopen(tables, session)
    try:
        record = again.find_actor("svc")
        assert record.actor_id == b"new" and record.state == "ALIVE"
        assert record.view() == {"actor_id": b"new", "state": "ALIVE", "address": "tcp://127.0.0.1:7000",
                                 "reason": None, "worker_id": b"w7",
                                 "info": {"class_name": "Counter", "methods": INFO["methods"]}}
        assert again.find_actor(b"old").dead()
        assert again.find_actor(b"anon").state == "PENDING"
        assert record.owner == INFO["owner"]
    finally:
        again.close()


# ---- nodes and jobs ---------------------------------------------------------------------
def test_nodes_register_reregister_and_survive_reopen(tables, session):
    tables.register_node("n1", "tcp://127.0.0.1:1", {"resources": {"CPU": 2.0}})
    tables.register_node("n2", "tcp://127.0.0.1:2", {"resources": {"CPU": 1.0}})
    assert tables.mark_node_dead("n2") is True
    assert tables.mark_node_dead("n2") is False
    again = reopen(tables, session)
    try:
        assert again.nodes["n1"]["resources"] == {"CPU": 2.0}
        assert again.nodes["n1"]["alive"] is True
        assert again.nodes["n2"]["alive"] is False
        again.register_node("n2", "tcp://127.0.0.1:3", {"resources": {"CPU": 1.0}})
        assert again.nodes["n2"]["alive"] is True and again.nodes["n2"]["address"] == "tcp://127.0.0.1:3"
    finally:
        again.close()


def test_jobs_keep_their_start_time_across_reopen(tables, session):
    tables.add_job("driver-1", "tcp://127.0.0.1:9", 1)
    started = tables.jobs()[0]["start_time"]
    again = reopen(tables, session)
    try:
        again.add_job("driver-1", None, 1)  # a restarted head records the same driver again
        (job,) = again.jobs()
        assert job["start_time"] == started and job["state"] == "RUNNING"
        assert job["driver_address"] == "tcp://127.0.0.1:9"
        assert again.finish_job("driver-1") is True
        assert again.finish_job("driver-1") is False
        assert again.jobs()[0]["state"] == "FINISHED" and again.jobs()[0]["end_time"] >= started
    finally:
        again.close()


def test_a_corrupt_file_fails_loudly(session):
    with open(os.path.join(session, DB_NAME), "wb") as f:
        f.write(b"this is not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        HeadTables.open(session)


def test_heartbeats_register_a_node_once_and_never_revive_a_dead_one(tables, session):
    assert tables.node_heartbeat("n1", "tcp://127.0.0.1:1", {"CPU": 2.0}) is True
    registered = tables.nodes["n1"]["registered"]
    assert tables.node_heartbeat("n1", "tcp://127.0.0.1:1", {"CPU": 2.0}) is True
    assert tables.nodes["n1"]["registered"] == registered  # no write for an unchanged node
    tables.update_node_clients("n1", ["tcp://127.0.0.1:10", "tcp://127.0.0.1:11"], [])
    tables.update_node_clients("n1", [], ["tcp://127.0.0.1:10"])
    again = reopen(tables, session)
    try:
        assert again.nodes["n1"]["resources"] == {"CPU": 2.0}
        assert again.nodes["n1"]["clients"] == ["tcp://127.0.0.1:11"]
        again.mark_node_dead("n1")
        assert again.node_heartbeat("n1", "tcp://127.0.0.1:1", {"CPU": 2.0}) is False
        assert again.nodes["n1"]["alive"] is False
    finally:
        again.close()
