"""Where a session's files live: the session root, session directories and the names in them.

Owns the layout on disk and the session root's safety checks:

    <root>/                          $OWNRUN_SESSION_ROOT, else $XDG_RUNTIME_DIR/ownrun, else
                                     /tmp/ownrun-$UID; 0700, refused if someone else could write it
      current_cluster.json(.lock)    the cluster `ownrun start` started here (state.py)
      session_<stamp>_<pid>_<hex>/   one per embedded cluster or `ownrun start`
        session.json                 its processes (state.py)
        cluster.key                  the cluster key, 0600 (rpc/cluster_key.py)
        sockets/                     an embedded cluster's unix sockets (ipc:// addresses)
        head.sqlite3                 the head's tables (head/tables.py)
        logs/head.log, logs/node-<node id>.log, logs/worker-*.log
        spill/<node id>/             objects spilled from a node's store
    /dev/shm/ownrun-<session dir name>-<node id>   a node's shared-memory arena (the daemon
                                                   names it so: node/daemon.py)

Every directory is created 0700 and every file 0600 (the daemons run with umask 077), so
another user of the machine can neither read the cluster key, the logs or the head's
tables nor plant a state file. The root is read from the environment on every call (tests
and `ownrun` commands point it elsewhere) and checked on every call: it must be a
directory of this user that group and others cannot write. Path arithmetic plus `mkdir`;
thread-safe. Failures: `ClusterError` (one line: the path, what is wrong, what to do) for a
root that fails the checks or cannot be created; `OSError` from creating a session directory.
"""

from __future__ import annotations

import glob
import os
import stat
import time
import uuid

from ..errors import ClusterError
from ..rpc.cluster_key import KEY_FILE_NAME

ROOT_ENV = "OWNRUN_SESSION_ROOT"
PRIVATE_DIR = 0o700  # the root, session and log directories
PRIVATE_FILE = 0o600  # every file in them (processes.py starts daemons with umask 077)
SHM_DIR = "/dev/shm"
SESSION_FILE = "session.json"
STATE_FILE = "current_cluster.json"
SESSION_GLOB = "session_*"


def default_root() -> str:
    """`$XDG_RUNTIME_DIR/ownrun` when that runtime dir is ours and writable, else `/tmp/ownrun-$UID`."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _private_dir(runtime) and os.access(runtime, os.W_OK | os.X_OK):
        return os.path.join(runtime, "ownrun")
    return f"/tmp/ownrun-{os.getuid()}"


def _private_dir(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def session_root() -> str:
    """The directory holding every session of this user: $OWNRUN_SESSION_ROOT, else
    `default_root()`. Created 0700 if missing; raises `ClusterError` (one line) when it is
    not a directory, belongs to another user or is writable by group or others."""
    root = os.path.abspath(os.environ.get(ROOT_ENV) or default_root())
    try:
        if not os.path.lexists(root):
            os.makedirs(root, mode=PRIVATE_DIR, exist_ok=True)
        st = os.stat(root)
    except OSError as exc:
        raise ClusterError(f"cannot create the session root {root}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ClusterError(f"refusing the session root {root}: it is not a directory "
                           f"(remove it, or set {ROOT_ENV} to a directory of yours)")
    if st.st_uid != os.getuid():
        raise ClusterError(f"refusing the session root {root}: it is owned by uid {st.st_uid}, not by "
                           f"you (uid {os.getuid()}); remove it, or set {ROOT_ENV} to a directory of yours")
    if st.st_mode & 0o022:
        raise ClusterError(f"refusing the session root {root}: it is writable by group or others "
                           f"(mode {stat.S_IMODE(st.st_mode):04o}); run `chmod 700 {root}`, or set {ROOT_ENV}")
    return root


def new_session_dir() -> str:
    """Creates `<root>/session_<stamp>_<pid>_<hex>/logs` (both 0700) and returns the session directory."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    path = os.path.join(session_root(), f"session_{stamp}_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    os.mkdir(path, PRIVATE_DIR)
    os.mkdir(os.path.join(path, "logs"), PRIVATE_DIR)
    return path


def session_dirs() -> list[str]:
    """Every session directory under the root, oldest first (by modification time)."""
    found = glob.glob(os.path.join(session_root(), SESSION_GLOB))
    return sorted(found, key=_mtime)


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def state_file() -> str:
    return os.path.join(session_root(), STATE_FILE)


def session_file(session_dir: str) -> str:
    return os.path.join(session_dir, SESSION_FILE)


def key_file(session_dir: str) -> str:
    return os.path.join(session_dir, KEY_FILE_NAME)


def socket_dir(session_dir: str) -> str:
    """The unix sockets of an embedded cluster's processes (0700 like the session dir)."""
    return os.path.join(session_dir, "sockets")


def head_log(session_dir: str) -> str:
    return os.path.join(session_dir, "logs", "head.log")


def node_log(session_dir: str, node_id: str) -> str:
    return os.path.join(session_dir, "logs", f"node-{node_id}.log")


def spill_dir(session_dir: str, node_id: str | None = None) -> str:
    """The session's spill directory, or one node's inside it."""
    spill = os.path.join(session_dir, "spill")
    return os.path.join(spill, node_id) if node_id else spill


def shm_glob(session_dir: str, node_id: str = "*") -> str:
    """The /dev/shm arena file(s) of one node (or, with "*", of every node) of a session."""
    return os.path.join(SHM_DIR, f"ownrun-{os.path.basename(session_dir)}-{node_id}")
