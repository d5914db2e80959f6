"""What this machine knows about the cluster it started: the state file, and finding a cluster.

Owns `<SESSION_ROOT>/current_cluster.json` (default /tmp/ownrun/current_cluster.json),
written by `ownrun start` and removed by `ownrun stop`:

    {"head_address": "tcp://HOST:PORT", "head_pid": 123 | null (head on another machine),
     "session_dir": "/tmp/ownrun/session_...", "cluster_key": "/path/cluster.key" | null,
     "nodes": {"node0-1a2b3c": {"pid": 124, "address": "tcp://...", "session_dir": "..."}}}

Only processes started from this machine are listed (their pids are what `stop` and
`kill-node` signal). One cluster per machine (per SESSION_ROOT) at a time. Read-modify-write
goes through `locked()` (an flock on a lock file beside it), so concurrent `ownrun start`
commands do not lose each other's nodes. Also `resolve()`: a user's address ("HOST:PORT",
"tcp://HOST:PORT" or "auto") and key option -> where the head is and which key to use.

Thread- and process-safe through the lock. Failures: `ClusterError` (an EngineError with
a one-line message for users) when there is no cluster or an argument is malformed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass

from . import errors
from .rpc import addresses
from .rpc.cluster_key import KEY_ENV, CurveKeys
from .session import SESSION_ROOT

STATE_FILE = os.path.join(SESSION_ROOT, "current_cluster.json")


class ClusterError(errors.EngineError):
    """A cluster command cannot proceed; the message says why and what to do."""


@contextlib.contextmanager
def locked():
    """Holds the state lock; yields the state (a dict, empty when none) to read or change.
    Call `save(state)` or `remove()` inside the block to persist."""
    os.makedirs(SESSION_ROOT, exist_ok=True)
    with open(STATE_FILE + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield read()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read() -> dict:
    try:
        with open(STATE_FILE) as f:
            state = json.load(f)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def save(state: dict) -> None:
    tmp = f"{STATE_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, STATE_FILE)


def remove() -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(STATE_FILE)


@dataclass(frozen=True)
class Target:
    """A cluster to talk to: its head's tcp:// address and the key its members use."""

    head_address: str
    curve: CurveKeys | None

    @property
    def plain(self) -> str:
        return addresses.plain(self.head_address)


def resolve(address: str | None, cluster_key: str | None = None) -> Target:
    """The cluster at `address` ("HOST:PORT"; None or "auto": the one started from this
    machine), with the key from `cluster_key`, else $OWNRUN_CLUSTER_KEY, else the state
    file's key when the state file describes that same head."""
    state = read()
    if address in (None, "", "auto"):
        if not state.get("head_address"):
            raise ClusterError("no ownrun cluster started from this machine is running "
                               "(start one with `ownrun start --head`, or pass its address)")
        head = state["head_address"]
    else:
        try:
            head = addresses.tcp(*addresses.parse(address))
        except ValueError as exc:
            raise ClusterError(str(exc)) from None
    key_path = cluster_key or os.environ.get(KEY_ENV) or None
    if key_path is None and state.get("head_address") == head:
        key_path = state.get("cluster_key")
    try:
        curve = CurveKeys.load(os.path.expanduser(key_path)) if key_path else None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot read the cluster key {key_path}: {exc}") from None
    return Target(head, curve)
