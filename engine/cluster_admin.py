"""A cluster that outlives the command that started it: the library behind `ownrun start`,
`stop`, `status` and `kill-node`.

Owns starting a head and node daemons on this machine as detached processes (their own
session, `--parent-pid 0`: nothing watches a driver), recording them in the state file
(cluster_state.py) and in the session's session.json (so an embedded cluster's clean-up of
stale sessions leaves them alone), stopping them so no process and no /dev/shm file is
left, listing the head's view of the nodes, and SIGKILLing one node as a machine loss.

Layout on disk: `ownrun start --head` creates `<SESSION_ROOT>/session_*` (logs, spill
files, the head's SQLite file and, for a head bound beyond loopback, `cluster.key`, mode
0600). `ownrun start --address` on the machine of that head adds its node to the same
session directory; on another machine it creates its own session directory there.

Not thread-safe (one command at a time per process); across processes the state file's
lock serializes changes. Failures: `ClusterError` with a one-line message (what is wrong,
what to do); a process that does not start raises `ClusterError` quoting its log's last line.
"""

from __future__ import annotations

import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid

from . import cluster_state
from .cluster_state import ClusterError, Target
from .rpc import addresses, oneshot
from .rpc import protocol as P
from .rpc.cluster_key import KEY_FILE_NAME, CurveKeys
from .rpc.transport import Transport, pack
from .session import SESSION_ROOT, default_object_store_memory
from .util import process_tools

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


# ---- start ----------------------------------------------------------------------------------------
def start_head(port: int, num_cpus: float | None, resources: dict, object_store_memory: int | None,
               bind: str, node_timeout: float = 1.0) -> dict:
    """Starts a head and one node daemon here. Returns the state written."""
    with cluster_state.locked() as state:
        _refuse_if_running(state)
        if state:  # a cluster whose processes are gone (a reboot, kill -9): drop its files
            _stop_processes(state)
        session_dir = _new_session_dir()
        key = None
        if not addresses.is_loopback(bind):
            key = CurveKeys.generate(os.path.join(session_dir, KEY_FILE_NAME))
        args = ["--session-dir", session_dir, "--parent-pid", "0", "--host", bind, "--port", str(port),
                "--node-timeout", str(node_timeout)]
        if key is not None:
            args += ["--cluster-key", key.path]
        head_proc, head_address = _spawn_ready("ownrun.engine.head.server", args,
                                               os.path.join(session_dir, "logs", "head.log"), "the head")
        state = {"head_address": head_address, "head_pid": head_proc.pid, "session_dir": session_dir,
                 "cluster_key": key.path if key else None, "nodes": {}}
        try:
            _start_node(state, Target(head_address, key), session_dir, bind, num_cpus, resources,
                        object_store_memory)
        except BaseException:
            _stop_processes(state)
            cluster_state.remove()
            raise
        return state


def start_node(address: str, num_cpus: float | None, resources: dict, object_store_memory: int | None,
               bind: str | None, cluster_key: str | None) -> tuple[str, dict]:
    """Starts a node daemon here that joins the head at `address`. Returns (node id, state)."""
    target = cluster_state.resolve(address, cluster_key)
    host, _ = addresses.parse(target.head_address)
    with cluster_state.locked() as state:
        if state and state.get("head_address") != target.head_address and _live_pids(state):
            raise ClusterError(f"this machine already runs a node of the cluster at "
                               f"{addresses.plain(state['head_address'])}; run `ownrun stop` first")
        if state.get("head_address") != target.head_address:
            state = {"head_address": target.head_address, "head_pid": None, "session_dir": _new_session_dir(),
                     "cluster_key": target.curve.path if target.curve else None, "nodes": {}}
        with oneshot.OneShotClient(target.head_address, target.curve) as client:
            _call(client, P.HEAD_STATS)  # the right address and key, before starting anything
        bind = bind or addresses.source_ip_toward(host) or "127.0.0.1"
        node_id = _start_node(state, target, state["session_dir"], bind, num_cpus, resources,
                              object_store_memory)
        return node_id, state


def _start_node(state: dict, target: Target, session_dir: str, bind: str, num_cpus: float | None,
                resources: dict, object_store_memory: int | None) -> str:
    """Spawns a node daemon, waits until the head lists it, records it (lock held)."""
    cpus = float(os.cpu_count() or 1) if num_cpus is None else float(num_cpus)
    node_id = f"node{len(state['nodes'])}-{uuid.uuid4().hex[:6]}"
    args = ["--session-dir", session_dir, "--node-id", node_id, "--head-address", target.head_address,
            "--resources", json.dumps({"CPU": cpus, **resources}),
            "--store-capacity", str(int(object_store_memory or default_object_store_memory())),
            "--config", json.dumps({"prestart_workers": int(cpus)}), "--parent-pid", "0", "--host", bind]
    if target.curve is not None:
        args += ["--cluster-key", target.curve.path]
    proc, address = _spawn_ready("ownrun.engine.node.daemon", args,
                                 os.path.join(session_dir, "logs", f"node-{node_id}.log"), f"node {node_id}")
    state["nodes"][node_id] = {"pid": proc.pid, "address": address, "session_dir": session_dir}
    _save(state)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        with oneshot.OneShotClient(target.head_address, target.curve) as client:
            while node_id not in _call(client, P.NODE_LIST):  # registered by its first heartbeat
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise ClusterError(f"node {node_id} did not register with the head at "
                                       f"{target.plain}; see {session_dir}/logs/node-{node_id}.log")
                time.sleep(0.05)
    except BaseException:
        _kill_tree(proc.pid)
        del state["nodes"][node_id]
        _save(state)
        raise
    return node_id


def _spawn_ready(module: str, args: list[str], log_path: str, name: str) -> tuple[subprocess.Popen, str]:
    """Starts a detached `python -m module` (own session, survives this command) and reads
    its READY line. Returns (process, address)."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=log, close_fds=True, start_new_session=True)
    try:
        return proc, process_tools.wait_ready(proc, name, log_path, START_TIMEOUT)
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1].strip()
        raise ClusterError(f"{name} did not start: {last} (log: {log_path})") from None


def _refuse_if_running(state: dict) -> None:
    if state and _live_pids(state):
        raise ClusterError(f"an ownrun cluster started from this machine is already running at "
                           f"{addresses.plain(state['head_address'])}; run `ownrun stop` first")


def _new_session_dir() -> str:
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    path = os.path.join(SESSION_ROOT, f"session_{stamp}_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    os.makedirs(os.path.join(path, "logs"), exist_ok=True)
    return path


def _save(state: dict) -> None:
    """The state file, and each session's session.json listing its live processes."""
    if not state.get("head_pid") and not state.get("nodes"):
        cluster_state.remove()  # nothing of this cluster runs here any more
        return
    cluster_state.save(state)
    for session_dir in _session_dirs(state):
        pids = [n["pid"] for n in state["nodes"].values() if n["session_dir"] == session_dir]
        if state.get("head_pid") and session_dir == state["session_dir"]:
            pids.insert(0, state["head_pid"])
        with open(os.path.join(session_dir, "session.json"), "w") as f:
            json.dump({"pids": pids, "head_address": state["head_address"], "detached": True}, f)


def _session_dirs(state: dict) -> list[str]:
    return sorted({state["session_dir"], *(n["session_dir"] for n in state.get("nodes", {}).values())})


# ---- stop ---------------------------------------------------------------------------------------
def stop() -> dict | None:
    """Stops the node daemons and the head started from this machine. Returns what was
    stopped ({"head_address", "nodes", "head"}), or None when nothing was recorded."""
    with cluster_state.locked() as state:
        if not state:
            return None
        stopped = _stop_processes(state)
        cluster_state.remove()
        return {"head_address": state.get("head_address"), **stopped}


def _stop_processes(state: dict) -> dict:
    """SHUTDOWN_NODE to each daemon (SIGTERM, then SIGKILL if it lingers), then SIGTERM to the
    head; waits for all, then removes their /dev/shm files and spill directories."""
    nodes = {nid: n for nid, n in state.get("nodes", {}).items() if _is_ours(n["pid"], nid)}
    curve = _load_key(state)
    transport = Transport(_bind_for(nodes), curve=curve) if nodes else None
    try:
        for node in nodes.values():
            transport.send(node["address"], [pack([P.SHUTDOWN_NODE])])
        deadline = time.monotonic() + STOP_TIMEOUT
        for node in nodes.values():
            if not process_tools.wait_pid_exit(node["pid"], min(3.0, max(0.1, deadline - time.monotonic()))):
                process_tools.kill_pid(node["pid"], signal.SIGTERM)
        for node in nodes.values():
            if not process_tools.wait_pid_exit(node["pid"], max(0.1, deadline - time.monotonic())):
                _kill_tree(node["pid"])
    finally:
        if transport is not None:
            transport.close()
    head = bool(state.get("head_pid")) and _is_ours(state["head_pid"], state["session_dir"])
    if head:
        process_tools.kill_pid(state["head_pid"], signal.SIGTERM)
        if not process_tools.wait_pid_exit(state["head_pid"], 5.0):
            _kill_tree(state["head_pid"])
    for session_dir in _session_dirs(state):
        _remove_store_files(session_dir, "*")
        shutil.rmtree(os.path.join(session_dir, "spill"), ignore_errors=True)
    return {"nodes": sorted(nodes), "head": head}


def _bind_for(nodes: dict) -> str:
    host, _ = addresses.parse(next(iter(nodes.values()))["address"])
    return addresses.source_ip_toward(host) or "127.0.0.1"


def _load_key(state: dict) -> CurveKeys | None:
    path = state.get("cluster_key")
    try:
        return CurveKeys.load(path) if path else None
    except (OSError, ValueError):
        return None  # without the key SHUTDOWN_NODE cannot reach them: SIGTERM does


# ---- status ---------------------------------------------------------------------------------------
def status(address: str | None, cluster_key: str | None) -> dict:
    """The head's view: {"address", "nodes": [{node_id, address, alive, total, available,
    store}], "head": HEAD_STATS}."""
    target = cluster_state.resolve(address, cluster_key)
    with oneshot.OneShotClient(target.head_address, target.curve) as client:
        view = _call(client, P.NODE_LIST)
        stats = _call(client, P.HEAD_STATS)
    nodes = [{"node_id": node_id, **info} for node_id, info in sorted(view.items())]
    return {"address": target.plain, "nodes": nodes, "head": stats}


def _call(client: oneshot.OneShotClient, kind: int):
    try:
        return client.call(kind)
    except oneshot.PeerError as exc:
        raise ClusterError(str(exc)) from None
    except oneshot.RequestFailed as exc:
        raise ClusterError(f"the head at {addresses.plain(client.address)} failed: {exc}") from None


# ---- kill-node ------------------------------------------------------------------------------------
def kill_node(node_id: str | None, pick_random: bool, address: str | None, cluster_key: str | None) -> str:
    """SIGKILLs a node started from this machine (its daemon, zygote and workers at once, as a
    machine loss) and removes its store file. Returns the node id."""
    if (node_id is None) == (not pick_random):
        raise ClusterError("give a NODE_ID or --random (not both)")
    target = cluster_state.resolve(address, cluster_key)
    with oneshot.OneShotClient(target.head_address, target.curve) as client:
        view = _call(client, P.NODE_LIST)
    with cluster_state.locked() as state:
        mine = state.get("nodes", {}) if state.get("head_address") == target.head_address else {}
        if pick_random:
            candidates = sorted(n for n in mine if view.get(n, {}).get("alive") and _is_ours(mine[n]["pid"], n))
            if not candidates:
                raise ClusterError(f"no live node of the cluster at {target.plain} was started from this machine")
            node_id = random.choice(candidates)
        if node_id not in view:
            known = ", ".join(sorted(view)) or "none"
            raise ClusterError(f"no node {node_id!r} in the cluster at {target.plain}; nodes: {known}")
        node = mine.get(node_id)
        if node is None or not _is_ours(node["pid"], node_id):
            where = addresses.plain(view[node_id]["address"])
            raise ClusterError(f"node {node_id} (at {where}) was not started from this machine or is "
                               f"no longer running; run `ownrun kill-node {node_id}` where it runs")
        _kill_tree(node["pid"])
        _remove_store_files(node["session_dir"], node_id)
        shutil.rmtree(os.path.join(node["session_dir"], "spill", node_id), ignore_errors=True)
        del state["nodes"][node_id]
        _save(state)
    return node_id


# ---- processes ------------------------------------------------------------------------------------
def _is_ours(pid: int | None, marker: str) -> bool:
    """True if `pid` is alive and is the ownrun process whose command line names `marker`
    (guards against signalling a recycled pid)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except OSError:
        return False
    return "ownrun.engine." in cmdline and marker in cmdline


def _live_pids(state: dict) -> list[int]:
    pids = [(n["pid"], nid) for nid, n in state.get("nodes", {}).items()]
    if state.get("head_pid"):
        pids.append((state["head_pid"], state["session_dir"]))
    return [pid for pid, marker in pids if _is_ours(pid, marker)]


def _kill_tree(pid: int) -> None:
    """SIGKILLs `pid` and (with psutil) its descendants in the same instant; without psutil
    the zygote and workers follow by PR_SET_PDEATHSIG. Waits for `pid` to exit."""
    try:
        import psutil

        victims = psutil.Process(pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - psutil missing, or the process already gone
        victims = []
    process_tools.kill_pid(pid)
    for child in victims:
        process_tools.kill_pid(child.pid)
    process_tools.wait_pid_exit(pid, 5.0)


def _remove_store_files(session_dir: str, node_pattern: str) -> None:
    for shm in glob.glob(f"/dev/shm/ownrun-{os.path.basename(session_dir)}-{node_pattern}"):
        try:
            os.unlink(shm)
        except OSError:
            pass
