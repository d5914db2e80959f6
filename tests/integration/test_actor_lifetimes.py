"""Actor lifetimes with Ray's semantics (issue 12, items 2, 7, 8, 17): named actors are
garbage-collected with their creator's handles, detached ones outlive their creator, a dead
owner's pending actors die with it, `sys.exit()` in a method ends the actor cleanly, and
`get_if_exists` is decided by the head."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
from conftest import process_gone, wait_for
from ownrun import engine


@pytest.fixture(scope="module")
def slot_cluster():
    info = engine.init(num_cpus=2, resources={"slot": 1})
    try:
        yield info
    finally:
        engine.shutdown()


@engine.remote
class Counter:
    def __init__(self, start=0):
        self.value = start

    def incr(self):
        self.value += 1
        return self.value

    def pid(self):
        return os.getpid()


def _name_free(name: str) -> bool:
    try:
        engine.get_actor(name)
        return False
    except ValueError:
        return True


# ---- item 2: named actors are garbage-collected; detached ones are not -------------------------------
def test_named_actor_dies_once_every_handle_is_gone(slot_cluster):
    named = Counter.options(name="lifetimes-gc").remote()
    pid = engine.get(named.pid.remote())
    assert "lifetimes-gc" in engine.util.list_named_actors()
    del named
    wait_for(lambda: _name_free("lifetimes-gc"), timeout=30, message="the name is free again")
    wait_for(lambda: process_gone(pid), timeout=30, message="the named actor's process exited")
    again = Counter.options(name="lifetimes-gc").remote(10)  # the name can be reused
    assert engine.get(again.incr.remote()) == 11


@engine.remote
class Maker:
    def make_detached(self, name: str):
        made = Counter.options(name=name, lifetime="detached").remote(5)
        return engine.get(made.incr.remote()), engine.get(made.pid.remote())

    def pid(self):
        return os.getpid()


def test_detached_actor_outlives_its_creator_and_is_found_by_name(slot_cluster):
    maker = Maker.remote()
    maker_pid = engine.get(maker.pid.remote())
    value, detached_pid = engine.get(maker.make_detached.remote("lifetimes-detached"), timeout=60)
    assert value == 6  # the creator's handle went out of scope when its call ended
    engine.kill(maker)
    wait_for(lambda: process_gone(maker_pid), timeout=30, message="the creator's process exited")
    found = engine.get_actor("lifetimes-detached")
    assert engine.get(found.incr.remote(), timeout=60) == 7
    assert engine.get(found.pid.remote()) == detached_pid
    assert not process_gone(detached_pid)
    engine.kill(found)
    wait_for(lambda: _name_free("lifetimes-detached"), timeout=30, message="killed: its name is free")
    wait_for(lambda: process_gone(detached_pid), timeout=30, message="killed: its process exited")


# ---- item 7: a dead owner's pending actors die with it ----------------------------------------------
@engine.remote(max_retries=0)
def create_pending_actor_then_die(name: str):
    Counter.options(name=name, resources={"slot": 1}).remote()  # waits: the driver holds the slot
    time.sleep(0.2)  # the creation reaches the head and the daemon
    os._exit(1)


def test_pending_actor_of_a_dead_owner_is_cancelled_and_its_name_freed(slot_cluster):
    holder = Counter.options(resources={"slot": 1}).remote()
    engine.get(holder.pid.remote())
    with pytest.raises(engine.WorkerCrashedError):
        engine.get(create_pending_actor_then_die.remote("lifetimes-orphan"), timeout=60)
    wait_for(lambda: "lifetimes-orphan" not in engine.util.list_named_actors(), timeout=30,
             message="the dead owner's pending actor leaves the directory")
    assert _name_free("lifetimes-orphan")  # answered at once, not left waiting for it to start
    engine.kill(holder)
    later = Counter.options(resources={"slot": 1}).remote()  # the slot went to nobody else
    assert engine.get(later.incr.remote(), timeout=60) == 1
    engine.kill(later)


# ---- item 8: sys.exit() in a method ends the actor cleanly --------------------------------------------
@engine.remote(max_restarts=1)
class Leaver:
    def pid(self):
        return os.getpid()

    def leave(self):
        sys.exit()


def test_sys_exit_in_an_actor_method_exits_the_actor_cleanly_and_for_good(slot_cluster):
    leaver = Leaver.remote()
    pid = engine.get(leaver.pid.remote())
    with pytest.raises(engine.ActorDiedError, match="exited") as pending:
        engine.get(leaver.leave.remote(), timeout=60)
    assert not isinstance(pending.value, SystemExit)  # nothing that would end the driver
    wait_for(lambda: process_gone(pid), timeout=30, message="the actor's process exited")
    with pytest.raises(engine.ActorDiedError, match="exited"):  # an intended exit: no restart
        engine.get(leaver.pid.remote(), timeout=60)


# ---- item 17 and get_actor: the head decides, handles carry the creator's options ---------------------
def test_get_if_exists_from_concurrent_creators_gives_them_one_actor(slot_cluster):
    handles, failures = [], []
    start = threading.Barrier(6)

    def create():
        start.wait()
        try:
            handles.append(Counter.options(name="lifetimes-shared", get_if_exists=True).remote())
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert len(set(handles)) == 1
    assert sorted(engine.get([h.incr.remote() for h in handles], timeout=60)) == [1, 2, 3, 4, 5, 6]
    engine.kill(handles[0])


@engine.remote(max_restarts=1, max_task_retries=1)
class Fragile:
    def crash_once(self, marker: str):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return "survived"


@engine.remote
def call_by_name(name: str, marker: str):
    return engine.get(engine.get_actor(name).crash_once.remote(marker), timeout=60)


def test_handle_from_get_actor_retries_calls_as_the_creator_asked(slot_cluster, tmp_path):
    fragile = Fragile.options(name="lifetimes-fragile").remote()
    assert engine.get(call_by_name.remote("lifetimes-fragile", str(tmp_path / "crashed")), timeout=90) == "survived"
    engine.kill(fragile)

