"""Another process of the same user joins an embedded cluster at the address `init()` returned
(as `ownrun run` hands a job's cluster to each run's driver)."""

import subprocess
import sys

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
