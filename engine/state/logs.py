"""The session's log files, for `ownrun logs`: which file belongs to a node, a worker, an
actor or a task, and reading its tail (or following it).

Owns the mapping from a selector to a file in `<session>/logs/` (paths.py's layout:
head.log, node-<node id>.log, worker-<first 12 hex digits of the worker id>.log). An actor
or a task is mapped to its worker by the caller (through the state API, from their owners).
The session is the one `ownrun start` recorded on this machine, else the newest one.

Reads files only; thread-safe. Failures: `ClusterError` (one line) when no session or no
matching file exists, or a worker id prefix matches several files.
"""

from __future__ import annotations

import collections
import glob
import os
import time

from ..cluster import paths, state
from ..errors import ClusterError

WORKER_ID_CHARS = 12  # worker_main.py names its log by this many hex digits of its id


def session_dir() -> str:
    current = state.read().get("session_dir")
    if current and os.path.isdir(current):
        return current
    found = paths.session_dirs()
    if not found:
        raise ClusterError(f"no ownrun session under {paths.session_root()} (start one with `ownrun start --head`)")
    return found[-1]


def files(session: str) -> list[dict]:
    """Every log file of the session: {"name", "path", "bytes", "modified"} by name."""
    out = []
    for path in sorted(glob.glob(os.path.join(session, "logs", "*.log"))):
        info = os.stat(path)
        out.append({"name": os.path.basename(path), "path": path, "bytes": info.st_size, "modified": info.st_mtime})
    return out


def pick(session: str, node: str | None = None, worker: str | None = None, head: bool = False) -> str:
    """The log file of the head, a node (its daemon) or a worker (a worker id or a prefix)."""
    logs = os.path.join(session, "logs")
    if head:
        path = os.path.join(logs, "head.log")
    elif node is not None:
        path = os.path.join(logs, f"node-{node}.log")
    elif worker is not None:
        prefix = worker.lower()[:WORKER_ID_CHARS]
        found = sorted(glob.glob(os.path.join(logs, f"worker-{glob.escape(prefix)}*.log")))
        if len(found) > 1:
            names = ", ".join(os.path.basename(f) for f in found[:5])
            raise ClusterError(f"worker id {worker!r} matches {len(found)} log files ({names}); give more digits")
        path = found[0] if found else os.path.join(logs, f"worker-{prefix}.log")
    else:
        raise ValueError("give a node, a worker or head")
    if not os.path.isfile(path):
        raise ClusterError(f"no log file {path} (see `ownrun logs` for the session's files)")
    return path


def tail(path: str, lines: int) -> list[str]:
    """The last `lines` lines of the file."""
    with open(path, errors="replace") as f:
        return list(collections.deque(f, maxlen=max(0, lines)))


def follow(path: str, emit, period: float = 0.5, stop=lambda: False) -> None:
    """Calls `emit(text)` with what is appended to the file from now on, until `stop()`."""
    with open(path, errors="replace") as f:
        f.seek(0, os.SEEK_END)
        while not stop():
            text = f.read()
            if text:
                emit(text)
            else:
                time.sleep(period)
