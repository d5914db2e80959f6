"""Distributed reference counting end to end (DESIGN.md §4): alive while reachable, freed after.

Objects here are >= 100 KiB so they live in the node's shared-memory store, where
`node_stats()["store"]["num_objects"]` shows whether they are still there. Release
notices travel asynchronously, so "freed" is asserted with `wait_for`.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from conftest import wait_for
from ownrun import engine
from ownrun.engine import debug

pytestmark = pytest.mark.usefixtures("cluster")

KIB = 1024
BIG = 256 * KIB  # bytes; well above the 100 KiB inline threshold


def big_array(fill: float = 1.0) -> np.ndarray:
    return np.full(BIG // 8, fill)


def store_objects() -> int:
    return debug.node_stats()["store"]["num_objects"]


def owner_refs() -> int:
    return debug.owner_stats()["refs"]


def owner_tasks() -> int:
    return debug.owner_stats()["tasks"]


def wait_until_clean(refs: int = 0, objects: int = 0, timeout: float = 10.0) -> None:
    wait_for(lambda: store_objects() == objects and owner_refs() == refs
             and owner_tasks() == 0, timeout=timeout,
             message=f"store has {objects} objects and the owner {refs} refs, 0 tasks")


@pytest.fixture(autouse=True)
def starts_and_ends_clean():
    wait_until_clean()
    yield
    wait_until_clean()


def _wait_for_file(path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.01)


@engine.remote
def big_after_gate(gate: str, fill: float):
    _wait_for_file(gate)
    return np.full(BIG // 8, fill)


@engine.remote
def sum_nested_after_gate(nested: list, gate: str):
    _wait_for_file(gate)
    return float(engine.get(nested[0]).sum())


@engine.remote
def sum_nested(nested: list):
    return float(engine.get(nested[0]).sum())


@engine.remote
def hand_to_actor(holder, nested: list):
    engine.get(holder.keep.remote(nested))
    return "handed"


@engine.remote
def put_and_return_ref(fill: float):
    return engine.put(np.full(BIG // 8, fill))


@engine.remote
def inc(x):
    return x + 1


@engine.remote
def identity(x):
    return x


@engine.remote
class Holder:
    def __init__(self):
        self.kept = None

    def keep(self, nested):
        self.kept = nested[0]

    def read(self):
        return float(engine.get(self.kept).sum())

    def drop(self):
        self.kept = None


# ---------------------------------------------------------------------------------------------
def test_result_of_a_task_whose_ref_was_dropped_while_pending_is_freed(tmp_path):
    gate = str(tmp_path / "gate")
    ref = big_after_gate.remote(gate, 2.0)
    del ref
    assert owner_tasks() == 1  # still running: the owner keeps its record
    open(gate, "w").close()
    wait_for(lambda: owner_tasks() == 0, message="the task finished")
    wait_until_clean()


def test_result_stays_alive_while_its_ref_is_held():
    ref = identity.remote(big_array(3.0))
    assert float(engine.get(ref).sum()) == 3.0 * (BIG // 8)
    wait_for(lambda: store_objects() == 1 and owner_refs() == 1, message="only the result is left")
    assert float(engine.get(ref).sum()) == 3.0 * (BIG // 8)
    del ref
    wait_until_clean()


def test_ref_nested_in_an_argument_is_freed_after_the_task_and_the_drivers_del():
    inner = engine.put(big_array(4.0))
    assert store_objects() == 1
    assert engine.get(sum_nested.remote([inner])) == 4.0 * (BIG // 8)
    assert store_objects() == 1  # the driver still holds it
    assert float(engine.get(inner)[0]) == 4.0
    del inner
    wait_until_clean()


def test_ref_nested_in_an_argument_outlives_the_drivers_del_until_the_task_ends(tmp_path):
    gate = str(tmp_path / "gate")
    inner = engine.put(big_array(5.0))
    result = sum_nested_after_gate.remote([inner], gate)
    del inner
    assert store_objects() == 1  # the pending task still carries it
    assert owner_refs() == 2  # the result and the nested argument
    open(gate, "w").close()
    assert engine.get(result) == 5.0 * (BIG // 8)
    del result
    wait_until_clean()


def test_borrowed_ref_stored_in_an_actor_outlives_the_drivers_ref_until_the_actor_drops_it():
    holder = Holder.remote()
    base_refs = owner_refs()  # the actor's handle counts
    inner = engine.put(big_array(6.0))
    assert engine.get(hand_to_actor.remote(holder, [inner])) == "handed"
    del inner
    wait_for(lambda: owner_refs() == base_refs + 1, message="only the borrowed object is left")
    assert store_objects() == 1
    assert engine.get(holder.read.remote()) == 6.0 * (BIG // 8)
    assert store_objects() == 1
    engine.get(holder.drop.remote())
    wait_for(lambda: store_objects() == 0 and owner_refs() == base_refs,
             message="the object was freed once the actor dropped it")
    engine.kill(holder)
    del holder


def test_borrowed_ref_stored_in_an_actor_is_freed_when_the_actor_is_killed():
    holder = Holder.remote()
    base_refs = owner_refs()
    inner = engine.put(big_array(7.0))
    assert engine.get(hand_to_actor.remote(holder, [inner])) == "handed"
    del inner
    assert engine.get(holder.read.remote()) == 7.0 * (BIG // 8)
    assert store_objects() == 1
    engine.kill(holder)
    wait_for(lambda: store_objects() == 0 and owner_refs() <= base_refs,
             message="the object was freed once its borrower died")
    del holder


def test_ref_created_and_returned_by_a_task_is_owned_by_its_worker_and_freed_after_the_caller_drops_it():
    outer = put_and_return_ref.remote(8.0)
    inner = engine.get(outer)
    assert isinstance(inner, engine.ObjectRef)
    assert inner.owner != engine.put(0).owner  # owned by the task's worker, not the driver
    assert owner_tasks() == 0  # the task has ended
    assert float(engine.get(inner).sum()) == 8.0 * (BIG // 8)
    assert store_objects() == 1
    del outer
    assert float(engine.get(inner)[0]) == 8.0  # still alive: the driver borrows it
    assert store_objects() == 1
    del inner
    wait_until_clean()


def test_put_of_a_list_holding_a_ref_keeps_the_inner_object_alive():
    inner = engine.put(big_array(9.0))
    outer = engine.put([inner])
    del inner
    assert owner_refs() == 2
    assert store_objects() == 1
    (got,) = engine.get(outer)
    assert float(engine.get(got)[0]) == 9.0
    del got
    assert store_objects() == 1
    del outer
    wait_until_clean()


def test_ref_inside_a_task_result_keeps_the_inner_object_alive():
    inner = engine.put(big_array(10.0))
    outer = identity.remote([inner])
    del inner
    (got,) = engine.get(outer)
    assert float(engine.get(got)[0]) == 10.0
    del got
    assert store_objects() == 1
    del outer
    wait_until_clean()


def test_chain_of_a_thousand_tasks_leaves_owner_tables_empty():
    ref = engine.put(0)
    for _ in range(1000):
        ref = inc.remote(ref)
    assert engine.get(ref, timeout=120) == 1000
    del ref
    wait_until_clean()


def test_a_hundred_thousand_small_tasks_leave_store_and_owner_tables_empty():
    total = 0
    for _ in range(10):
        refs = [inc.remote(i) for i in range(10_000)]
        total += sum(engine.get(refs, timeout=120))
        del refs
    assert total == 10 * sum(range(1, 10_001))
    stats = debug.owner_stats()
    assert stats["refs"] == 0
    assert stats["tasks"] == 0
    assert store_objects() == 0



@engine.remote
def raise_with_nested(nested: list):
    raise ValueError(f"failed while borrowing a ref; pid={os.getpid()}")


def test_ref_nested_in_the_argument_of_a_failing_task_is_freed():
    inner = engine.put(big_array(11.0))
    result = raise_with_nested.remote([inner])
    del inner
    with pytest.raises(ValueError) as info:
        engine.get(result)
    worker_pid = int(str(info.value).rsplit("pid=", 1)[1].split()[0])
    del result, info
    try:
        wait_until_clean(timeout=30)  # a leaked ref would stay for good: the deadline is generous
    finally:
        # If the worker leaked the ref (e.g. a traceback cycle holding the task's frame),
        # its death releases it, so the following tests start clean.
        if store_objects() or owner_refs():
            os.kill(worker_pid, signal.SIGKILL)
