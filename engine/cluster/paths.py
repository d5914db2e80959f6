"""Where a session's files live: the session root, session directories and the names in them.

Owns the layout on disk, and nothing else:

    <root>/                          $OWNRUN_SESSION_ROOT, default /tmp/ownrun
      current_cluster.json(.lock)    the cluster `ownrun start` started here (state.py)
      session_<stamp>_<pid>_<hex>/   one per embedded cluster or `ownrun start`
        session.json                 its processes (state.py)
        cluster.key                  the cluster key, 0600 (rpc/cluster_key.py)
        head.sqlite3                 the head's tables (head/tables.py)
        logs/head.log, logs/node-<node id>.log, logs/worker-*.log
        spill/<node id>/             objects spilled from a node's store
    /dev/shm/ownrun-<session dir name>-<node id>   a node's shared-memory arena (the daemon
                                                   names it so: node/daemon.py)

The root is read from the environment on every call (tests and `ownrun` commands point
it elsewhere). Pure path arithmetic plus `makedirs`; thread-safe. Failures: `OSError` from
creating a directory.
"""

from __future__ import annotations

import os
import time
import uuid

from ..rpc.cluster_key import KEY_FILE_NAME

ROOT_ENV = "OWNRUN_SESSION_ROOT"
DEFAULT_ROOT = "/tmp/ownrun"
SHM_DIR = "/dev/shm"
SESSION_FILE = "session.json"
STATE_FILE = "current_cluster.json"
SESSION_GLOB = "session_*"


def session_root() -> str:
    """The directory holding every session of this user (not created here)."""
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


def new_session_dir() -> str:
    """Creates `<root>/session_<stamp>_<pid>_<hex>/logs` and returns the session directory."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    path = os.path.join(session_root(), f"session_{stamp}_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    os.makedirs(os.path.join(path, "logs"), exist_ok=True)
    return path


def session_dirs() -> list[str]:
    """Every session directory under the root, oldest first (by modification time)."""
    import glob

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
