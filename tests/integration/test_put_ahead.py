"""A put finds its object created ahead in the node's store when the last puts had its
size, so it writes without a round trip to the daemon (store/create_ahead.py); what was
created ahead is never counted as an object, is aborted by a put of another size, and dies
with its process."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import wait_for
from ownrun import engine
from ownrun.engine import debug, object_ref
from ownrun.engine.rpc import protocol as P

MIB = 1 << 20
AHEAD_MAX = 2 * MIB  # not the default (4 MiB): the option reaches the driver's core worker
DEPTH = 2  # objects created ahead at once


@pytest.fixture(scope="module", autouse=True)
def cluster_with_option():
    engine.init(num_cpus=2, put_ahead_max_bytes=AHEAD_MAX)
    try:
        yield
    finally:
        engine.shutdown()


def store_stats() -> dict:
    return debug.node_stats()["store"]


def driver_stats() -> dict:
    return object_ref.current_worker().stats()


def test_puts_of_one_size_after_the_first_need_no_round_trip(daemon_calls):
    before = driver_stats()["puts_created_ahead"]
    refs = [engine.put(np.full(MIB // 8, float(i))) for i in range(6)]
    assert daemon_calls.count(P.OBJ_CREATE) <= 1  # the first put's, unless one was made ahead
    assert driver_stats()["puts_created_ahead"] - before >= 5
    assert [engine.get(ref)[-1] for ref in refs] == [float(i) for i in range(6)]
    wait_for(lambda: store_stats()["num_objects"] == 6 and store_stats()["num_ahead"] == DEPTH,
             message="6 sealed puts counted, the next ones' objects apart")
    del refs
    wait_for(lambda: store_stats()["num_objects"] == 0, message="the puts freed")
    assert store_stats()["num_ahead"] == DEPTH  # the next puts' objects stay, uncounted


def test_a_put_of_another_size_aborts_what_was_created_ahead():
    engine.put(np.zeros(MIB // 8))
    aborted = driver_stats()["puts_ahead_aborted"]
    ref = engine.put(np.zeros(3 * MIB // 16))  # 1.5 MiB: another size, created as before
    assert driver_stats()["puts_ahead_aborted"] == aborted + DEPTH
    assert engine.get(ref).nbytes == 3 * MIB // 2
    wait_for(lambda: store_stats()["num_ahead"] == DEPTH and store_stats()["num_objects"] == 1,
             message="the stale objects aborted, others made ahead for the new size")
    del ref


def test_nothing_is_created_ahead_above_the_configured_size(daemon_calls):
    refs = [engine.put(np.zeros(3 * MIB // 8)) for _ in range(3)]
    assert daemon_calls.count(P.OBJ_CREATE) == 3
    wait_for(lambda: store_stats()["num_ahead"] == 0, message="the 1.5 MiB ones aborted, none new")
    del refs
    wait_for(lambda: store_stats()["num_objects"] == 0, message="the puts freed")


@pytest.mark.parametrize("bad", [-1, 1.5, "4MiB", True])
def test_a_bad_put_ahead_limit_is_refused_in_one_line(bad):
    with pytest.raises(ValueError, match=r"^put_ahead_max_bytes must be an int >= 0 \(0: off\), got "):
        engine.init(put_ahead_max_bytes=bad)


@engine.remote
class Putter:
    def put_some(self, n: int) -> int:
        self.refs = [engine.put(np.zeros(MIB // 8)) for _ in range(n)]
        return object_ref.current_worker().stats()["puts_created_ahead"]


def test_what_a_killed_process_created_ahead_is_aborted_with_it():
    ahead_before = store_stats()["num_ahead"]
    putter = Putter.remote()
    assert engine.get(putter.put_some.remote(3)) == 2
    wait_for(lambda: store_stats()["num_ahead"] == ahead_before + DEPTH, message="the actor's next puts")
    engine.kill(putter)
    wait_for(lambda: store_stats()["num_ahead"] == ahead_before
             and store_stats()["num_objects"] == 0, message="the dead actor's objects gone")
