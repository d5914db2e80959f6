"""`ray.cluster_utils.Cluster` mapped onto ownrun's multi-node embedded cluster.

Ray's `Cluster` starts raylets by hand and the driver joins with `ray.init(address=
cluster.address)`. ownrun's embedded cluster is started by the driver, so: the first
`add_node` starts it (`engine.init` with that node's CPUs, resources and store size), later
ones call `engine.cluster.add_node`, `remove_node` kills the node, and `cluster.address` is a
name that `ray.init` takes to mean "the cluster this process already drives". Only these
calls are mapped; anything else of Ray's Cluster is a marker (UsesRayInternals).
"""

import time

from ownrun import engine

EMBEDDED_ADDRESS = "ownrun-embedded-cluster"
cluster_not_supported = False


class Node:
    def __init__(self, node_id: str):
        self.node_id = node_id
        self.unique_id = node_id

    def __repr__(self):
        return f"Node({self.node_id})"


class Cluster:
    def __init__(self, initialize_head=False, connect=False, head_node_args=None, shutdown_at_exit=True):
        self.head_node = None
        self.worker_nodes = set()
        if initialize_head:
            self.add_node(**(head_node_args or {}))

    @property
    def address(self) -> str:
        return EMBEDDED_ADDRESS

    def add_node(self, wait=True, num_cpus=1, resources=None, object_store_memory=None, **kwargs):
        kwargs.pop("_system_config", None)  # the fixture's test tuning: not a node property
        kwargs.pop("namespace", None)
        kwargs.pop("dashboard_port", None)
        if kwargs:
            raise TypeError(f"Cluster.add_node: ownrun's embedded cluster has no option(s) {sorted(kwargs)}")
        if self.head_node is None:
            engine.init(num_cpus=num_cpus, resources=resources, object_store_memory=object_store_memory)
            node = Node(engine.get_runtime_context().get_node_id())
            self.head_node = node
        else:
            node = Node(engine.cluster.add_node(num_cpus, resources))
            self.worker_nodes.add(node)
        return node

    def remove_node(self, node, allow_graceful=True):
        engine.cluster.kill_node(node.node_id)
        self.worker_nodes.discard(node)

    def list_all_nodes(self):
        return ([self.head_node] if self.head_node else []) + list(self.worker_nodes)

    def wait_for_nodes(self, timeout=30):
        want = 1 + len(self.worker_nodes) if self.head_node else 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for n in engine.nodes() if n["alive"]) == want:
                return
            time.sleep(0.1)
        raise TimeoutError("Timed out while waiting for nodes to join.")

    def connect(self, namespace=None):
        pass

    def shutdown(self):
        engine.shutdown()
        self.head_node = None
        self.worker_nodes = set()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        from ray._internals import Marker, UsesRayInternals

        return Marker(f"ray.cluster_utils.Cluster.{name}", UsesRayInternals)
