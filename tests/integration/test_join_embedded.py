"""Another process of the same user joins an embedded cluster at the address `init()` returned
(as `ownrun run` hands a job's cluster to each run's driver)."""

import subprocess
import sys

import pytest
from ownrun import engine

CHILD = """
import sys
from ownrun import engine
engine.init(address=sys.argv[1])
square = engine.remote(lambda x: x * x)
print(engine.get(square.remote(7), timeout=60))
engine.shutdown()
"""


def test_a_second_driver_joins_the_embedded_cluster_at_its_address():
    info = engine.init(num_cpus=1)
    try:
        child = subprocess.run([sys.executable, "-c", CHILD, info["address"]],
                               capture_output=True, text=True, timeout=120)
        assert child.returncode == 0, child.stderr[-2000:]
        assert child.stdout.strip().splitlines()[-1] == "49"
    finally:
        engine.shutdown()


def test_joining_an_address_nothing_listens_at_names_it():
    child = subprocess.run([sys.executable, "-c", CHILD, "ipc:///nonexistent/ownrun/sockets/1"],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode != 0
    assert "no cluster listens at ipc:///nonexistent/ownrun/sockets/1" in child.stderr


def test_init_returns_once_the_head_knows_every_node_alive():
    """The daemons start together with the head (its socket path is known in advance): init
    still returns only when the head lists all of them, as it did when they started after it."""
    engine.init(num_cpus=1, num_nodes=2)
    try:
        nodes = engine.nodes()
        assert len(nodes) == 2 and all(n["alive"] for n in nodes)
    finally:
        engine.shutdown()


def test_a_head_that_does_not_start_leaves_no_node_daemon_running(monkeypatch):
    """The daemons start together with the head: if the head then fails, they are stopped too."""
    from ownrun.engine.cluster import embedded, processes
    from ownrun.engine.errors import NodeStartError

    real = processes.wait_ready

    def head_fails(proc, name, log_path, timeout):
        if name == "the head":
            raise NodeStartError(name, "refused by the test", log_path, [])
        return real(proc, name, log_path, timeout)

    monkeypatch.setattr(processes, "wait_ready", head_fails)
    cluster = embedded.LocalCluster(1, {}, 64 << 20, {})
    with pytest.raises(NodeStartError, match="refused by the test"):
        cluster.start()
    assert len(cluster.procs) == 2  # the head and the daemon started with it
    assert all(proc.poll() is not None for proc in cluster.procs)
