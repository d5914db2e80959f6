"""The messages a core worker handles, and what each does: mostly an event of the task manager.

Owns the table from message type to handler (`for_core_worker`). A handler unpacks the checked
header (rpc/schema.py already dropped malformed ones) and feeds the pure task manager or the
process's actors; the I/O loop applies the instructions after each message. Death notices are
`deaths.py`'s; a worker adds its executor's (PUSH_TASK, CANCEL_TASK, ...) with `add_handler`.
NODE_DIED and ACTOR_STATE are taken only with this process's notice token (from its daemon or
the head: rpc/notices.py); one without it is dropped and counted (`unauthorized`).

Called on the I/O thread with the core worker's lock held. A handler that raises is logged and
counted by the loop, which goes on.
"""

from __future__ import annotations

import functools
import time

from ..node.scheduler import RECALL_HOLDS_S
from ..rpc import protocol as P
from ..rpc.transport import pack
from . import deaths


def _proven(core, at: int, handler):
    """`handler`, run only for a notice whose field `at` is this process's notice token."""
    def checked(h, frames):
        if core.inbox.proven(h, at, core.notice_token, "a notice without this process's token"):
            return handler(h, frames)
        type(core).unauthorized_in_process += 1
        return None
    return checked


def for_core_worker(core) -> dict:
    tm = core.tm

    def task_reply(h, frames):
        _, worker_addr, task_id, returns, borrowed, worker_id, runtime = h
        tm.task_reply(worker_addr, task_id, returns, borrowed, worker_id, runtime, frames, time.monotonic())

    def lease_granted(h, frames):
        _, request_id, worker_id, address_or_error, node_id, daemon, spill_to = h
        tm.lease_granted(request_id, worker_id, address_or_error, node_id, daemon, spill_to, time.monotonic())

    def recall_leases(h, frames):
        """Others wait for workers: give back idle leases now, and busy ones once idle."""
        tm.submitter.recall(time.monotonic(), RECALL_HOLDS_S)  # the daemon asks again meanwhile

    def actor_state(h, frames):
        _, actor_id, view = h[:3]
        actor = core.actors.get(actor_id)
        if actor is not None:
            actor.on_head_update(core, view)

    def state_query(h, frames):
        """The state API asks what we own (engine/state/snapshot.py)."""
        from ..state.snapshot import snapshot

        _, req_id, addr, what = h
        core.transport.send(addr, [pack([P.REPLY, req_id, True, snapshot(core, what)])])

    def log_lines(h, frames):
        """Worker output: queued for the printer thread (stderr may block; we must not)."""
        _, prefix, text = h
        core.log_printer.add("".join(f"({prefix}) {line}\n" for line in text.splitlines()))

    return {
        P.REPLY: core.requests.on_reply,
        P.TASK_REPLY: task_reply,
        P.GENERATOR_ITEM: lambda h, frames: tm.generator_item(h[1], h[2], h[3], h[4], frames),
        P.GET_VALUE: lambda h, frames: tm.get_value(h[1], h[2]),  # [_, requester, oid]
        P.VALUE_REPLY: lambda h, frames: tm.value_reply(h[1], h[2], frames, h[3]),  # [_, oid, meta, sender]
        P.VALUE_PENDING: lambda h, frames: tm.value_pending(h[1]),
        P.OBJ_COPIED: lambda h, frames: tm.copy_made(h[1], h[2], h[3]),  # [_, oid, daemon, node_id]
        P.REF_REMOVED: lambda h, frames: tm.ref_removed(h[1], h[2]),  # [_, borrower, items]
        P.LEASE_GRANTED: lease_granted,
        P.RECALL_LEASES: recall_leases,
        P.WORKER_DIED: functools.partial(deaths.on_worker_died, core),
        P.NODE_DIED: _proven(core, P.NODE_DIED_PROOF, functools.partial(deaths.on_node_died, core)),
        P.ACTOR_STATE: _proven(core, P.ACTOR_STATE_PROOF, actor_state),
        P.STATE_QUERY: state_query,
        P.LOG_LINES: log_lines,
        # a borrower cancels a task we own (`engine.cancel` of a ref it was handed)
        P.CANCEL_REQUEST: lambda h, frames: core.cancel_tasks([h[1]], h[2], h[3]),
    }
