"""Actor restarts (§3, §5): `max_restarts`, `max_task_retries`, borrowed handles, kill, node loss.

Each test starts its own cluster and shuts it down after: a crashed or restarting actor
must not leak into the next test.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import add_node_ready, process_gone, wait_for
from ownrun import engine
from ownrun.engine import cluster
from ownrun.engine.api import _core
from ownrun.engine.cluster import embedded
from ownrun.engine.rpc import protocol as P

NODE_DEATH_TIMEOUT = 2.0  # the default is 1 s; 2 s keeps a busy 2-core machine from losing live nodes
RESTARTABLE = {"max_restarts": -1, "max_task_retries": -1}


@pytest.fixture
def fresh_cluster():
    assert not engine.is_initialized(), "this test starts its own cluster"
    info = engine.init(num_cpus=2, node_death_timeout=NODE_DEATH_TIMEOUT)
    try:
        yield info
    finally:
        engine.shutdown()


@engine.remote
class Worker:
    def __init__(self):
        self.calls = 0

    def pid(self):
        return os.getpid()

    def square(self, i: int, seconds: float):
        time.sleep(seconds)
        self.calls += 1
        return i * i, os.getpid()

    def sleep(self, seconds: float):
        time.sleep(seconds)
        return "slept"

    def wait_for_file(self, path: str):
        """Blocks the actor's calls until `path` exists (or 60 s pass)."""
        deadline = time.monotonic() + 60
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        return "opened"

    def node_id(self):
        return engine.get_runtime_context().node_id


def _sigkill(pid: int) -> None:
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)


def _head_view(actor) -> dict:
    """The head's actor-table row (state, worker, reason): what the cluster believes."""
    core = _core()
    return core.call(core.head_address, P.ACTOR_LOOKUP, actor._actor_id, None, None,
                     core.notice_token)  # a lookup subscribes us: its notices must reach us


# ---- restarts with retried calls ------------------------------------------------------------------
def test_calls_in_flight_when_the_process_dies_are_rerun_on_the_restarted_actor(fresh_cluster, tmp_path):
    actor = Worker.options(**RESTARTABLE).remote()
    old_pid = engine.get(actor.pid.remote(), timeout=30)
    # The old process can finish none of them: the first call blocks it until after its death.
    gate = tmp_path / "gate"
    blocker = actor.wait_for_file.remote(str(gate))
    refs = [actor.square.remote(i, 0.02) for i in range(50)]
    _sigkill(old_pid)
    wait_for(lambda: process_gone(old_pid), timeout=30, message="the actor's process exited")
    gate.write_text("open")
    assert engine.get(blocker, timeout=60) == "opened"

    results = engine.get(refs, timeout=60)
    assert [value for value, _pid in results] == [i * i for i in range(50)]
    new_pid = engine.get(actor.pid.remote(), timeout=30)
    assert new_pid != old_pid
    assert new_pid in {pid for _value, pid in results}, "some calls were rerun on the new process"
    engine.kill(actor)


@engine.remote
class Log:
    def __init__(self):
        self.items = []

    def pid(self):
        return os.getpid()

    def wait_for_file(self, path: str):
        deadline = time.monotonic() + 30
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        return "opened"

    def append(self, item):
        self.items.append(item)

    def read(self):
        return list(self.items)


def test_calls_rerun_after_a_restart_keep_their_order_ahead_of_later_calls(fresh_cluster, tmp_path):
    actor = Log.options(**RESTARTABLE).remote()
    old_pid = engine.get(actor.pid.remote(), timeout=30)
    gate = tmp_path / "gate"
    blocker = actor.wait_for_file.remote(str(gate))
    in_flight = [actor.append.remote(i) for i in range(5)]  # pushed, waiting behind the blocker
    _sigkill(old_pid)
    wait_for(lambda: process_gone(old_pid), timeout=10, message="the actor's process exited")
    later = [actor.append.remote(i) for i in range(5, 10)]  # submitted while it restarts
    gate.write_text("open")

    assert engine.get(blocker, timeout=30) == "opened"
    engine.get(in_flight + later, timeout=30)
    assert engine.get(actor.read.remote(), timeout=30) == list(range(10))
    assert engine.get(actor.pid.remote(), timeout=30) != old_pid
    engine.kill(actor)


def test_without_task_retries_calls_in_flight_fail_and_later_calls_reach_the_restart(fresh_cluster):
    actor = Worker.options(max_restarts=-1, max_task_retries=0).remote()
    old_pid = engine.get(actor.pid.remote(), timeout=30)
    running = actor.sleep.remote(30)
    _sigkill(old_pid)

    with pytest.raises(engine.ActorDiedError, match="max_task_retries=0"):
        engine.get(running, timeout=20)
    new_pid = engine.get(actor.pid.remote(), timeout=30)
    assert new_pid != old_pid
    assert engine.get(actor.square.remote(7, 0), timeout=30) == (49, new_pid)
    engine.kill(actor)


def test_actor_dies_for_good_once_its_restarts_are_used_up(fresh_cluster):
    actor = Worker.options(max_restarts=1, max_task_retries=-1).remote()
    first_pid = engine.get(actor.pid.remote(), timeout=30)
    _sigkill(first_pid)
    second_pid = engine.get(actor.pid.remote(), timeout=30)  # the one restart
    assert second_pid != first_pid

    _sigkill(second_pid)
    with pytest.raises(engine.ActorDiedError) as info:
        engine.get(actor.pid.remote(), timeout=20)
    message = str(info.value)
    assert "died" in message and "SIGKILL" in message, message
    with pytest.raises(engine.ActorDiedError):
        engine.get(actor.pid.remote(), timeout=20)
    wait_for(lambda: _head_view(actor)["state"] == "DEAD", timeout=30,
             message="the head records the actor as dead")


# ---- borrowed handles -------------------------------------------------------------------------
@engine.remote(num_cpus=0)
def pids_across_a_restart(actor, pid_file: str, go_file: str):
    """Borrows `actor`: calls it, publishes its pid, waits for `go_file`, calls it again."""
    first = engine.get(actor.pid.remote(), timeout=30)
    with open(f"{pid_file}.tmp", "w") as f:
        f.write(str(first))
    os.replace(f"{pid_file}.tmp", pid_file)
    deadline = time.monotonic() + 30
    while not os.path.exists(go_file) and time.monotonic() < deadline:
        time.sleep(0.02)
    return first, engine.get(actor.pid.remote(), timeout=30)


def test_a_borrowed_handle_keeps_working_across_a_restart(fresh_cluster, tmp_path):
    actor = Worker.options(**RESTARTABLE).remote()
    pid_file, go_file = tmp_path / "pid", tmp_path / "go"
    ref = pids_across_a_restart.remote(actor, str(pid_file), str(go_file))
    wait_for(pid_file.exists, timeout=30, message="the borrower called the actor")
    old_pid = int(pid_file.read_text())
    _sigkill(old_pid)
    wait_for(lambda: process_gone(old_pid), timeout=10, message="the actor's process exited")
    go_file.write_text("go")

    first, second = engine.get(ref, timeout=40)
    assert first == old_pid
    assert second != old_pid
    assert engine.get(actor.pid.remote(), timeout=30) == second
    engine.kill(actor)


# ---- kill ---------------------------------------------------------------------------------------
def test_killed_restartable_actor_is_never_restarted(fresh_cluster):
    actor = Worker.options(name="doomed", **RESTARTABLE).remote()
    pid = engine.get(actor.pid.remote(), timeout=30)
    running = actor.sleep.remote(30)
    engine.kill(actor)

    with pytest.raises(engine.ActorDiedError, match="kill"):
        engine.get(running, timeout=10)
    wait_for(lambda: process_gone(pid), timeout=10, message="the killed actor's process exited")
    with pytest.raises(engine.ActorDiedError, match="kill"):
        engine.get(actor.pid.remote(), timeout=10)
    view = _head_view(actor)
    assert view["state"] == "DEAD", view
    assert "kill" in (view["reason"] or ""), view
    with pytest.raises(ValueError):
        engine.get_actor("doomed")


# ---- node loss ----------------------------------------------------------------------------------
def test_actor_on_a_dead_node_restarts_on_another_node_with_its_resource(fresh_cluster):
    add_node_ready(num_cpus=1, resources={"w": 1})
    add_node_ready(num_cpus=1, resources={"w": 1})
    actor = Worker.options(resources={"w": 1}, num_cpus=0, **RESTARTABLE).remote()
    first_node = engine.get(actor.node_id.remote(), timeout=30)
    assert first_node != fresh_cluster["node_id"]

    cluster.kill_node(first_node)
    # Recovery, never a hang: the call after the node's loss reaches the restarted actor.
    second_node = engine.get(actor.node_id.remote(), timeout=60)
    assert second_node not in (first_node, fresh_cluster["node_id"])
    assert engine.get(actor.square.remote(3, 0), timeout=30)[0] == 9
    engine.kill(actor)


@pytest.fixture
def two_slot_node():
    """A fresh cluster: the driver's node, with 1 CPU, one slot of resource "t" and one of "a"."""
    assert not engine.is_initialized(), "this test starts its own cluster"
    info = engine.init(num_cpus=1, resources={"t": 1, "a": 1}, node_death_timeout=NODE_DEATH_TIMEOUT)
    try:
        yield info["node_id"]
    finally:
        engine.shutdown()


@engine.remote(num_cpus=1, resources={"t": 1})
class SlotHolder:
    """Holds the CPU and the "t" slot of the node it runs on, so that work goes elsewhere."""

    def ready(self):
        return engine.get_runtime_context().node_id


@engine.remote(num_cpus=0, resources={"t": 1})
def table_made_here(marker: str):
    """A large (shared-memory) value, made where a "t" slot is free: lineage can rebuild it. A
    rebuild is slow (the marker exists then), so a constructor could read the lost copy first."""
    import numpy as np

    if os.path.exists(marker):
        time.sleep(2)
    open(marker, "w").close()
    return {"node": engine.get_runtime_context().node_id, "data": np.arange(1 << 18, dtype=np.float64)}


@engine.remote
class TableReader:
    def __init__(self, table):
        self.total = float(table["data"].sum())
        self.made_on = table["node"]

    def where(self):
        return engine.get_runtime_context().node_id, self.made_on

    def read(self):
        return self.total


def test_actor_restarted_after_its_node_died_rebuilds_its_constructor_argument_lost_with_it(two_slot_node,
                                                                                           tmp_path):
    head = two_slot_node
    holder = SlotHolder.remote()  # node B gets the table and the actor
    assert engine.get(holder.ready.remote(), timeout=30) == head
    node_b = add_node_ready(num_cpus=1, resources={"t": 1})
    table = table_made_here.remote(str(tmp_path / "made"))
    actor = TableReader.options(**RESTARTABLE).remote(table)
    assert engine.get(actor.where.remote(), timeout=30) == (node_b, node_b), "the only copy is on node B"
    expected = float(sum(range(1 << 18)))
    assert engine.get(actor.read.remote(), timeout=30) == expected
    engine.kill(holder)

    cluster.kill_node(node_b)
    # The restart re-resolves the constructor's argument (rebuilt from lineage on the driver's
    # node), never reads it from the dead node: the next call succeeds with the right value.
    assert engine.get(actor.read.remote(), timeout=60) == expected
    assert engine.get(actor.where.remote(), timeout=30) == (head, head)
    engine.kill(actor)



def test_actor_whose_constructor_cannot_read_its_argument_from_a_stalled_node_is_started_again(
        two_slot_node, tmp_path):
    head = two_slot_node
    holder = SlotHolder.remote()  # the table is made on node B
    assert engine.get(holder.ready.remote(), timeout=30) == head
    node_b = add_node_ready(num_cpus=1, resources={"t": 1})
    table = table_made_here.remote(str(tmp_path / "made"))
    assert engine.wait([table], timeout=30, fetch_local=False)[0], "the table is made (its only copy stays on B)"
    engine.kill(holder)
    daemon_b = embedded.current().node_procs[node_b]
    daemon_b.send_signal(signal.SIGSTOP)  # node B stalls: not known dead yet
    try:
        # The constructor, on the driver's node ("a"), cannot read the table from node B; once
        # node B is declared dead the table is rebuilt and the actor started again (its worker
        # replaced, no restart counted), the call kept for it.
        actor = TableReader.options(resources={"a": 1}, **RESTARTABLE).remote(table)
        assert engine.get(actor.read.remote(), timeout=90) == float(sum(range(1 << 18)))
        assert engine.get(actor.where.remote(), timeout=30) == (head, head)
    finally:
        daemon_b.send_signal(signal.SIGCONT)
    wait_for(lambda: daemon_b.poll() is not None, timeout=60, message="the fenced daemon exits")
    engine.kill(actor)
