"""Introspection for tests, benchmarks and `ownrun status`: counts, not control.

Owns read-only views of the driver's ownership table, its node daemon (store usage,
workers, leases) and the head (requests served). Each call is one request; none is on
the task path. Thread-safe.
"""

from __future__ import annotations

from .api import _core
from .rpc import protocol as P


def owner_stats() -> dict:
    """This process's ownership table: refs, pending tasks, leases held and requested and
    returned so far, task retries."""
    return _core().stats()


def node_stats() -> dict:
    """The local node daemon: store stats, scheduler usage, worker pids."""
    core = _core()
    return core.call(core.daemon_address, P.NODE_STATS)


def head_stats() -> dict:
    """The head: total requests served and per message type."""
    core = _core()
    return core.call(core.head_address, P.HEAD_STATS)


def worker_pids() -> list[int]:
    return [pid for pid in node_stats()["pids"] if pid]
