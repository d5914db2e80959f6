"""Sessions and processes: what starts, finds, joins and stops a cluster.

    paths.py      the session root, session directories and the file names in them
    processes.py  spawning a daemon and reading its READY line, kill-tree, the /dev/shm sweep
    state.py      the state files: session.json, current_cluster.json
    embedded.py   the cluster `engine.init()` starts for its driver (LocalCluster)
    started.py    clusters that outlive a command: `ownrun start/stop/status/kill-node`
    join.py       finding a cluster and joining it: `engine.init(address=...)`
    nodes.py      the public `engine.cluster.nodes/add_node/kill_node/node_ids`

Imports go one way: nodes -> embedded -> join, processes -> state -> paths; started ->
join, processes. Nothing here imports `engine.api` (api imports this package). Every
session lives in a private per-user root (paths.py) and every cluster has a key (embedded.py,
started.py; checked in rpc/auth.py).
"""

from .nodes import add_node, kill_node, node_ids, nodes

__all__ = ["add_node", "kill_node", "node_ids", "nodes"]
