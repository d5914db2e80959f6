"""The embedded cluster: a head and node daemons started by `engine.init()` for this driver.

Owns one `LocalCluster`: creating its session directory (after sweeping what crashed earlier
sessions left: their processes are gone but files remain) and how its peers authenticate
(every process of the cluster, the driver included, binds a unix socket inside the private
session directory, which only this user can reach; if that path is too long for a unix
socket, they bind loopback tcp and hold a cluster key created for the cluster: a peer
without it is refused, see rpc/auth.py), launching the head and node daemons (on unix sockets the nodes start beside the head: its
address is known before it binds) and waiting for them to report ready,
connecting the driver, adding and SIGKILLing nodes, supervising the
head (a daemon thread waits on the head process and, unless the cluster is stopping,
restarts it on the same port and session directory), and stopping everything so no
process and no /dev/shm file is left behind. Also the process's current embedded cluster
(`current()`, set by `engine.init`, read by `engine.cluster.add_node`/`kill_node`).

The daemons watch the driver's pid, so a driver killed with SIGKILL still leaves nothing
behind. Not thread-safe (called from `init`/`shutdown`/`add_node`), except the head's
restart, which `_head_lock` serializes with `stop`. Failures: `NodeStartError` naming the
process that did not start and quoting its log; `ClusterError` for a restart refused
because the cluster is stopping; `ValueError` naming an unknown node.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
import uuid

from ..errors import ClusterError
from ..head import liveness
from ..rpc import addresses, oneshot
from ..rpc import protocol as P
from ..rpc.cluster_key import CurveKeys
from ..rpc.transport import pack
from ..util import handler_errors
from . import join, paths, processes, state

HEAD_RESTART_ATTEMPTS = 5  # consecutive failed restarts before the supervisor gives up
HEAD_IPC_NAME = 1  # the head's socket file in the sockets dir: the same after a restart

log = logging.getLogger("ownrun.session")

_current: LocalCluster | None = None


def current() -> LocalCluster | None:
    """The embedded cluster `engine.init()` started in this process, if any."""
    return _current


def set_current(cluster: LocalCluster | None) -> LocalCluster | None:
    """Makes `cluster` the current one (called under `engine.init`'s lock); returns the previous."""
    global _current
    previous, _current = _current, cluster
    return previous


class LocalCluster:
    """A head and `num_nodes` node daemons on this machine, owned by this driver."""

    # Logged by the processes of the clusters this process stopped (tests check them).
    handler_errors_seen = 0
    malformed_seen = 0  # log lines about dropped malformed messages
    unauthorized_seen = 0  # log lines about notices refused for want of their proof (rpc/notices.py)

    def __init__(self, num_cpus: float, resources: dict, object_store_memory: int, config: dict,
                 num_nodes: int = 1):
        self.num_cpus = num_cpus
        self.resources = resources
        self.object_store_memory = object_store_memory
        self.config = config
        self.num_nodes = num_nodes
        self.session_dir: str | None = None  # created by start()
        # Where every process of the cluster binds: "ipc://<session>/sockets" (private unix
        # sockets, no key needed) or, when that path is too long for a unix socket,
        # "127.0.0.1" with the cluster key `curve` (created in the session dir).
        self.bind: str = "127.0.0.1"
        self.curve: CurveKeys | None = None
        self.head_address: str | None = None
        self.node_addresses: list[str] = []
        self.node_ids: list[str] = []
        self.procs: list[subprocess.Popen] = []  # procs[0] is the head (replaced on restart)
        self.node_procs: dict[str, subprocess.Popen] = {}
        self._nodes_spawning = 0
        self.head_port: int | None = None
        self._head_lock = threading.RLock()
        self._stopping = threading.Event()
        self._head_supervisor: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        processes.cleanup_stale_sessions()
        self.session_dir = paths.new_session_dir()
        sockets = paths.socket_dir(self.session_dir)
        if len(sockets) <= addresses.IPC_PATH_MAX:
            os.mkdir(sockets, paths.PRIVATE_DIR)
            self.bind, self.head_port = addresses.IPC + sockets, HEAD_IPC_NAME
        else:
            self.curve = CurveKeys.generate(paths.key_file(self.session_dir))
        head = self._spawn_head([] if self.head_port is None else ["--port", str(self.head_port)])
        self.procs.append(head)
        try:
            pending = []
            if self.head_port is not None:  # its unix socket's path is known before it binds:
                self.head_address = addresses.ipc_endpoint(self.bind, self.head_port)
                pending = self._spawn_nodes()  # the nodes start meanwhile (their beats wait for it)
            address = processes.wait_ready(head, "the head", self._head_log(), timeout)
            if self.head_port is None:
                self.head_address, self.head_port = address, addresses.parse(address)[1]
                pending = self._spawn_nodes()
            elif address != self.head_address:
                raise ClusterError(f"the head bound {address}, not {self.head_address}")
            self._write_session()
            for proc, node_id, log_path in pending:
                self._node_ready(proc, node_id, log_path, timeout)
            self._wait_nodes_known(timeout)
        except BaseException:
            for proc, _node_id, _log in pending:  # started with the head, told nothing yet: stop them
                if proc.poll() is None:
                    proc.terminate()
            self.stop(None)
            raise
        self._head_supervisor = threading.Thread(target=self._supervise_head, name="ownrun-head-supervisor",
                                                 daemon=True)
        self._head_supervisor.start()

    def connect_driver(self, config: dict):
        """This process's CoreWorker, a driver registered with the first node, bound as the
        cluster's processes are (private unix sockets, or tcp with the key)."""
        return join.connect(self.node_addresses[0], self.bind, self.curve, config)

    # ---- nodes ---------------------------------------------------------------------------
    def _spawn_nodes(self) -> list[tuple]:
        return [self._spawn_node(self.num_cpus, self.resources) for _ in range(self.num_nodes)]

    def _wait_nodes_known(self, timeout: float) -> None:
        """Returns once the head lists every node as alive (a node started with the head may
        beat a little after it is ready, and callers ask the head for nodes at once)."""
        deadline = time.monotonic() + timeout
        with oneshot.OneShotClient(self.head_address, self.curve) as client:
            while True:
                view = join.call(client, P.NODE_LIST, timeout)
                alive = {node_id for node_id, node in view.items() if node["alive"]}
                if alive.issuperset(self.node_ids):
                    return
                if time.monotonic() > deadline:
                    raise ClusterError(f"the head did not hear from nodes {sorted(set(self.node_ids) - alive)} "
                                       f"within {timeout:.0f}s; see {self._head_log()}")
                time.sleep(0.01)

    def _spawn_node(self, num_cpus: float, resources: dict) -> tuple:
        node_id = f"node{len(self.node_ids) + self._nodes_spawning}-{uuid.uuid4().hex[:6]}"
        self._nodes_spawning += 1
        log_path = paths.node_log(self.session_dir, node_id)
        proc = processes.spawn("ownrun.engine.node.daemon", [
            "--session-dir", self.session_dir, "--node-id", node_id,
            "--head-address", self.head_address,
            "--resources", json.dumps({"CPU": float(num_cpus), **resources}),
            "--store-capacity", str(self.object_store_memory),
            "--config", json.dumps(self.config), "--parent-pid", str(os.getpid()),
            *self._identity_args()], log_path)
        self.procs.append(proc)
        return proc, node_id, log_path

    def _node_ready(self, proc, node_id: str, log_path: str, timeout: float) -> str:
        address = processes.wait_ready(proc, f"node daemon {node_id}", log_path, timeout)
        self._nodes_spawning -= 1
        self.node_addresses.append(address)
        self.node_ids.append(node_id)
        self.node_procs[node_id] = proc
        return address

    def add_node(self, num_cpus: float, resources: dict, timeout: float = 30.0) -> str:
        """Starts one more node daemon (with its own workers and store). Returns its node id."""
        proc, node_id, log_path = self._spawn_node(num_cpus, resources)
        self._write_session()
        self._node_ready(proc, node_id, log_path, timeout)
        return node_id

    def kill_node(self, node_id: str) -> None:
        """SIGKILLs a node as a machine loss would: daemon, zygote and workers die at once.

        The daemon gets no chance to clean up, so its /dev/shm arena is removed here."""
        proc = self.node_procs.get(node_id)
        if proc is None:
            raise ValueError(f"no node {node_id!r} in this cluster; nodes: {', '.join(self.node_ids)}")
        processes.kill_tree(proc.pid, wait=0)
        proc.wait()
        processes.remove_store_files(self.session_dir, node_id)

    # ---- head restarts (head supervision) ----------------------------------------------
    def _head_log(self) -> str:
        return paths.head_log(self.session_dir)

    def _spawn_head(self, extra: list[str]) -> subprocess.Popen:
        return processes.spawn("ownrun.engine.head.server", [
            "--session-dir", self.session_dir, "--parent-pid", str(os.getpid()),
            "--node-timeout", str(self.config.get("node_death_timeout", liveness.DEFAULT_DEAD_AFTER)),
            "--suspect-timeout", str(self.config.get("node_suspect_timeout", liveness.DEFAULT_SUSPECT_AFTER)),
            *self._identity_args(), *extra], self._head_log())

    def _identity_args(self) -> list[str]:
        key = ["--cluster-key", self.curve.path] if self.curve is not None else []
        return ["--host", self.bind, *key]

    def restart_head(self, timeout: float = 30.0) -> str:
        """Replaces the head (killed first if still running) by a new head process on the same
        port and session directory, which reloads its tables from head.sqlite3. Returns its
        address (unchanged). Raises `ClusterError` if it does not start or the cluster is stopping."""
        with self._head_lock:
            if self._stopping.is_set():
                raise ClusterError("the cluster is stopping: the head is not restarted")
            old = self.procs[0]
            if old.poll() is None:
                old.kill()
                old.wait()
            head = self._spawn_head(["--port", str(self.head_port)])
            self.procs[0] = head
            address = processes.wait_ready(head, "the restarted head", self._head_log(), timeout)
            if address != self.head_address:
                head.kill()
                raise ClusterError(f"the restarted head bound {address}, not {self.head_address}")
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
        state.write_session(self.session_dir, [p.pid for p in self.procs], self.head_address,
                            driver_pid=os.getpid())

    def stop(self, transport, timeout: float = 10.0) -> None:
        """Asks the daemons to stop (they kill their workers and unlink their stores), then the head."""
        with self._head_lock:
            self._stopping.set()  # no head restart starts after this
        if transport is not None:
            for address, node_id in zip(self.node_addresses, self.node_ids, strict=True):
                transport.send(address, [pack([P.SHUTDOWN_NODE, node_id])])
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
        if self.session_dir is not None:
            processes.remove_store_files(self.session_dir)
            LocalCluster.handler_errors_seen += handler_errors.count_in_logs(self.session_dir)
            LocalCluster.malformed_seen += handler_errors.count_in_logs(self.session_dir,
                                                                        handler_errors.MALFORMED_MARK)
            LocalCluster.unauthorized_seen += handler_errors.count_in_logs(self.session_dir,
                                                                           handler_errors.UNAUTHORIZED_MARK)
