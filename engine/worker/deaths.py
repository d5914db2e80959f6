"""How a core worker takes the deaths it hears of: its own node's daemon, other workers, nodes.

Owns the shell's side of failure notices (the task manager decides what they mean for tasks
and objects; this module applies it to the process):
* the driver's own daemon: watched through its pidfd (`watch_daemon`); when it exits — or a
  NODE_DIED names it and there is no pidfd to ask — every pending request, task and `get`
  fails with `LocalNodeDiedError` (`fail_waiters`), and so does every later call;
* WORKER_DIED: the task manager retries or fails what ran there and releases what the dead
  process borrowed; actors on that worker restart or die; its connection is dropped;
* NODE_DIED: the same for every process of the node; a *worker* of a node the head declared
  dead (a paused node, fenced) exits at once, so no owner logic runs on in a split brain.

Functions of the core worker, called from its I/O thread with its lock held (`fail_waiters`
also at shutdown). Never raise for a death already taken.
"""

from __future__ import annotations

import logging
import os

from .. import errors
from ..ownership.memory_store import error_of

log = logging.getLogger("ownrun.worker")


def watch_daemon(core) -> None:
    """I/O thread: watch our daemon's pid (a pidfd is readable once it exits)."""
    from ..util import process_tools

    fd = process_tools.pidfd(core._daemon_pid)
    core._daemon_pidfd = -1 if fd is None else fd
    if fd is None:
        with core.lock:
            local_node_died(core, f"its node daemon (pid {core._daemon_pid}) is gone")
    else:
        core.transport.watch_fd(fd, "local-daemon")


def local_node_died(core, reason: str) -> None:
    """Our daemon died: every waiter fails (`fail_waiters`), requests to the daemon fail at
    once from now on. Lock held."""
    if core._daemon_pidfd is not None and core._daemon_pidfd >= 0:
        core.transport.unwatch_fd(core._daemon_pidfd)  # readable for good: poll it no more
    if core.failed_with is not None:
        return  # shutting down already (the embedded cluster's stop kills our daemon)
    message = (f"the node daemon of this process's node {core.node_id} died ({reason}): "
               f"this driver is cut off from the cluster")
    log.error(message)
    core.requests.peer_died(core.daemon_address, ["LocalNodeDiedError", message])
    fail_waiters(core, errors.LocalNodeDiedError(message))


def fail_waiters(core, exc: errors.EngineError) -> None:
    """Ends every wait with `exc`: pending requests, tasks and objects without a value (so a
    `get` blocked in any thread raises it); later `submit_task`/`put`/`get`/`wait` raise it
    at once (`core.check_local_node`). Lock held."""
    if core.failed_with is not None:
        return
    core.failed_with = exc
    core.requests.fail_pending([type(exc).__name__, str(exc)])
    value = error_of(exc)
    for entry in list(core.tm.tasks.values()):
        core.tm.fail(entry, value)
    for oid, ref in list(core.tm.refs.refs.items()):
        if ref.value is None:
            core.tm.store(oid, value, None, None)
    core._node_death.set()
    core.apply()


def on_worker_died(core, h, frames) -> None:
    _, worker_id, address, reason = h
    core._fn_sent.pop(address, None)
    core.transport.disconnect(address)
    core.tm.worker_died(worker_id, address, reason)
    for actor in list(core.actors.values()):
        if actor.worker_id == worker_id:
            actor.worker_died(core, reason)


def on_node_died(core, h, frames) -> None:
    _, node_id, daemon, client_addrs, reason = h[:5]
    if daemon == core.daemon_address and core.mode == "driver":
        if core._daemon_pid is not None:
            return  # our daemon's pidfd is the authority: the head may be wrong (a stall)
        local_node_died(core, f"node {node_id} died: {reason}")
    elif daemon == core.daemon_address:  # a worker of a node declared dead (e.g. paused) goes
        log.error("this worker's node %s was declared dead (%s): exiting, as its owners consider "
                  "it gone", node_id, reason)  # with it: no owner logic runs on in a split brain
        os._exit(1)
    if not core.tm.node_died(node_id, daemon, client_addrs, reason):
        return
    core._node_death.set()
    core.transport.disconnect(daemon)
    for addr in client_addrs:
        core._fn_sent.pop(addr, None)
    why = f"node {node_id} died ({reason})"
    for actor in list(core.actors.values()):
        if actor.daemon == daemon or actor.address in client_addrs:
            actor.worker_died(core, why)
