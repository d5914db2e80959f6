"""Real hosts: the head and a second node in separate network namespaces (ip netns + veth).

Two namespaces joined by a veth pair (10.231.0.1/24 <-> 10.231.0.2/24) stand for two
machines: each has its own interfaces and loopback, so every message between the nodes
crosses a real network link, authenticated with the cluster key that `ownrun start --head`
wrote. The head (and its node) runs in the first, a second node and the driver in the
second; the driver's tasks are placed on both nodes by custom resources and pass objects
between them. A node or driver without the key is refused, with the reason in its error
and in the head's log. Skips, saying why, without root or the `ip` command.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess

import pytest

from tests.cli.cluster_helpers import STORE, Cli, processes_of
from tests.conftest import wait_for

HEAD_IP, NODE_IP, PORT = "10.231.0.1", "10.231.0.2", 6380
HEAD = f"{HEAD_IP}:{PORT}"

DRIVER = """
    import json
    import numpy as np
    from ownrun import engine

    info = engine.init(address="ADDRESS")

    @engine.remote
    def node_sum(array):
        return engine.get_runtime_context().node_id, float(np.asarray(array).sum())

    @engine.remote
    def ones(n):
        return np.ones(n)

    here = engine.put(np.ones(2_000_000))                               # in the driver's node
    there = ones.options(resources={"ns1": 1}).remote(1_000_000)        # made on the head's node
    results = engine.get([node_sum.options(resources={"ns1": 1}).remote(here),
                          node_sum.options(resources={"ns2": 1}).remote(there)], timeout=60)
    engine.shutdown()
    print(json.dumps({"driver_node": info["node_id"], "results": results}))
"""


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def namespaces():
    """Two connected network namespaces; deleted (with their veth pair) afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs the `ip` command (iproute2)")
    tag = f"{os.getpid() % 100000}"
    ns1, ns2 = f"ownrun-t{tag}-head", f"ownrun-t{tag}-node"
    veth1, veth2 = f"owr{tag}a", f"owr{tag}b"
    created = []
    try:
        for ns in (ns1, ns2):
            result = _ip("netns", "add", ns)
            if result.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {result.stderr.strip()}")
            created.append(ns)
        steps = [("link", "add", veth1, "type", "veth", "peer", "name", veth2),
                 ("link", "set", veth1, "netns", ns1), ("link", "set", veth2, "netns", ns2),
                 ("-n", ns1, "addr", "add", f"{HEAD_IP}/24", "dev", veth1),
                 ("-n", ns2, "addr", "add", f"{NODE_IP}/24", "dev", veth2),
                 ("-n", ns1, "link", "set", veth1, "up"), ("-n", ns2, "link", "set", veth2, "up"),
                 ("-n", ns1, "link", "set", "lo", "up"), ("-n", ns2, "link", "set", "lo", "up")]
        for step in steps:
            result = _ip(*step)
            if result.returncode != 0:
                pytest.skip(f"cannot set up the veth pair (ip {' '.join(step)}): {result.stderr.strip()}")
        yield ns1, ns2
    finally:
        for ns in created:
            _ip("netns", "del", ns)


def test_head_and_node_on_two_hosts_run_tasks_and_refuse_peers_without_the_key(namespaces, tmp_path):
    ns1, ns2 = namespaces
    head_host = Cli(str(tmp_path / "host1"), ("ip", "netns", "exec", ns1))
    node_host = Cli(str(tmp_path / "host2"), ("ip", "netns", "exec", ns2))
    try:
        out = head_host.ok("start", "--head", "--bind", HEAD_IP, "--port", str(PORT), "--num-cpus", "1",
                           "--resources", '{"ns1": 1}', "--object-store-memory", STORE)
        key = head_host.state()["cluster_key"]
        assert key and f"--cluster-key {key}" in out
        head_log = os.path.join(head_host.state()["session_dir"], "logs", "head.log")

        # Without the key: the node is refused, the head logs it.
        refused = node_host.run("start", "--address", HEAD, "--num-cpus", "1", "--object-store-memory", STORE)
        assert refused.returncode == 3
        assert refused.stdout.strip().splitlines() == [
            f"error: could not authenticate with the head at {HEAD}: this cluster requires its cluster key "
            "(pass cluster_key=... or set OWNRUN_CLUSTER_KEY)"]
        wait_for(lambda: "wrong or missing cluster key" in _read(head_log), 5,
                 message="the head logs the refused connection")
        assert f"refused a connection from {NODE_IP}: wrong or missing cluster key" in _read(head_log) or \
            "refused a connection from an unknown peer: wrong or missing cluster key" in _read(head_log)

        # With the key, but no node on the driver's host yet: a clear error.
        lonely = node_host.drive(HEAD, DRIVER, OWNRUN_CLUSTER_KEY=key)
        assert lonely.returncode != 0
        assert f"no node of the cluster at {HEAD} runs on this machine; start one with " \
               f"`ownrun start --address {HEAD}`" in lonely.stderr

        node_host.ok("start", "--address", HEAD, "--cluster-key", key, "--num-cpus", "1",
                     "--resources", '{"ns2": 1}', "--object-store-memory", STORE)
        (head_node,), (far_node,) = head_host.state()["nodes"], node_host.state()["nodes"]
        assert node_host.state()["nodes"][far_node]["address"].startswith(f"tcp://{NODE_IP}:")

        run = node_host.drive(HEAD, DRIVER, OWNRUN_CLUSTER_KEY=key)
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout.strip().splitlines()[-1])
        assert report["driver_node"] == far_node
        assert report["results"] == [[head_node, 2_000_000.0], [far_node, 1_000_000.0]]

        stranger = str(tmp_path / "stranger")  # a user of host 2 without the key (or its state file)
        no_key = node_host.drive(HEAD, DRIVER, OWNRUN_SESSION_ROOT=stranger)
        assert no_key.returncode != 0
        assert f"could not authenticate with the head at {HEAD}: this cluster requires its cluster key" \
            in no_key.stderr
    finally:
        sessions = []
        for host in (node_host, head_host):
            if os.path.exists(os.path.join(host.root, "current_cluster.json")):
                sessions.append(host.state()["session_dir"])
            host.run("stop")
        for root in (node_host.root, head_host.root):
            for pid in processes_of(root):  # only if `stop` failed: never leave them running
                os.kill(pid, signal.SIGKILL)
    for session in sessions:
        assert not processes_of(session)
        assert glob.glob(f"/dev/shm/ownrun-{os.path.basename(session)}-*") == []
