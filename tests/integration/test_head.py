"""The head on a real embedded cluster: the KV store, and surviving a SIGKILL of the head (§5).

The head is not on the task path, so tasks finish while it is down; the driver's
supervisor restarts it on the same port from its SQLite file, and KV pairs and named
actors written before the kill are found again.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from ownrun import engine
from ownrun.engine import api
from ownrun.engine.cluster import embedded
from ownrun.engine.rpc import oneshot
from ownrun.engine.rpc import protocol as P

from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("cluster")


@engine.remote
def gated_square(x, gate: str):
    """Squares `x` once `gate` exists (or 60 s passed): keeps the batch in flight while the
    head is killed."""
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return x * x


@engine.remote
def kv_from_a_task(key: str, value: bytes):
    engine.kv.put(key, value)
    return engine.kv.get(key)


@engine.remote
def call_named_actor(name: str):
    return engine.get(engine.get_actor(name).incr.remote())


@engine.remote
class Counter:
    def __init__(self):
        self.count = 0

    def incr(self):
        self.count += 1
        return self.count


def head_proc():
    return embedded.current().procs[0]


def head_stats() -> dict:
    core = api._core()
    return core.call(core.head_address, P.HEAD_STATS, timeout=5)


def kv_get_or_none(key):
    """kv.get, or None while the head does not answer (it is being restarted)."""
    try:
        return engine.kv.get(key)
    except engine.NodeUnreachableError:
        return None


@pytest.fixture
def kv_prefix(request):
    prefix = f"test/{request.node.name}/"
    yield prefix
    for key in engine.kv.list(prefix):
        engine.kv.delete(key)


def test_kv_put_get_delete_list_round_trip(kv_prefix):
    assert engine.kv.put(kv_prefix + "b", b"2") is True
    assert engine.kv.put((kv_prefix + "a").encode(), b"1") is True
    assert engine.kv.put(kv_prefix + "big", bytes(range(256)) * 4096) is True
    assert engine.kv.get(kv_prefix + "a") == b"1"
    assert engine.kv.get(kv_prefix + "big") == bytes(range(256)) * 4096
    assert engine.kv.get(kv_prefix + "missing") is None
    assert engine.kv.list(kv_prefix) == [(kv_prefix + k).encode() for k in ("a", "b", "big")]
    assert engine.kv.delete(kv_prefix + "b") is True
    assert engine.kv.delete(kv_prefix + "b") is False
    assert engine.kv.get(kv_prefix + "b") is None
    assert engine.kv.list(kv_prefix) == [(kv_prefix + k).encode() for k in ("a", "big")]


def test_put_without_overwrite_keeps_the_existing_value(kv_prefix):
    key = kv_prefix + "once"
    assert engine.kv.put(key, b"first", overwrite=False) is True
    assert engine.kv.put(key, b"second", overwrite=False) is False
    assert engine.kv.get(key) == b"first"
    assert engine.kv.put(key, b"third") is True
    assert engine.kv.get(key) == b"third"


def test_kv_rejects_values_and_keys_of_the_wrong_type(kv_prefix):
    with pytest.raises(TypeError, match="str"):
        engine.kv.put(kv_prefix + "k", "not bytes")
    with pytest.raises(TypeError, match="int"):
        engine.kv.get(42)
    assert engine.kv.list(kv_prefix) == []


def test_tasks_use_the_same_store(kv_prefix):
    key = kv_prefix + "from-task"
    assert engine.get(kv_from_a_task.remote(key, b"written by a worker")) == b"written by a worker"
    assert engine.kv.get(key) == b"written by a worker"


def test_kv_and_named_actors_survive_a_sigkill_of_the_head(kv_prefix, tmp_path):
    name = "head-restart-survivor"
    counter = Counter.options(name=name).remote()
    try:
        assert engine.get(counter.incr.remote(), timeout=30) == 1
        assert engine.kv.put(kv_prefix + "checkpoint", b"state before the kill") is True
        old = head_proc()
        incarnation = head_stats()["incarnation"]

        gate = tmp_path / "gate"
        refs = [gated_square.remote(i, str(gate)) for i in range(200)]
        os.kill(old.pid, signal.SIGKILL)
        ready, _ = engine.wait(refs, num_returns=len(refs), timeout=0)
        assert len(ready) < len(refs), "the tasks finished before the head was killed"
        gate.touch()

        assert engine.get(refs, timeout=60) == [i * i for i in range(200)]
        wait_for(lambda: kv_get_or_none(kv_prefix + "checkpoint") == b"state before the kill",
                 timeout=30, message="the restarted head serves the KV pair written before the kill")
        assert head_proc() is not old and head_proc().poll() is None
        assert head_stats()["incarnation"] == incarnation + 1

        assert engine.get(engine.get_actor(name).incr.remote(), timeout=30) == 2
        # A worker that never saw the actor looks it up in the restarted head's table.
        assert engine.get(call_named_actor.remote(name), timeout=30) == 3
    finally:
        engine.kill(counter)


def test_restart_head_keeps_the_address_and_the_tables(kv_prefix):
    cluster = embedded.current()
    address, old = cluster.head_address, head_proc()
    engine.kv.put(kv_prefix + "k", b"v")
    assert cluster.restart_head() == address
    assert old.poll() is not None and head_proc().poll() is None
    assert engine.kv.get(kv_prefix + "k") == b"v"
    # The supervisor saw the old head exit and left the new one alone.
    assert head_proc().poll() is None


def test_the_head_closes_connections_of_one_shot_clients():
    cluster = embedded.current()
    head = psutil.Process(cluster.procs[0].pid)
    before = head.num_fds()
    for _ in range(200):  # `ownrun status`-style queries, one connection each
        oneshot.request(cluster.head_address, P.HEAD_STATS, curve=cluster.curve)
    wait_for(lambda: head.num_fds() <= before + 10, timeout=30,
             message=f"the head's open fds back near {before} (now {head.num_fds()})")
