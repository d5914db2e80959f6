"""The node daemon's worker pool and object transfer, seen from a driver (each test owns its cluster)."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest
from conftest import add_node_ready, process_gone, wait_for
from ownrun import engine
from ownrun.engine import api, debug
from ownrun.engine.rpc import protocol as P
from ownrun.engine.rpc.transport import pack

MIB = 1024 * 1024


@engine.remote
def make_owned():
    """Puts a value (this worker owns it) and returns its ref nested in a list."""
    return [engine.put("owned by a pooled worker")], os.getpid()


def _idle_workers() -> int:
    return debug.node_stats()["scheduler"]["workers"].get("idle", 0)


@engine.remote
def nest(depth: int):
    """Blocks in get on a child `depth` levels deep: each level leases one more worker. Returns
    once the deeper levels' workers are back in the pool, so they go back innermost first."""
    child = make_owned.remote() if depth == 0 else nest.remote(depth - 1)
    result = engine.get(child)
    del child
    deadline = time.monotonic() + 30
    while _idle_workers() < depth + 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    return result


def test_idle_worker_that_owns_objects_is_not_reaped():
    # One CPU: the daemon keeps at most two idle workers. Three nested levels lease three
    # workers (a parent blocked in get gives its CPU back); the innermost, which owns the put
    # value, goes back to the pool first, so when the other two follow it is the oldest idle
    # worker: the one an idle pool over its limit stops.
    assert not engine.is_initialized(), "this test starts its own cluster"
    engine.init(num_cpus=1, lease_idle_timeout=0.05, idle_worker_grace=0)
    try:
        (nested,), owner_pid = engine.get(nest.remote(1))
        assert owner_pid in debug.worker_pids()

        def pool_settled() -> bool:
            pool = debug.node_stats()["scheduler"]
            return process_gone(owner_pid) or (
                pool["workers"].get("leased", 0) == 0 and pool.get("kept_owners", 0) >= 1)

        wait_for(pool_settled, timeout=30, message="the leases went back and the pool was trimmed")
        assert not process_gone(owner_pid), "the worker that owns a live object was reaped"
        assert engine.get(nested, timeout=30) == "owned by a pooled worker"
        assert debug.node_stats()["handler_errors"] == 0
    finally:
        engine.shutdown()


@engine.remote
def ones(nbytes: int):
    import numpy as np

    return np.ones(nbytes // 8)


def test_large_transfer_moves_in_bounded_chunks_while_heartbeats_flow():
    """200 MB pulled from another node: each daemon handles a bounded number of bytes per turn
    of its loop (so heartbeats go out between chunks) and the head never suspects either node."""
    assert not engine.is_initialized(), "this test starts its own cluster"
    engine.init(num_cpus=1, object_store_memory=1024 * MIB, node_death_timeout=2.0)
    try:
        source = add_node_ready(num_cpus=1, resources={"source": 1})
        big = ones.options(resources={"source": 1}, num_cpus=0).remote(200 * MIB)
        engine.wait([big], timeout=60, fetch_local=False)
        value = engine.get(big, timeout=120)
        assert value.nbytes == 200 * MIB and value.sum() == 200 * MIB // 8
        core = api._core()
        nodes = core.call(core.head_address, P.NODE_LIST)
        assert all(node["alive"] for node in nodes.values()), "the head suspected a node"
        here = debug.node_stats()
        there = core.call(nodes[source]["address"], P.NODE_STATS)
        for stats in (here, there):
            transfer = stats["transfer"]
            assert 0 < transfer["max_bytes_per_loop"] <= transfer["bound_per_loop"] < 200 * MIB
            assert transfer["pulls"] == 0
            assert stats["handler_errors"] == 0
    finally:
        engine.shutdown()


def _daemon_of(node_id: str) -> psutil.Process:
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "ownrun.engine.node.daemon" in " ".join(cmdline) and node_id in cmdline:
            return proc
    raise AssertionError(f"no daemon process for node {node_id}")


def test_pull_from_a_node_that_dies_ends_with_an_error_the_reader_sees():
    assert not engine.is_initialized(), "this test starts its own cluster"
    engine.init(num_cpus=1, object_store_memory=512 * MIB, node_death_timeout=2.0)
    source_daemon = None
    try:
        source = add_node_ready(num_cpus=1, resources={"source": 1})
        big = ones.options(resources={"source": 1}, num_cpus=0, max_retries=0).remote(64 * MIB)
        engine.wait([big], timeout=60, fetch_local=False)
        source_daemon = _daemon_of(source)
        source_daemon.send_signal(signal.SIGSTOP)  # no more chunks, no more heartbeats: it dies
        with pytest.raises(engine.EngineError):
            engine.get(big, timeout=60)
        wait_for(lambda: debug.node_stats()["transfer"]["pulls"] == 0, message="the pull ended")
        assert debug.node_stats()["handler_errors"] == 0
    finally:
        if source_daemon is not None:
            source_daemon.send_signal(signal.SIGKILL)
        engine.shutdown()


def test_put_while_a_reader_pins_the_store_goes_to_a_fallback_file_instead_of_failing():
    """Issue 12 item 11: with the arena held by a pinned object, `put` neither waits forever nor
    raises ObjectStoreFullError: the new object goes to a file (Ray's fallback allocation)."""
    import numpy as np

    assert not engine.is_initialized(), "this test starts its own cluster"
    engine.init(num_cpus=1, object_store_memory=64 * MIB, node_death_timeout=2.0)
    try:
        first = engine.put(np.ones(40 * MIB // 8))
        view = engine.get(first)  # a reader's pin: the first object can neither move nor go
        second = engine.put(np.full(40 * MIB // 8, 2.0))
        assert float(engine.get(second).sum()) == 2.0 * (40 * MIB // 8)
        assert float(view.sum()) == 40 * MIB // 8
        assert debug.node_stats()["store"]["num_spilled"] >= 1
    finally:
        engine.shutdown()


def test_a_read_that_overtakes_the_writers_seal_gets_the_object():
    """The writer's OBJ_SEAL and a reader's OBJ_GET reach the daemon over different
    connections; a busy daemon may see the read first. It must answer once the seal lands,
    not "not here" (which the reader took for a lost object with no node failure to explain it)."""
    assert not engine.is_initialized(), "this test starts its own cluster"
    engine.init(num_cpus=1)
    try:
        core = api._core()
        writer, oid, size = os.urandom(16), os.urandom(20), 4096
        core.call(core.daemon_address, P.OBJ_CREATE, oid, size, core.address, writer)
        answered, answer = threading.Event(), []

        def on_answer(ok, result):
            answer.append((ok, result))
            answered.set()

        core.call_async(core.daemon_address, P.OBJ_GET, oid, core.worker_id, core.daemon_address,
                        callback=on_answer)
        # The daemon answers requests in order: once this one is answered, the read was handled.
        core.call(core.daemon_address, P.NODE_STATS)
        assert not answered.is_set(), f"the read of an object being written was answered: {answer}"
        core.transport.send(core.daemon_address, [pack([P.OBJ_SEAL, writer, oid, False])])
        assert answered.wait(30)
        ok, placement = answer[0]
        assert ok and placement is not None, answer
        core.transport.send(core.daemon_address, [pack([P.OBJ_RELEASE, core.worker_id, [oid]])])
        core.transport.send(core.daemon_address, [pack([P.OBJ_FREE, [oid]])])
        assert debug.node_stats()["handler_errors"] == 0
    finally:
        engine.shutdown()


def test_a_read_that_fails_for_a_passing_reason_is_retried_not_reported_lost():
    """Our store is full of pinned data when a remote object arrives (its pull fails: "cannot
    store it"). No node died, so the object is not lost: once the pins are gone the read is
    tried again and succeeds."""
    assert not engine.is_initialized(), "this test starts its own cluster"
    engine.init(num_cpus=1, object_store_memory=16 * MIB, node_death_timeout=2.0)
    try:
        add_node_ready(num_cpus=1, resources={"source": 1})
        remote = ones.options(resources={"source": 1}, num_cpus=0).remote(6 * MIB)
        engine.wait([remote], timeout=60, fetch_local=False)
        hold = engine.put(np.zeros(12 * MIB // 8))
        held = [engine.get(hold)]  # pinned while this view lives: no room for the 6 MiB copy

        def unpin():
            held.clear()
            gc.collect()

        timer = threading.Timer(1.0, unpin)
        timer.start()
        try:
            assert engine.get(remote, timeout=60).sum() == 6 * MIB // 8
        finally:
            timer.cancel()
        assert debug.node_stats()["handler_errors"] == 0
    finally:
        engine.shutdown()


def test_the_daemon_reports_its_longest_loop_turn_and_gap_between_heartbeats():
    assert not engine.is_initialized(), "this test starts its own cluster"
    engine.init(num_cpus=1)
    try:
        engine.get([make_owned.remote() for _ in range(20)], timeout=60)  # a few turns with messages
        wait_for(lambda: debug.node_stats()["loop"]["longest_beat_gap_s"] > 0, timeout=30,
                 message="two heartbeats")
        loop = debug.node_stats()["loop"]
        assert set(loop) == {"longest_turn_s", "longest_beat_gap_s"} and loop["longest_turn_s"] >= 0
    finally:
        engine.shutdown()
