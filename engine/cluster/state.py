"""The state files: which processes a session has, and which cluster `ownrun start` started here.

Owns two JSON files (their places: paths.py):

* `<session dir>/session.json`, written by whoever starts the session's processes:
  `{"pids": [head, node, ...], "head_address": "tcp://...", "driver_pid": 123}` for an
  embedded cluster, `{"pids": [...], "head_address": ..., "detached": true}` for
  `ownrun start`. The clean-up of stale sessions (processes.py) leaves a session alone
  while one of these pids lives.
* `<root>/current_cluster.json`, written by `ownrun start` and removed by `ownrun stop`:

    {"head_address": "tcp://HOST:PORT", "head_pid": 123 | null (head on another machine),
     "session_dir": "<root>/session_...", "cluster_key": "/path/cluster.key" | null,
     "nodes": {"node0-1a2b3c": {"pid": 124, "address": "tcp://...", "session_dir": "..."}}}

  Only processes started from this machine are listed (their pids are what `stop` and
  `kill-node` signal). One cluster per machine (per session root) at a time.
  Read-modify-write goes through `locked()` (an flock on a lock file beside it), so
  concurrent `ownrun start` commands do not lose each other's nodes.

Thread- and process-safe through the lock (current_cluster.json) or by having one writer
(session.json). Failures: a missing or malformed file reads as `{}`; writing raises `OSError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading

from . import paths


# ---- current_cluster.json -------------------------------------------------------------------------
@contextlib.contextmanager
def locked():
    """Holds the state lock; yields the state (a dict, empty when none) to read or change.
    Call `save(state)` or `remove()` inside the block to persist."""
    fd = os.open(paths.state_file() + ".lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, paths.PRIVATE_FILE)
    with os.fdopen(fd, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield read()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read() -> dict:
    return _read_json(paths.state_file())


def save(state: dict) -> None:
    _write_json(paths.state_file(), state, indent=1)


def remove() -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths.state_file())


# ---- session.json ---------------------------------------------------------------------------------
def read_session(session_dir: str) -> dict:
    return _read_json(paths.session_file(session_dir))


def write_session(session_dir: str, pids: list[int], head_address: str | None, **extra) -> None:
    _write_json(paths.session_file(session_dir), {"pids": pids, "head_address": head_address, **extra})


# ---- files ----------------------------------------------------------------------------------------
def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            value = json.load(f)
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json(path: str, value: dict, indent: int | None = None) -> None:
    """Replaces `path` atomically (a reader sees the old or the new file, never half of one),
    with a file only this user can read."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, paths.PRIVATE_FILE)
    with os.fdopen(fd, "w") as f:
        json.dump(value, f, indent=indent)
    os.replace(tmp, path)
