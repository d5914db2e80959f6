"""The embedded cluster: start and stop a head and node daemons for `engine.init()`.

Owns the session directory (`/tmp/ownrun/session_*`: logs, spill files, session.json),
launching the head and node daemon processes and waiting for them to report ready,
stopping them so no process and no /dev/shm file is left behind, and removing what a
crashed earlier session left (its processes are gone but files remain).

The daemons watch the driver's pid, so a driver killed with SIGKILL still leaves nothing
behind. Also `plan_join`: for `engine.init(address=...)`, finds the node daemon on this
machine a driver joins (that cluster is `ownrun start`'s: see cluster_admin.py).
Failures: `RuntimeError` naming the process that did not start, with its log.
Not thread-safe (called from `init`/`shutdown`), except the head's restart: a daemon thread
started by `start()` waits on the head process and, unless the cluster is stopping, restarts
it on the same port and session directory (`restart_head`, serialized by `_head_lock`).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass

from .rpc import protocol as P
from .rpc.cluster_key import CurveKeys
from .rpc.transport import pack
from .util import process_tools

SESSION_ROOT = os.environ.get("OWNRUN_SESSION_ROOT", "/tmp/ownrun")
KEEP_OLD_SESSIONS = 5
HEAD_RESTART_ATTEMPTS = 5  # consecutive failed restarts before the supervisor gives up

log = logging.getLogger("ownrun.session")


def default_object_store_memory() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    stat = os.statvfs("/dev/shm")
    free_shm = stat.f_bavail * stat.f_frsize
    return int(min(total * 0.3, free_shm * 0.95))


def cleanup_stale_sessions() -> list[str]:
    """Removes /dev/shm files and spill dirs of sessions whose processes are all dead."""
    removed = []
    for path in glob.glob(os.path.join(SESSION_ROOT, "session_*")):
        info = _read_session(path)
        pids = info.get("pids", []) + ([info["driver_pid"]] if info.get("driver_pid") else [])
        if info and any(process_tools.pid_alive(pid) for pid in pids):
            continue
        name = os.path.basename(path)
        for shm in glob.glob(f"/dev/shm/ownrun-{name}-*"):
            try:
                os.unlink(shm)
                removed.append(shm)
            except OSError:
                pass
        shutil.rmtree(os.path.join(path, "spill"), ignore_errors=True)
    sessions = sorted(glob.glob(os.path.join(SESSION_ROOT, "session_*")), key=os.path.getmtime)
    for old in sessions[:-KEEP_OLD_SESSIONS]:
        info = _read_session(old)
        if not any(process_tools.pid_alive(p) for p in info.get("pids", [])):
            shutil.rmtree(old, ignore_errors=True)
    return removed


def _read_session(path: str) -> dict:
    try:
        with open(os.path.join(path, "session.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class LocalCluster:
    """A head and `num_nodes` node daemons on this machine, owned by this driver."""

    def __init__(self, num_cpus: float, resources: dict, object_store_memory: int, config: dict,
                 num_nodes: int = 1):
        self.num_cpus = num_cpus
        self.resources = resources
        self.object_store_memory = object_store_memory
        self.config = config
        self.num_nodes = num_nodes
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        self.session_dir = os.path.join(SESSION_ROOT, f"session_{stamp}_{os.getpid()}_{uuid.uuid4().hex[:6]}")
        self.head_address: str | None = None
        self.node_addresses: list[str] = []
        self.node_ids: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.node_procs: dict[str, subprocess.Popen] = {}
        self._nodes_spawning = 0  # procs[0] is the head (replaced on restart)
        self.head_port: int | None = None
        self._head_lock = threading.RLock()
        self._stopping = threading.Event()
        self._head_supervisor: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        cleanup_stale_sessions()
        os.makedirs(os.path.join(self.session_dir, "logs"), exist_ok=True)
        head = self._spawn_head([])
        self.procs.append(head)
        try:
            self.head_address = process_tools.wait_ready(head, "the head", self._head_log(), timeout)
            self.head_port = int(self.head_address.rpartition(":")[2])
            pending = [self._spawn_node(self.num_cpus, self.resources) for _ in range(self.num_nodes)]
            self._write_session()
            for proc, node_id, log in pending:
                self._node_ready(proc, node_id, log, timeout)
        except BaseException:
            self.stop(None)
            raise
        self._head_supervisor = threading.Thread(target=self._supervise_head, name="ownrun-head-supervisor",
                                                 daemon=True)
        self._head_supervisor.start()

    # ---- nodes ---------------------------------------------------------------------------
    def _spawn_node(self, num_cpus: float, resources: dict) -> tuple:
        node_id = f"node{len(self.node_ids) + self._nodes_spawning}-{uuid.uuid4().hex[:6]}"
        self._nodes_spawning += 1
        log = os.path.join(self.session_dir, "logs", f"node-{node_id}.log")
        proc = process_tools.spawn("ownrun.engine.node.daemon", [
            "--session-dir", self.session_dir, "--node-id", node_id,
            "--head-address", self.head_address,
            "--resources", json.dumps({"CPU": float(num_cpus), **resources}),
            "--store-capacity", str(self.object_store_memory),
            "--config", json.dumps(self.config), "--parent-pid", str(os.getpid())], log)
        self.procs.append(proc)
        return proc, node_id, log

    def _node_ready(self, proc, node_id: str, log: str, timeout: float) -> str:
        address = process_tools.wait_ready(proc, f"node daemon {node_id}", log, timeout)
        self._nodes_spawning -= 1
        self.node_addresses.append(address)
        self.node_ids.append(node_id)
        self.node_procs[node_id] = proc
        return address

    def add_node(self, num_cpus: float, resources: dict, timeout: float = 30.0) -> str:
        """Starts one more node daemon (with its own workers and store). Returns its node id."""
        proc, node_id, log = self._spawn_node(num_cpus, resources)
        self._write_session()
        self._node_ready(proc, node_id, log, timeout)
        return node_id

    def kill_node(self, node_id: str) -> None:
        """SIGKILLs a node as a machine loss would: daemon, zygote and workers die at once.

        The daemon gets no chance to clean up, so its /dev/shm arena is removed here."""
        proc = self.node_procs.get(node_id)
        if proc is None:
            raise ValueError(f"no node {node_id!r} in this cluster; nodes: {', '.join(self.node_ids)}")
        try:
            import psutil  # optional: finds the zygote and workers to kill them in the same instant

            victims = psutil.Process(proc.pid).children(recursive=True)
        except Exception:  # noqa: BLE001 - without psutil they die by PR_SET_PDEATHSIG
            victims = []
        proc.kill()
        for child in victims:
            process_tools.kill_pid(child.pid)
        proc.wait()
        for shm in glob.glob(f"/dev/shm/ownrun-{os.path.basename(self.session_dir)}-{node_id}"):
            try:
                os.unlink(shm)
            except OSError:
                pass
        shutil.rmtree(os.path.join(self.session_dir, "spill", node_id), ignore_errors=True)

    # ---- head restarts (head supervision) ----------------------------------------------
    def _head_log(self) -> str:
        return os.path.join(self.session_dir, "logs", "head.log")

    def _spawn_head(self, extra: list[str]) -> subprocess.Popen:
        return process_tools.spawn("ownrun.engine.head.server", [
            "--session-dir", self.session_dir, "--parent-pid", str(os.getpid()),
            "--node-timeout", str(self.config.get("node_death_timeout", 1.0)), *extra], self._head_log())

    def restart_head(self, timeout: float = 30.0) -> str:
        """Replaces the head (killed first if still running) by a new head process on the same
        port and session directory, which reloads its tables from head.sqlite3. Returns its
        address (unchanged). Raises `RuntimeError` if it does not start or the cluster is stopping."""
        with self._head_lock:
            if self._stopping.is_set():
                raise RuntimeError("the cluster is stopping: the head is not restarted")
            old = self.procs[0]
            if old.poll() is None:
                old.kill()
                old.wait()
            head = self._spawn_head(["--port", str(self.head_port)])
            self.procs[0] = head
            address = process_tools.wait_ready(head, "the restarted head", self._head_log(), timeout)
            if address != self.head_address:
                head.kill()
                raise RuntimeError(f"the restarted head bound {address}, not {self.head_address}")
            self._write_session()
            log.info("head restarted at %s (pid %d)", address, head.pid)
            return address

    def _supervise_head(self) -> None:
        """Runs in a daemon thread: restarts the head whenever it exits, until `stop`."""
        failures = 0
        while not self._stopping.is_set():
            self.procs[0].wait()
            with self._head_lock:
                if self._stopping.is_set():
                    return
                if self.procs[0].poll() is None:
                    continue  # someone already restarted it
                log.warning("the head exited with code %s; restarting it", self.procs[0].returncode)
                try:
                    self.restart_head()
                    failures = 0
                except Exception:  # noqa: BLE001 - retried, then given up with a log line
                    failures += 1
                    log.exception("head restart failed (%d/%d)", failures, HEAD_RESTART_ATTEMPTS)
                    if failures >= HEAD_RESTART_ATTEMPTS:
                        log.error("giving up restarting the head; see %s", self._head_log())
                        return
            if failures:
                self._stopping.wait(min(0.2 * 2 ** failures, 3.0))  # back-off, cut short by stop

    def _write_session(self) -> None:
        with open(os.path.join(self.session_dir, "session.json"), "w") as f:
            json.dump({"pids": [p.pid for p in self.procs], "driver_pid": os.getpid(),
                       "head_address": self.head_address}, f)

    def stop(self, transport, timeout: float = 10.0) -> None:
        """Asks the daemons to stop (they kill their workers and unlink their stores), then the head."""
        with self._head_lock:
            self._stopping.set()  # no head restart starts after this
        if transport is not None:
            for address in self.node_addresses:
                transport.send(address, [pack([P.SHUTDOWN_NODE])])
        deadline = time.monotonic() + timeout
        for proc in self.procs[1:] + self.procs[:1]:
            if proc is self.procs[0]:
                proc.terminate()
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._head_supervisor is not None and self._head_supervisor is not threading.current_thread():
            self._head_supervisor.join(max(0.1, deadline - time.monotonic()))
        for shm in glob.glob(f"/dev/shm/ownrun-{os.path.basename(self.session_dir)}-*"):
            try:
                os.unlink(shm)
            except OSError:
                pass
        shutil.rmtree(os.path.join(self.session_dir, "spill"), ignore_errors=True)


# ---- joining a running cluster (`engine.init(address=...)`) ------------------------------------
@dataclass(frozen=True)
class JoinPlan:
    """Where a driver joining a cluster connects: its local daemon, bind host and key."""

    head_address: str
    daemon_address: str
    bind_host: str
    curve: CurveKeys | None


def plan_join(address: str, cluster_key: str | None, timeout: float = 5.0) -> JoinPlan:
    """Asks the head at `address` for its nodes and picks a live one on this machine.

    Raises `EngineError` (one line naming the address) within about `timeout` seconds when
    nothing answers there, the key is missing or wrong, or no node runs on this machine."""
    from . import cluster_state
    from .errors import EngineError
    from .rpc import addresses, oneshot

    target = cluster_state.resolve(address, cluster_key)
    try:
        with oneshot.OneShotClient(target.head_address, target.curve) as client:
            view = client.call(P.NODE_LIST, timeout=timeout)
    except oneshot.PeerError as exc:
        raise EngineError(str(exc)) from None  # names the address and what to do
    except oneshot.RequestFailed as exc:
        raise EngineError(f"the head at {target.plain} failed: {exc}") from None
    for _, node in sorted(view.items()):
        host, _ = addresses.parse(node["address"])
        if node["alive"] and addresses.is_local_ip(host):
            head_host, _ = addresses.parse(target.head_address)
            bind = addresses.source_ip_toward(head_host) or host
            return JoinPlan(target.head_address, node["address"], bind, target.curve)
    raise EngineError(f"no node of the cluster at {target.plain} runs on this machine; "
                      f"start one with `ownrun start --address {target.plain}`")


def connect_driver(address: str, cluster_key: str | None, config: dict):
    """The driver's CoreWorker on this machine's node of the cluster at `address`,
    registered with its daemon. Its transport binds where the cluster reaches it, with the key."""
    from .rpc.transport import network_identity
    from .worker.core_worker import CoreWorker

    plan = plan_join(address, cluster_key)
    with network_identity(plan.bind_host, plan.curve):
        core = CoreWorker("driver", plan.daemon_address, os.urandom(16), config)
    try:
        core.register_driver()
    except BaseException:
        core.stop()
        raise
    return core
