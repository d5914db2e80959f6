"""The embedded cluster: start and stop a head and node daemons for `engine.init()`.

Owns the session directory (`/tmp/ownrun/session_*`: logs, spill files, session.json),
launching the head and node daemon processes and waiting for them to report ready,
stopping them so no process and no /dev/shm file is left behind, and removing what a
crashed earlier session left (its processes are gone but files remain).

The daemons watch the driver's pid, so a driver killed with SIGKILL still leaves nothing
behind. Failures: `RuntimeError` naming the process that did not start, with its log.
Not thread-safe (called from `init`/`shutdown`).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time
import uuid

from .rpc import protocol as P
from .rpc.transport import pack
from .util import process_tools

SESSION_ROOT = os.environ.get("OWNRUN_SESSION_ROOT", "/tmp/ownrun")
KEEP_OLD_SESSIONS = 5


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

    def start(self, timeout: float = 30.0) -> None:
        cleanup_stale_sessions()
        os.makedirs(os.path.join(self.session_dir, "logs"), exist_ok=True)
        parent = str(os.getpid())
        head_log = os.path.join(self.session_dir, "logs", "head.log")
        head = process_tools.spawn("ownrun.engine.head.server",
                                   ["--session-dir", self.session_dir, "--parent-pid", parent], head_log)
        self.procs.append(head)
        try:
            self.head_address = process_tools.wait_ready(head, "the head", head_log, timeout)
            pending = []
            for index in range(self.num_nodes):
                node_id = f"node{index}-{uuid.uuid4().hex[:6]}"
                log = os.path.join(self.session_dir, "logs", f"node-{node_id}.log")
                resources = {"CPU": float(self.num_cpus), **self.resources}
                proc = process_tools.spawn("ownrun.engine.node.daemon", [
                    "--session-dir", self.session_dir, "--node-id", node_id,
                    "--head-address", self.head_address, "--resources", json.dumps(resources),
                    "--store-capacity", str(self.object_store_memory),
                    "--config", json.dumps(self.config), "--parent-pid", parent], log)
                self.procs.append(proc)
                pending.append((proc, node_id, log))
            self._write_session()
            for proc, node_id, log in pending:
                self.node_addresses.append(process_tools.wait_ready(proc, f"node daemon {node_id}", log, timeout))
                self.node_ids.append(node_id)
        except BaseException:
            self.stop(None)
            raise

    def _write_session(self) -> None:
        with open(os.path.join(self.session_dir, "session.json"), "w") as f:
            json.dump({"pids": [p.pid for p in self.procs], "driver_pid": os.getpid(),
                       "head_address": self.head_address}, f)

    def stop(self, transport, timeout: float = 10.0) -> None:
        """Asks the daemons to stop (they kill their workers and unlink their stores), then the head."""
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
        for shm in glob.glob(f"/dev/shm/ownrun-{os.path.basename(self.session_dir)}-*"):
            try:
                os.unlink(shm)
            except OSError:
                pass
        shutil.rmtree(os.path.join(self.session_dir, "spill"), ignore_errors=True)
