"""Failure detection without false deaths, and no split brain (issue 11 §3), on real processes.

A node daemon is paused with SIGSTOP (as a loaded machine or a debugger would stall it): a
short pause is only suspected, a pause past the death timeout is a death, and the paused node
is fenced (it stops, with its workers) when it speaks again. A death the OS reports (the
daemon's process is gone) is detected at once, whatever the heartbeat timeout. Each test
starts its own cluster. Sleeps here are the pauses themselves, never waits for state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest
from conftest import add_node_ready, wait_for
from ownrun import engine
from ownrun.engine import cluster
from ownrun.engine.api import _core
from ownrun.engine.cluster import embedded
from ownrun.engine.node.daemon import FENCED_EXIT_CODE
from ownrun.engine.rpc import protocol as P


@engine.remote(num_cpus=0)
def node_id_here():
    return engine.get_runtime_context().node_id


@engine.remote(num_cpus=0, max_restarts=0)
class Sleeper:
    def pid(self) -> int:
        return os.getpid()

    def address(self) -> str:
        return _core().address

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _alive(node_id: str):
    return next(n["alive"] for n in cluster.nodes() if n["node_id"] == node_id)


def _daemon(node_id: str) -> subprocess.Popen:
    return embedded.current().node_procs[node_id]


def _head_log() -> str:
    with open(os.path.join(embedded.current().session_dir, "logs", "head.log")) as f:
        return f.read()


@pytest.fixture
def fresh_cluster():
    assert not engine.is_initialized(), "this test starts its own cluster"
    started = []

    def start(**options):
        started.append(engine.init(num_cpus=1, **options))
        return started[-1]

    try:
        yield start
    finally:
        engine.shutdown()


def test_a_daemon_paused_for_2_5_s_is_suspected_not_declared_dead(fresh_cluster):
    fresh_cluster()  # the default timeouts: suspect after 1 s, dead after 10 s
    node = add_node_ready(num_cpus=1, resources={"w": 1})
    daemon = _daemon(node)
    daemon.send_signal(signal.SIGSTOP)
    try:
        time.sleep(2.5)  # the pause itself
    finally:
        daemon.send_signal(signal.SIGCONT)
    assert _alive(node) is True
    assert f"node {node} suspected" in _head_log()
    ref = node_id_here.options(resources={"w": 1}).remote()
    assert engine.get(ref, timeout=60) == node
    assert daemon.poll() is None


def test_a_daemon_paused_past_the_death_timeout_is_declared_dead_then_fenced(fresh_cluster):
    fresh_cluster(node_death_timeout=2.0)
    node = add_node_ready(num_cpus=1, resources={"w": 1})
    actor = Sleeper.options(resources={"w": 1}).remote()
    worker = psutil.Process(engine.get(actor.pid.remote(), timeout=60))
    address = engine.get(actor.address.remote(), timeout=60)
    wait_for(lambda: address in _core().call(_core().head_address, P.NODE_LIST)[node]["clients"],
             message="the head knows the actor's worker as a process of its node")  # next heartbeat
    call = actor.sleep.remote(600)
    daemon = _daemon(node)
    daemon.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: _alive(node) is False, timeout=60, message="the head declares the paused node dead")
        with pytest.raises(engine.ActorDiedError):  # NODE_DIED reached the owner
            engine.get(call, timeout=60)
        # Its workers hear it too and exit: no owner logic of theirs runs on in a split brain.
        wait_for(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE, timeout=30,
                 message="the dead node's worker exits while its daemon is paused")
    finally:
        daemon.send_signal(signal.SIGCONT)
    # On its next heartbeat the head answers NODE_FENCED: the node stops, with its workers.
    wait_for(lambda: daemon.poll() is not None, timeout=60, message="the fenced daemon exits")
    assert daemon.returncode == FENCED_EXIT_CODE
    assert _alive(node) is False
    assert engine.get(node_id_here.remote(), timeout=60) != node  # the rest of the cluster serves


def test_a_killed_daemon_is_declared_dead_at_once_whatever_the_heartbeat_timeout(fresh_cluster):
    fresh_cluster(node_death_timeout=600.0)  # only a death the OS reports can be seen in this test
    node = add_node_ready(num_cpus=1, resources={"w": 1})
    actor = Sleeper.options(resources={"w": 1}).remote()
    engine.get(actor.pid.remote(), timeout=60)
    call = actor.sleep.remote(600)
    cluster.kill_node(node)
    with pytest.raises(engine.ActorDiedError):
        engine.get(call, timeout=60)
    assert _alive(node) is False
