"""Starting ownrun's daemons and cleaning up after them.

Owns the launcher's side of a daemon's life: spawning `python -m <module>` attached to
this process (an embedded cluster: the daemon watches our pid) or detached in its own
session (`ownrun start`: it outlives the command), reading its `READY <address>` line
(the child's side is util/process_tools.announce_ready), SIGKILLing a process tree in
one instant (`kill_tree`, as a machine loss), telling our processes from recycled pids
(`is_ours`), and removing a session's /dev/shm arenas and spill files (`remove_store_files`,
the one sweep), including those of earlier sessions whose processes are all gone
(`cleanup_stale_sessions`). Also the default store sizes: 30% of RAM split among the nodes
started together (`default_object_store_memory`), and for one more node on a machine where
this user's ownrun nodes already run, what is left of that 30% once their stores are counted
(`default_store_of_one_more_node`).

Thread-safe (no shared state). Failures: `NodeStartError` (an EngineError) naming the
process and quoting the end of its log when it exits, stays silent past its deadline or
prints something else than its address; the clean-up functions never raise for a file or
process that is already gone.
"""

from __future__ import annotations

import glob
import os
import select
import shutil
import subprocess
import sys
import time

from ..errors import NodeStartError
from ..util import malloc_tuning, process_tools
from . import paths, state

KEEP_OLD_SESSIONS = 5
DAEMON_UMASK = 0o077  # the daemons' files (logs, spill, head.sqlite3 and its -wal/-shm, stores): 0600


def spawn(module: str, args: list[str], log_path: str, *, detached: bool = False) -> subprocess.Popen:
    """Starts `python -m module args` with umask 077, stderr to `log_path` (0600), a pipe on
    stdout for the READY line. `detached`: in its own session with stdin from /dev/null
    (survives this process)."""
    os.makedirs(os.path.dirname(log_path), mode=paths.PRIVATE_DIR, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, paths.PRIVATE_FILE)
    try:
        return subprocess.Popen(
            [sys.executable, *process_tools.interpreter_flags(), "-m", module, *args],
            stdin=subprocess.DEVNULL if detached else subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=fd, close_fds=True, start_new_session=detached, umask=DAEMON_UMASK,
            env=malloc_tuning.child_env(),
        )
    finally:
        os.close(fd)


def wait_ready(proc: subprocess.Popen, name: str, log_path: str, timeout: float) -> str:
    """Reads the child's `READY <address>` line. Returns the address; raises `NodeStartError`
    (the child killed if it is still running) when it does not come within `timeout` s."""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            proc.wait()
            raise NodeStartError(name, f"no READY line within {timeout:.0f}s", log_path, _tail(log_path))
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                proc.wait()
                raise NodeStartError(name, f"exited with code {proc.returncode} during start-up", log_path,
                                     _tail(log_path))
            buf += chunk
    line = buf.split(b"\n", 1)[0].decode(errors="replace")
    if not line.startswith("READY "):
        proc.kill()
        proc.wait()
        raise NodeStartError(name, f"printed {line!r} instead of its address", log_path, _tail(log_path))
    proc.stdout.close()
    return line[6:].strip()


def start(module: str, args: list[str], log_path: str, name: str, timeout: float, *,
          detached: bool = False) -> tuple[subprocess.Popen, str]:
    """`spawn`, then `wait_ready`. Returns (process, address)."""
    proc = spawn(module, args, log_path, detached=detached)
    return proc, wait_ready(proc, name, log_path, timeout)


def _tail(path: str, lines: int = 5) -> list[str]:
    try:
        with open(path, "rb") as f:
            return f.read()[-2000:].decode(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return []


def kill_tree(pid: int, wait: float = 5.0) -> None:
    """SIGKILLs `pid` and (with psutil) its descendants in the same instant, as a machine
    loss would; without psutil the zygote and workers follow by PR_SET_PDEATHSIG. Waits up
    to `wait` s for `pid` to exit (a child of ours must still be reaped by its Popen)."""
    try:
        import psutil

        victims = psutil.Process(pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - psutil missing, or the process already gone
        victims = []
    process_tools.kill_pid(pid)
    for child in victims:
        process_tools.kill_pid(child.pid)
    process_tools.wait_pid_exit(pid, wait)


def is_ours(pid: int | None, marker: str) -> bool:
    """True if `pid` is alive and is an ownrun daemon whose command line names `marker`
    (guards against signalling a recycled pid)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except OSError:
        return False
    return "ownrun.engine." in cmdline and marker in cmdline


def remove_store_files(session_dir: str, node_id: str | None = None) -> list[str]:
    """Unlinks the /dev/shm arenas and removes the spill files of one node of a session (or,
    with None, of all its nodes). For processes that are gone: a live daemon does this
    itself on exit. Returns the arena files removed."""
    removed = []
    for shm in glob.glob(paths.shm_glob(session_dir, node_id or "*")):
        try:
            os.unlink(shm)
            removed.append(shm)
        except OSError:
            pass
    shutil.rmtree(paths.spill_dir(session_dir, node_id), ignore_errors=True)
    return removed


def cleanup_stale_sessions() -> list[str]:
    """Removes the store files of sessions whose processes are all dead, and all but the
    newest `KEEP_OLD_SESSIONS` such session directories. Returns the arena files removed."""
    removed = []
    for path in paths.session_dirs():
        if not _session_alive(path, with_driver=True):
            removed += remove_store_files(path)
    for old in paths.session_dirs()[:-KEEP_OLD_SESSIONS]:
        if not _session_alive(old, with_driver=False):
            shutil.rmtree(old, ignore_errors=True)
    return removed


STARTING_GRACE_S = 120.0  # a session without its process list yet is starting, not stale


def _session_alive(session_dir: str, with_driver: bool) -> bool:
    """Any of the session's processes is alive — or it is still starting: its process list is
    not written yet and it is younger than `STARTING_GRACE_S` (another process's clean-up must
    not delete a session being created: that head failed at start with an empty log)."""
    info = state.read_session(session_dir)
    if not info:
        try:
            return time.time() - os.path.getmtime(session_dir) < STARTING_GRACE_S
        except OSError:
            return False
    pids = list(info.get("pids", []))
    if with_driver and info.get("driver_pid"):
        pids.append(info["driver_pid"])
    return bool(info) and any(process_tools.pid_alive(pid) for pid in pids)


MIN_DEFAULT_STORE = 512 << 20  # the default store of one more node never goes below this


def claimed_store_memory() -> int:
    """Bytes the stores of this user's live ownrun nodes on this machine claim: the sizes of
    the /dev/shm arenas of the live sessions under the session root (a store's arena is
    sized to its capacity when its daemon starts)."""
    claimed = 0
    for session_dir in paths.session_dirs():
        if not _session_alive(session_dir, with_driver=True):
            continue
        for arena in glob.glob(paths.shm_glob(session_dir)):
            try:
                st = os.stat(arena)
            except OSError:
                continue  # its node stopped meanwhile
            if st.st_uid == os.getuid():
                claimed += st.st_size
    return claimed


def default_store_of_one_more_node() -> tuple[int, str | None]:
    """The default store of a node started next to this user's running ownrun nodes: the
    30% default less what their stores claim, at least `MIN_DEFAULT_STORE` (or the whole
    default when that is smaller). Returns (bytes, None) when no other node runs here, else
    (bytes, one line saying so for the log)."""
    default = default_object_store_memory()
    claimed = claimed_store_memory()
    if not claimed:
        return default, None
    floor = min(default, MIN_DEFAULT_STORE)
    size = max(default - claimed, floor)
    at_floor = " (the floor)" if size == floor and default - claimed < floor else ""
    return size, (f"other ownrun nodes on this machine already claim {claimed >> 20} MiB of the default "
                  f"{default >> 20} MiB (30% of RAM) for their stores: this node's store gets "
                  f"{size >> 20} MiB{at_floor}; --object-store-memory sets it")


def default_object_store_memory(nodes: int = 1) -> int:
    """The store size of each of `nodes` nodes started together on this machine: 30% of RAM
    (at most 95% of what /dev/shm has free), split among them."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    stat = os.statvfs(paths.SHM_DIR)
    free_shm = stat.f_bavail * stat.f_frsize
    return int(min(total * 0.3, free_shm * 0.95)) // max(1, nodes)
