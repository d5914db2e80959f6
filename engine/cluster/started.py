"""A cluster that outlives the command that started it: the library behind `ownrun start`,
`stop`, `status` and `kill-node`.

Owns starting a head and node daemons on this machine as detached processes (their own
session, `--parent-pid 0`: nothing watches a driver), recording them in the state file
and in the session's session.json (state.py; so an embedded cluster's clean-up of stale
sessions leaves them alone), stopping them so no process and no /dev/shm file is left,
listing the head's view of the nodes, and SIGKILLing one node as a machine loss.

Layout on disk (paths.py): `ownrun start --head` creates a session directory (logs, spill
files, the head's SQLite file and the cluster key `cluster.key`: every cluster has one,
loopback included). `ownrun start --address` and `engine.init(address=...)` on the machine
of that head find the key through the state file; on another machine `--cluster-key` (or
$OWNRUN_CLUSTER_KEY) names a copy, and the node gets its own session directory there.

A node's default store is 30% of RAM less what the stores of this user's nodes already
running on this machine claim (at least 512 MiB; processes.default_store_of_one_more_node),
with one warning line saying so, so two nodes on one machine do not claim 60% between them;
an explicit size always wins. Each node's store size is recorded with it in the state file.

Not thread-safe (one command at a time per process); across processes the state file's
lock serializes changes. Failures: `ClusterError` with a one-line message (what is wrong,
what to do); a process that does not start raises `NodeStartError` (a ClusterError) whose
first line names it and quotes its log's last line.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import time
import uuid

from ..errors import ClusterError
from ..head import liveness
from ..rpc import addresses, oneshot
from ..rpc import protocol as P
from ..rpc.cluster_key import CurveKeys
from ..rpc.transport import Transport, pack
from ..util import process_tools
from ..util.cpus import usable_cpus
from . import paths, processes, state
from .join import Target, call, resolve

log = logging.getLogger("ownrun.cluster")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


# ---- start ----------------------------------------------------------------------------------------
def start_head(port: int, num_cpus: float | None, resources: dict, object_store_memory: int | None,
               bind: str, node_timeout: float = liveness.DEFAULT_DEAD_AFTER) -> dict:
    """Starts a head and one node daemon here. Returns the state written."""
    with state.locked() as current:
        _refuse_if_running(current)
        if current:  # a cluster whose processes are gone (a reboot, kill -9): drop its files
            _stop_processes(current)
        session_dir = paths.new_session_dir()
        key = CurveKeys.generate(paths.key_file(session_dir))
        args = ["--session-dir", session_dir, "--parent-pid", "0", "--host", bind, "--port", str(port),
                "--node-timeout", str(node_timeout), "--cluster-key", key.path]
        head_proc, head_address = processes.start("ownrun.engine.head.server", args, paths.head_log(session_dir),
                                                  "the head", START_TIMEOUT, detached=True)
        current = {"head_address": head_address, "head_pid": head_proc.pid, "session_dir": session_dir,
                   "cluster_key": key.path, "nodes": {}}
        try:
            _start_node(current, Target(head_address, key), session_dir, bind, num_cpus, resources,
                        object_store_memory)
        except BaseException:
            _stop_processes(current)
            state.remove()
            raise
        return current


def start_node(address: str, num_cpus: float | None, resources: dict, object_store_memory: int | None,
               bind: str | None, cluster_key: str | None) -> tuple[str, dict]:
    """Starts a node daemon here that joins the head at `address`. Returns (node id, state)."""
    target = resolve(address, cluster_key)
    host, _ = addresses.parse(target.head_address)
    with state.locked() as current:
        if current and current.get("head_address") != target.head_address and _live_pids(current):
            raise ClusterError(f"this machine already runs a node of the cluster at "
                               f"{addresses.plain(current['head_address'])}; run `ownrun stop` first")
        if current.get("head_address") != target.head_address:
            current = {"head_address": target.head_address, "head_pid": None,
                       "session_dir": paths.new_session_dir(),
                       "cluster_key": target.curve.path if target.curve else None, "nodes": {}}
        with oneshot.OneShotClient(target.head_address, target.curve) as client:
            call(client, P.HEAD_STATS)  # the right address and key, before starting anything
        bind = bind or addresses.source_ip_toward(host) or "127.0.0.1"
        node_id = _start_node(current, target, current["session_dir"], bind, num_cpus, resources,
                              object_store_memory)
        return node_id, current


def _start_node(current: dict, target: Target, session_dir: str, bind: str, num_cpus: float | None,
                resources: dict, object_store_memory: int | None) -> str:
    """Spawns a node daemon, waits until the head lists it, records it (lock held)."""
    cpus = float(usable_cpus()) if num_cpus is None else float(num_cpus)
    node_id = f"node{len(current['nodes'])}-{uuid.uuid4().hex[:6]}"
    if object_store_memory:
        store = int(object_store_memory)
    else:  # 30% of RAM, less what this user's nodes already running here claim (lock held: no race)
        store, note = processes.default_store_of_one_more_node()
        if note:
            log.warning("node %s: %s", node_id, note)
    args = ["--session-dir", session_dir, "--node-id", node_id, "--head-address", target.head_address,
            "--resources", json.dumps({"CPU": cpus, **resources}), "--store-capacity", str(store),
            "--config", json.dumps({"prestart_workers": int(cpus)}), "--parent-pid", "0", "--host", bind]
    if target.curve is not None:
        args += ["--cluster-key", target.curve.path]
    log_path = paths.node_log(session_dir, node_id)
    proc, address = processes.start("ownrun.engine.node.daemon", args, log_path, f"node {node_id}",
                                    START_TIMEOUT, detached=True)
    current["nodes"][node_id] = {"pid": proc.pid, "address": address, "session_dir": session_dir,
                                 "store": store}
    _save(current)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        with oneshot.OneShotClient(target.head_address, target.curve) as client:
            while node_id not in call(client, P.NODE_LIST):  # registered by its first heartbeat
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise ClusterError(f"node {node_id} did not register with the head at "
                                       f"{target.plain}; see {log_path}")
                time.sleep(0.05)
    except BaseException:
        processes.kill_tree(proc.pid)
        del current["nodes"][node_id]
        _save(current)
        raise
    return node_id


def _refuse_if_running(current: dict) -> None:
    if current and _live_pids(current):
        raise ClusterError(f"an ownrun cluster started from this machine is already running at "
                           f"{addresses.plain(current['head_address'])}; run `ownrun stop` first")


def _save(current: dict) -> None:
    """The state file, and each session's session.json listing its live processes."""
    if not current.get("head_pid") and not current.get("nodes"):
        state.remove()  # nothing of this cluster runs here any more
        return
    state.save(current)
    for session_dir in _session_dirs(current):
        pids = [n["pid"] for n in current["nodes"].values() if n["session_dir"] == session_dir]
        if current.get("head_pid") and session_dir == current["session_dir"]:
            pids.insert(0, current["head_pid"])
        state.write_session(session_dir, pids, current["head_address"], detached=True)


def _session_dirs(current: dict) -> list[str]:
    return sorted({current["session_dir"], *(n["session_dir"] for n in current.get("nodes", {}).values())})


# ---- stop ---------------------------------------------------------------------------------------
def stop() -> dict | None:
    """Stops the node daemons and the head started from this machine. Returns what was
    stopped ({"head_address", "nodes", "head"}), or None when nothing was recorded."""
    with state.locked() as current:
        if not current:
            return None
        stopped = _stop_processes(current)
        state.remove()
        return {"head_address": current.get("head_address"), **stopped}


def _stop_processes(current: dict) -> dict:
    """SHUTDOWN_NODE to each daemon (SIGTERM, then SIGKILL if it lingers), then SIGTERM to the
    head; waits for all, then removes their /dev/shm files and spill directories."""
    nodes = {nid: n for nid, n in current.get("nodes", {}).items() if processes.is_ours(n["pid"], nid)}
    curve = _load_key(current)
    transport = Transport(_bind_for(nodes), curve=curve) if nodes else None
    try:
        for node_id, node in nodes.items():
            transport.send(node["address"], [pack([P.SHUTDOWN_NODE, node_id])])
        deadline = time.monotonic() + STOP_TIMEOUT
        for node in nodes.values():
            if not process_tools.wait_pid_exit(node["pid"], min(3.0, max(0.1, deadline - time.monotonic()))):
                process_tools.kill_pid(node["pid"], signal.SIGTERM)
        for node in nodes.values():
            if not process_tools.wait_pid_exit(node["pid"], max(0.1, deadline - time.monotonic())):
                processes.kill_tree(node["pid"])
    finally:
        if transport is not None:
            transport.close()
    head = bool(current.get("head_pid")) and processes.is_ours(current["head_pid"], current["session_dir"])
    if head:
        process_tools.kill_pid(current["head_pid"], signal.SIGTERM)
        if not process_tools.wait_pid_exit(current["head_pid"], 5.0):
            processes.kill_tree(current["head_pid"])
    for session_dir in _session_dirs(current):
        processes.remove_store_files(session_dir)
    return {"nodes": sorted(nodes), "head": head}


def _bind_for(nodes: dict) -> str:
    host, _ = addresses.parse(next(iter(nodes.values()))["address"])
    return addresses.source_ip_toward(host) or "127.0.0.1"


def _load_key(current: dict) -> CurveKeys | None:
    path = current.get("cluster_key")
    try:
        return CurveKeys.load(path) if path else None
    except (OSError, ValueError):
        return None  # without the key SHUTDOWN_NODE cannot reach them: SIGTERM does


def _live_pids(current: dict) -> list[int]:
    pids = [(n["pid"], nid) for nid, n in current.get("nodes", {}).items()]
    if current.get("head_pid"):
        pids.append((current["head_pid"], current["session_dir"]))
    return [pid for pid, marker in pids if processes.is_ours(pid, marker)]


# ---- status ---------------------------------------------------------------------------------------
def status(address: str | None, cluster_key: str | None) -> dict:
    """The head's view: {"address", "nodes": [{node_id, address, alive, total, available,
    store}], "head": HEAD_STATS}."""
    target = resolve(address, cluster_key)
    with oneshot.OneShotClient(target.head_address, target.curve) as client:
        view = call(client, P.NODE_LIST)
        stats = call(client, P.HEAD_STATS)
    nodes = [{"node_id": node_id, **info} for node_id, info in sorted(view.items())]
    return {"address": target.plain, "nodes": nodes, "head": stats}


# ---- kill-node ------------------------------------------------------------------------------------
def kill_node(node_id: str | None, pick_random: bool, address: str | None, cluster_key: str | None) -> str:
    """SIGKILLs a node started from this machine (its daemon, zygote and workers at once, as a
    machine loss) and removes its store file. Returns the node id."""
    if (node_id is None) == (not pick_random):
        raise ClusterError("give a NODE_ID or --random (not both)")
    target = resolve(address, cluster_key)
    with oneshot.OneShotClient(target.head_address, target.curve) as client:
        view = call(client, P.NODE_LIST)
    with state.locked() as current:
        mine = current.get("nodes", {}) if current.get("head_address") == target.head_address else {}
        if pick_random:
            candidates = sorted(n for n in mine
                                if view.get(n, {}).get("alive") and processes.is_ours(mine[n]["pid"], n))
            if not candidates:
                raise ClusterError(f"no live node of the cluster at {target.plain} was started from this machine")
            node_id = random.choice(candidates)
        if node_id not in view:
            known = ", ".join(sorted(view)) or "none"
            raise ClusterError(f"no node {node_id!r} in the cluster at {target.plain}; nodes: {known}")
        node = mine.get(node_id)
        if node is None or not processes.is_ours(node["pid"], node_id):
            where = addresses.plain(view[node_id]["address"])
            raise ClusterError(f"node {node_id} (at {where}) was not started from this machine or is "
                               f"no longer running; run `ownrun kill-node {node_id}` where it runs")
        processes.kill_tree(node["pid"])
        processes.remove_store_files(node["session_dir"], node_id)
        del current["nodes"][node_id]
        _save(current)
    return node_id
