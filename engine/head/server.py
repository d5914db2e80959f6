"""The head: cluster membership, the actor directory and a key-value store (§2, §5).

Owns the request handling for the node table, the actor table (ids, names, addresses,
states), the KV store applications use for checkpoints, and the jobs table; the tables
themselves live in `tables.HeadTables`, persisted in `<session_dir>/head.sqlite3`. A head
started on a session directory that already has that file is a restart: it resumes with
the nodes, actors, KV pairs and jobs it had, and answers lookups of actors that were alive.
Every write is committed before the reply, so an acknowledged KV put survives a SIGKILL.

Node liveness (`liveness.NodeLiveness`, pure): a node silent for `--suspect-timeout` (1 s)
is marked suspect in the cluster view (daemons place no new leases on it), one silent for
`--node-timeout` (30 s) is declared dead, and one whose connection to the head drops (the
transport's watch of each daemon's inbox: the process exited) is declared dead at once.
NODE_DIED goes to every live daemon and the dead node's clients. A dead node that beats
again is answered NODE_FENCED and stops.

Proofs (`rpc/notices.py`): every notice the head sends (NODE_DIED, NODE_FENCED, CLUSTER_VIEW,
ACTOR_STATE) ends with its receiver's notice token, as the receiver gave it (a daemon in its
heartbeats, the first one kept; its clients through NODE_CLIENTS; a subscriber in its
ACTOR_LOOKUP); a heartbeat of a known node without that node's token is refused (a member
cannot keep another's node alive or move it), and so are a node's reports of its clients
(NODE_CLIENTS, WORKER_DIED_REMOTE: a member cannot have another's actors declared dead by
claiming their owner left). An ACTOR_UPDATE is obeyed only with the key the actor's creator
registered; refusals are counted in `unauthorized` (HEAD_STATS).

It is never on the task path: owners push tasks to workers directly; the head only hears
about nodes, actors and KV operations, and counts every request it serves so tests can
prove that (HEAD_STATS; the counts restart at zero with the process).

Runs as its own process (`python -m ownrun.engine.head.server`), one thread. Lookups of
an actor that is still starting are answered when it becomes alive or dies (long poll;
waiting lookups are lost with the process, and their callers time out and retry).
`--port` binds a fixed port so a restarted head keeps its address (clients' PUSH sockets
reconnect by themselves). Failures: an unknown request type is logged; a request that
raises is answered with an error; the head exits when its parent (the embedded cluster's
driver) dies, marking that driver's job FINISHED. Every exception a handler raises that is
not a caller's mistake (TypeError/ValueError from a request's arguments) is counted in
`handler_errors` (HEAD_STATS): a test session fails if any occurred.

Connections: every reply opens a connection to the requester. Those to processes the head
keeps talking to (nodes, their drivers and workers, actor subscribers, waiting lookups) stay;
one to any other requester (a one-shot client: `ownrun status`, a daemon's start-up check)
is closed `PEER_LINGER` s after the last reply to it (`close_idle_peers`), so a thousand
status queries leave no sockets behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from ..placement_resources import held_bundles
from ..rpc import notices
from ..rpc import protocol as P
from ..rpc.cluster_key import CurveKeys
from ..rpc.schema import Inbox
from ..rpc.transport import AnyTransport, Transport, pack
from ..util import gc_tuning, process_tools
from ..util.handler_errors import log_handler_error
from . import liveness
from . import placement_groups as pgs
from .tables import HeadTables

log = logging.getLogger("ownrun.head")

PEER_LINGER = 3.0  # seconds a connection to a requester the head does not otherwise know stays open

# Requests whose header carries [kind, req_id, reply_addr, ...] (answered on failure too).
_REQUESTS = frozenset({P.REGISTER_NODE, P.ACTOR_REGISTER, P.ACTOR_LOOKUP, P.KV_PUT, P.KV_GET,
                       P.KV_DELETE, P.KV_LIST, P.HEAD_STATS, P.NODE_LIST, P.ACTOR_NAMES,
                        P.TASK_META_SUBMIT, P.PG_CREATE, P.PG_REMOVE, P.PG_TABLE})


class Head:
    """Handles head requests against `tables`. Not thread-safe: the head's one thread."""

    def __init__(self, transport: AnyTransport, tables: HeadTables,
                 suspect_after: float = liveness.DEFAULT_SUSPECT_AFTER,
                 dead_after: float = liveness.DEFAULT_DEAD_AFTER):
        self.transport = transport
        self.tables = tables
        self.node_load: dict[str, dict] = {}  # node id -> last heartbeat's available resources
        # ALIVE -> SUSPECT -> DEAD (liveness.py). Loaded nodes get a full timeout of grace
        # after a (re)start of the head; nodes it had declared dead stay dead (fenced).
        self.liveness = liveness.NodeLiveness(suspect_after, dead_after)
        now = time.monotonic()
        for node_id, node in tables.nodes.items():
            self.liveness.known(node_id, node["alive"], now)
        self.watched: set[str] = set()  # daemon addresses whose connection drop the transport reports
        self.fenced = 0  # NODE_FENCED answers sent (heartbeats of nodes declared dead)
        self.lookups_waiting: dict[bytes, list] = {}  # actor id -> [(addr, req_id)]
        self.orphans: set[bytes] = set()  # detached actors whose creator died: nobody restarts them
        self.replied_to: dict[str, float] = {}  # requester address -> last reply (oldest first)
        self.requests_served = 0
        self.requests_by_type: dict[int, int] = {}
        self.handlers = {
            P.REGISTER_NODE: self.on_register_node,
            P.ACTOR_REGISTER: self.on_actor_register,
            P.ACTOR_UPDATE: self.on_actor_update,
            P.ACTOR_LOOKUP: self.on_actor_lookup,
            P.KV_PUT: self.on_kv_put,
            P.KV_GET: self.on_kv_get,
            P.KV_DELETE: self.on_kv_delete,
            P.KV_LIST: self.on_kv_list,
            P.HEAD_STATS: self.on_stats,
            P.ACTOR_NAMES: self.on_actor_names,
            P.HEARTBEAT: self.on_heartbeat,
            P.NODE_CLIENTS: self.on_node_clients,
            P.NODE_LIST: self.on_node_list,
            P.WORKER_DIED_REMOTE: self.on_worker_died,
            P.TASK_META_SUBMIT: self.on_task_submit,
            P.TASK_META_DONE: self.on_task_done,
            P.PG_CREATE: self.on_pg_create,
            P.PG_REMOVE: self.on_pg_remove,
            P.PG_TABLE: self.on_pg_table,
        }
        self.placement_groups = pgs.PlacementGroups()  # bundles -> nodes (placement_groups.py)
        for row in tables.placement_group_rows():
            self.placement_groups.load(row)
        # The "centralized" baseline (DESIGN.md §7): a task table and argument ref counts that
        # owners write synchronously before every push, as the paper's Centralized system does.
        self.task_table: dict[bytes, bytes] = {}
        self.arg_refcounts: dict[bytes, int] = {}
        self.actor_subscribers: dict[bytes, dict] = {}  # actor id -> {address told of changes: its token}
        self.node_store: dict[str, dict] = {}  # node id -> last heartbeat's store stats
        self.handler_errors = 0  # exceptions in handlers other than a caller's bad arguments
        self.failed_requests = 0  # requests answered with an error
        self.inbox = Inbox(log, "head", self.handlers)  # drops and counts malformed messages

    def reply(self, addr: str, req_id: int, result, ok: bool = True) -> None:
        self.transport.send(addr, [pack([P.REPLY, req_id, ok, result])])
        replied = self.replied_to
        replied.pop(addr, None)  # most recent last
        replied[addr] = time.monotonic()

    def close_idle_peers(self, now: float) -> list[str]:
        """Closes the connections to requesters replied to more than `PEER_LINGER` s ago that
        the head does not keep talking to (one-shot clients). Returns their addresses."""
        replied = self.replied_to
        if not replied or next(iter(replied.values())) > now - PEER_LINGER:
            return []
        kept = {n["address"] for n in self.tables.nodes.values()}
        for node in self.tables.nodes.values():
            kept.update(node.get("clients", ()))
        for subscribers in self.actor_subscribers.values():
            kept.update(subscribers)
        for waiting in self.lookups_waiting.values():
            kept.update(addr for addr, _req_id, _not_worker in waiting)
        closed = []
        while replied:
            addr, at = next(iter(replied.items()))
            if at > now - PEER_LINGER:
                break
            del replied[addr]
            if addr not in kept:
                self.transport.disconnect(addr)
                closed.append(addr)
        return closed

    def handle(self, frames: list) -> None:
        """Handles one message; never raises (exceptions are logged and counted)."""
        try:
            self._handle(frames)
        except Exception:  # noqa: BLE001 - a bad message must not kill the head
            self.handler_errors += 1
            log_handler_error(log, "failed to handle a message")

    def _handle(self, frames: list) -> None:
        header = self.inbox.header(frames)
        if header is None:  # malformed: dropped and counted (schema.Inbox); a request is answered
            answer = self.inbox.reply_address(_REQUESTS)
            if answer is not None:
                self.reply(answer[1], answer[0], ["EngineError", f"head: malformed request: {answer[2]}"], ok=False)
            return
        kind = header[0]
        self.requests_served += 1
        self.requests_by_type[kind] = self.requests_by_type.get(kind, 0) + 1
        try:
            self.handlers[kind](header)
        except Exception as exc:
            if kind not in _REQUESTS or len(header) < 3:
                raise
            self.failed_requests += 1
            if isinstance(exc, (TypeError, ValueError)):  # the caller's mistake, answered
                log.exception("request type %s failed", kind)
            else:  # a bug
                self.handler_errors += 1
                log_handler_error(log, "request type %s failed", kind)
            self.reply(header[2], header[1], [type(exc).__name__, f"head: {exc}"], ok=False)

    def on_register_node(self, h) -> None:
        _, req_id, addr, node_id, info = h
        if self.liveness.is_dead(node_id):
            raise ValueError(f"node {node_id} was declared dead; a node rejoins under a new id")
        known = self.tables.notice_token(node_id)
        if known is not None and not notices.genuine(info.get("notice_token"), known):
            self.inbox.refuse(P.REGISTER_NODE, f"a registration of node {node_id} at {addr} without its token")
            self.reply(addr, req_id, ["EngineError", f"head: node {node_id} is registered already"], ok=False)
            return
        self.tables.register_node(node_id, addr, info)
        self.liveness.beat(node_id, time.monotonic())
        self.reply(addr, req_id, True)

    def on_heartbeat(self, h) -> None:
        """A node's beat (re-)registers it (so nodes come back after a head restart); the
        answer is the cluster view the daemons use to pick spillback targets. A node declared
        dead is answered with NODE_FENCED instead: it must stop (liveness.py)."""
        _, node_id, addr, total, available, store_stats = h[:6]
        token = P.optional(h, P.HEARTBEAT_TOKEN)
        known = self.tables.notice_token(node_id)
        if known is not None and not self.inbox.proven(h, P.HEARTBEAT_TOKEN, known, f"a heartbeat for node {node_id} at {addr} "
                                                                  f"without its token"):
            return
        steps = self.liveness.beat(node_id, time.monotonic())
        fenced = any(isinstance(step, liveness.Fence) for step in steps)
        if fenced or not self.tables.node_heartbeat(node_id, addr, total, token):  # dead stays dead
            self._fence(node_id, addr)
            return
        self.node_load[node_id] = available
        self.node_store[node_id] = store_stats
        for record in self.placement_groups.node_reported(node_id, held_bundles(total)):
            log.info("placement group %s created: bundles on %s", record.hex, record.view()["bundles_to_node_id"])
            self.tables.save_placement_group(record.row())
        self._place_groups()
        if addr not in self.watched:  # its death the OS reports is seen at once
            self.watched.add(addr)
            self.transport.watch_peer(addr, ("node-connection", node_id, addr))
        self.apply_liveness(steps)
        self.transport.send(addr, [pack([P.CLUSTER_VIEW, self.cluster_view(), self.tables.notice_token(node_id)])])

    def _fence(self, node_id: str, addr: str) -> None:
        self.fenced += 1
        reason = self.liveness.death_reason.get(node_id, "declared dead earlier")
        log.warning("node %s at %s was declared dead (%s) and spoke again: told to stop", node_id, addr, reason)
        self.transport.send(addr, [pack([P.NODE_FENCED, node_id, f"declared dead: {reason}",
                                         self.tables.notice_token(node_id)])])

    def on_connection_lost(self, node_id: str, addr: str) -> None:
        """The transport saw the connection to a daemon drop: its process is gone."""
        self.watched.discard(addr)
        node = self.tables.nodes.get(node_id)
        if node is not None and node["address"] == addr:
            self.apply_liveness(self.liveness.lost(node_id, "its daemon exited (connection closed)"))
        self.transport.disconnect(addr)

    def forgive_stall(self, now: float, stalled_for: float) -> None:
        """After the head's own stall (a loaded machine), the nodes' silence during it does
        not count: missing heartbeats were ours to read, not theirs to send."""
        self.liveness.forgive_stall(now, stalled_for)

    def check_liveness(self, now: float) -> None:
        """Suspects silent nodes, declares dead those silent for the death timeout and tells
        the others. Never raises: a failure about one node is logged and counted."""
        self.apply_liveness(self.liveness.tick(now))

    def apply_liveness(self, steps: list) -> None:
        for step in steps:
            try:
                if isinstance(step, liveness.Dead):
                    self._declare_dead(step.node_id, step.reason)
                elif isinstance(step, liveness.Suspect):
                    log.warning("node %s suspected: no heartbeat for %.1fs; no new leases go to it",
                                step.node_id, step.silent_for)
                elif isinstance(step, liveness.Cleared):
                    log.info("node %s beats again: no longer suspected", step.node_id)
            except Exception:  # noqa: BLE001 - the head must keep serving
                self.handler_errors += 1
                log_handler_error(log, "failed to declare node %r dead", step.node_id)

    def _declare_dead(self, node_id: str, reason: str) -> None:
        if not self.tables.mark_node_dead(node_id):
            return
        node = self.tables.nodes[node_id]
        log.warning("node %s at %s is dead: %s", node_id, node["address"], reason)
        notice = [P.NODE_DIED, node_id, node["address"], list(node.get("clients", ())), reason]
        for other in self.tables.nodes.values():
            if other["alive"]:
                self.transport.send(other["address"], [pack([*notice, other.get("notice_token")])])
        tokens = node.get("client_tokens") or {}
        for client in node.get("clients", ()):  # a driver whose own daemon died hears it from us
            self.transport.send(client, [pack([*notice, tokens.get(client)])])
        self._forget_subscriber(node.get("clients", ()))
        self._owners_died(node.get("clients", ()), f"its node {node_id} died")
        for record in self.placement_groups.node_died(node_id):
            log.warning("placement group %s lost bundles on dead node %s: placing them again", record.hex, node_id)
            self.tables.save_placement_group(record.row())
        self._place_groups()

    def _forget_subscriber(self, addresses) -> None:
        """Dead processes are told of actor changes no more."""
        gone = set(addresses)
        if not gone:
            return
        for actor_id, subscribers in list(self.actor_subscribers.items()):
            for addr in gone.intersection(subscribers):
                del subscribers[addr]
            if not subscribers:
                del self.actor_subscribers[actor_id]

    def on_task_submit(self, h) -> None:
        _, req_id, addr, task_id, spec, arg_ids = h
        self.task_table[task_id] = spec
        counts = self.arg_refcounts
        for oid in arg_ids:
            counts[oid] = counts.get(oid, 0) + 1
        self.reply(addr, req_id, True)

    def on_task_done(self, h) -> None:
        _, task_id, arg_ids = h
        self.task_table.pop(task_id, None)
        counts = self.arg_refcounts
        for oid in arg_ids:
            left = counts.get(oid, 0) - 1
            if left > 0:
                counts[oid] = left
            else:
                counts.pop(oid, None)

    def _publish_actor(self, record) -> None:
        subscribers = self.actor_subscribers.get(record.actor_id)
        if subscribers:
            view = record.view()
            for addr, token in subscribers.items():
                self.transport.send(addr, [pack([P.ACTOR_STATE, record.actor_id, view, token])])

    def _from_node(self, h, node_id: str, token_at: int) -> bool:
        """True when a node's report `h` carries that node's token (or the node sent none);
        else it is refused (rpc/notices.py)."""
        known = self.tables.notice_token(node_id)
        return known is None or self.inbox.proven(h, token_at, known, f"a report of node {node_id} without its token")

    def on_worker_died(self, h) -> None:
        """A worker died: an actor on it is RESTARTING until its creator restarts it or gives
        up (DEAD at once for a detached actor whose creator is gone); actors it created die."""
        _, node_id, worker_id, addr, reason = h[:5]
        if not self._from_node(h, node_id, P.WORKER_DIED_REMOTE_PROOF):
            return
        self._forget_subscriber([addr])
        for record in list(self.tables.actors.values()):
            if record.worker_id == worker_id and record.state == "ALIVE":
                if record.actor_id in self.orphans:
                    self._set_actor_state(record.actor_id, "DEAD", None,
                                          f"{reason}; its creator is gone, so it is not restarted", None)
                else:
                    self._set_actor_state(record.actor_id, "RESTARTING", None, reason, worker_id)
        self._owners_died([addr], reason)

    def on_node_list(self, h) -> None:
        _, req_id, addr = h
        view = self.cluster_view()
        for node_id, node in view.items():
            node["store"] = self.node_store.get(node_id, {})
            node["clients"] = list(self.tables.nodes[node_id].get("clients", ()))  # drivers and workers
        self.reply(addr, req_id, view)

    def on_node_clients(self, h) -> None:
        _, node_id, added, removed = h[:4]
        if not self._from_node(h, node_id, P.NODE_CLIENTS_PROOF):
            return
        self.tables.update_node_clients(node_id, added, removed, P.optional(h, P.NODE_CLIENTS_TOKENS))
        self._forget_subscriber(removed)
        self._owners_died(removed, "it left the cluster")

    def cluster_view(self) -> dict:
        removed = self.placement_groups.recently_removed()
        view = {node_id: {"address": node["address"], "total": node.get("resources", {}),
                          "available": self._available(node_id, node),
                          "alive": node["alive"], "suspect": self.liveness.is_suspect(node_id),
                          "bundles": self.placement_groups.desired(node_id)}
                for node_id, node in self.tables.nodes.items()}
        if removed:  # (each node reads its own entry's)
            for node in view.values():
                node["removed_groups"] = removed
        return view

    def _available(self, node_id: str, node: dict) -> dict:
        """The node's free resources as its last heartbeat said (its total before any beat)."""
        return self.node_load.get(node_id, node.get("resources", {}))

    # ---- placement groups (placement_groups.py decides; here: persist, tell the nodes) ---------
    def _push_view(self, node_ids) -> None:
        """Sends the cluster view now to these nodes (their bundles changed), not at their next beat."""
        view = None
        for node_id in node_ids:
            node = self.tables.nodes.get(node_id)
            if node is None or not node["alive"]:
                continue
            view = view or self.cluster_view()
            self.transport.send(node["address"], [pack([P.CLUSTER_VIEW, view, node.get("notice_token")])])

    def _place_groups(self) -> None:
        """Assigns nodes to waiting groups' bundles (if any wait) and tells those nodes."""
        groups = self.placement_groups
        if not groups.waiting():
            return
        nodes = {node_id: {"total": node.get("resources", {}), "available": self._available(node_id, node)}
                 for node_id, node in self.tables.nodes.items()
                 if node["alive"] and not self.liveness.is_suspect(node_id)}
        touched = set()
        for record in groups.place(nodes):
            self.tables.save_placement_group(record.row())
            touched |= groups.nodes_of(record)
        self._push_view(touched)

    def _group_removed(self, record, why: str) -> None:
        log.info("placement group %s removed: %s", record.hex, why)
        self.tables.delete_placement_group(record.pg_id)
        self._push_view(self.placement_groups.nodes_of(record))
        self._place_groups()  # what it held may fit a waiting group

    def on_pg_create(self, h) -> None:
        _, req_id, addr, pg_id, bundles, strategy, name, namespace, detached = h
        record = self.placement_groups.create(pg_id, bundles, strategy, name, namespace, addr, bool(detached))
        self.tables.save_placement_group(record.row())
        self.reply(addr, req_id, record.view())
        self._place_groups()

    def on_pg_remove(self, h) -> None:
        _, req_id, addr, pg_id = h
        record = self.placement_groups.remove(pg_id)
        if record is not None:
            self._group_removed(record, f"remove_placement_group() from {addr}")
        self.reply(addr, req_id, record is not None)

    def on_pg_table(self, h) -> None:
        """One group's view (by id or by name in a namespace; None if unknown), or all of them."""
        _, req_id, addr, key, namespace = h
        groups = self.placement_groups
        if key is None:
            self.reply(addr, req_id, {r.hex: r.view() for r in groups.groups.values()})
            return
        record = groups.find_named(key, namespace) if isinstance(key, str) else groups.find(key)
        self.reply(addr, req_id, record.view() if record is not None else None)

    def on_actor_register(self, h) -> None:
        """Registers an actor; a name taken by a live actor is an error, unless the creator
        asked `get_if_exists`: then the answer is that actor's view (one decision, here, for
        concurrent creators)."""
        _, req_id, addr, actor_id, name, info = h
        existing = self.tables.live_named(name, info.get("namespace") or "") if name else None
        if existing is not None and info.get("get_if_exists"):
            self._subscribe(existing.actor_id, addr, info.get("notice_token"))
            self.reply(addr, req_id, existing.view())
            return
        error = self.tables.register_actor(actor_id, name, info)
        if error is not None:
            self.reply(addr, req_id, error, ok=False)
        else:
            self.reply(addr, req_id, None)

    def _subscribe(self, actor_id: bytes, addr: str, token) -> None:
        """`addr` hears of the actor's changes, with `token` (a request without one keeps the
        token an earlier one gave: rpc/notices.py)."""
        subscribers = self.actor_subscribers.setdefault(actor_id, {})
        if type(token) is bytes:
            subscribers[addr] = token
        else:
            subscribers.setdefault(addr, None)

    def on_actor_update(self, h) -> None:
        """An actor's creator (or the worker it started the actor on) reports a change: obeyed
        only with the key the creator registered (an actor registered without one — a file
        from before keys — takes any report)."""
        _, actor_id, state, address, reason, worker_id = h[:6]
        record = self.tables.actors.get(actor_id)
        if record is not None and record.key is not None and not self.inbox.proven(
                h, P.ACTOR_UPDATE_PROOF, record.key, f"a {state} report of actor {actor_id.hex()} without its key "
                                  f"(claimed address {address})"):
            return
        self._set_actor_state(actor_id, state, address, reason, worker_id)

    def _set_actor_state(self, actor_id: bytes, state: str, address: str | None, reason: str | None,
                         worker_id: bytes | None) -> None:
        """Records a change, tells the subscribers and answers the lookups it settles."""
        record = self.tables.update_actor(actor_id, state, address, reason, worker_id)
        if record is not None:
            self._publish_actor(record)
            if record.dead():  # told for the last time: a dead actor changes no more
                self.actor_subscribers.pop(actor_id, None)
                self.orphans.discard(actor_id)
        if record is not None and record.settled():
            still = []
            for addr, req_id, not_worker in self.lookups_waiting.pop(actor_id, []):
                if record.dead() or record.worker_id != not_worker:
                    self.reply(addr, req_id, record.view())
                else:
                    still.append((addr, req_id, not_worker))
            if still:
                self.lookups_waiting[actor_id] = still

    def _owners_died(self, addresses, why: str) -> None:
        """Fate-sharing: the actors these processes created die with them (pending ones too,
        so their names are free and their lookups answered), except detached ones, which
        live on with nobody to restart them (one whose process died before it is DEAD now)."""
        for addr in addresses:
            for group in self.placement_groups.creator_exited(addr):
                self._group_removed(group, f"its creator {addr} exited ({why})")
            for record in self.tables.owned_by(addr):
                if record.options.get("detached") and record.state == "RESTARTING":
                    # its process died first (a node reports deaths in the order they are
                    # reaped): it waited for its creator to restart it, and nobody will now
                    self._set_actor_state(record.actor_id, "DEAD", None,
                                          f"{record.reason or 'its process died'}; its creator {addr} is "
                                          f"gone too, so it is not restarted", None)
                elif record.options.get("detached"):
                    self.orphans.add(record.actor_id)
                else:
                    self._set_actor_state(record.actor_id, "DEAD", None,
                                          f"its owner {addr} died ({why})", None)

    def on_actor_lookup(self, h) -> None:
        """Answers once the actor is ALIVE (on a worker other than `not_worker`, the one a
        caller saw die) or DEAD. A name is looked up in the namespace given ("" if none)."""
        _, req_id, addr, key = h[:4]
        not_worker = P.optional(h, P.LOOKUP_NOT_WORKER)
        namespace = P.optional(h, P.LOOKUP_NAMESPACE) or ""
        record = self.tables.find_actor(key, namespace)
        if record is not None and not record.dead():
            self._subscribe(record.actor_id, addr, P.optional(h, P.LOOKUP_TOKEN))
        if record is None:
            self.reply(addr, req_id, None)
        elif record.dead() or (record.settled() and (not_worker is None or record.worker_id != not_worker)):
            self.reply(addr, req_id, record.view())
        else:
            self.lookups_waiting.setdefault(record.actor_id, []).append((addr, req_id, not_worker))

    def on_kv_put(self, h) -> None:
        _, req_id, addr, key, value, overwrite = h
        self.reply(addr, req_id, self.tables.kv_put(key, value, overwrite))

    def on_kv_get(self, h) -> None:
        _, req_id, addr, key = h
        self.reply(addr, req_id, self.tables.kv_get(key))

    def on_kv_delete(self, h) -> None:
        _, req_id, addr, key = h
        self.reply(addr, req_id, self.tables.kv_delete(key))

    def on_kv_list(self, h) -> None:
        _, req_id, addr, prefix = h
        self.reply(addr, req_id, self.tables.kv_list(prefix))

    def on_actor_names(self, h) -> None:
        _, req_id, addr = h
        self.reply(addr, req_id, self.tables.live_actor_names(None))

    def on_stats(self, h) -> None:
        _, req_id, addr = h
        self.reply(addr, req_id, {"requests": self.requests_served,
                                  "by_type": self.requests_by_type,
                                  "nodes": len(self.tables.nodes),
                                  "actors": len(self.tables.actors),
                                  "incarnation": self.tables.incarnation,
                                  "handler_errors": self.handler_errors,
                                  "malformed": self.inbox.malformed,
                                  "unauthorized": self.inbox.unauthorized,
                                  "fenced": self.fenced,
                                  "failed_requests": self.failed_requests})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="ownrun-head")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--node-timeout", type=float, default=liveness.DEFAULT_DEAD_AFTER,
                        help="seconds without a heartbeat before a node is declared dead")
    parser.add_argument("--suspect-timeout", type=float, default=liveness.DEFAULT_SUSPECT_AFTER,
                        help="seconds without a heartbeat before no new leases go to a node")
    parser.add_argument("--cluster-key", default=None,
                        help="the cluster key file: peers must hold it (clusters beyond loopback)")
    args = parser.parse_args(argv)
    process_tools.raise_open_file_limit()  # a connection per daemon, driver and one-shot client
    # ---- start-up: tables, then the (authenticated) inbox -----------------------------------
    tables = HeadTables.open(args.session_dir)  # before READY: a bad file fails start-up
    job_id = f"driver-{args.parent_pid}" if args.parent_pid else None
    if job_id is not None:
        tables.add_job(job_id, None, args.parent_pid)
    try:
        curve = CurveKeys.load(args.cluster_key) if args.cluster_key else None
        transport = Transport(args.host, args.port, curve=curve)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"head: {exc}\n")  # the launcher quotes this line from the log
        sys.exit(1)
    # ---- end of start-up ------------------------------------------------------------------
    process_tools.announce_ready(transport.address, os.path.join(args.session_dir, "logs", "head.log"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s head %(levelname)s %(message)s")
    log.info("head incarnation %d serving at %s (%d nodes, %d actors loaded)",
             tables.incarnation, transport.address, len(tables.nodes), len(tables.actors))
    head = Head(transport, tables, suspect_after=args.suspect_timeout, dead_after=args.node_timeout)
    parent_fd = process_tools.watch_parent(transport, args.parent_pid)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    gc_tuning.apply(freeze=True)
    try:
        serve(head, parent_fd)
    except _Stop:
        log.info("asked to stop (SIGTERM)")
    if job_id is not None:
        tables.finish_job(job_id)
    transport.close()
    tables.close()
    sys.exit(0)


class _Stop(BaseException):
    """Raised in the head's thread by SIGTERM (a clean stop: the driver's shutdown)."""


def _stop_on_signal(signum, frame) -> None:
    raise _Stop


def serve(head: Head, parent_fd: int | None) -> None:
    """Serves requests until the parent process exits."""
    next_check = time.monotonic() + 0.1
    last_loop = time.monotonic()
    while True:
        messages, tokens = head.transport.poll(100)
        for frames in messages:  # heartbeats that arrived during a stall count before liveness
            head.handle(frames)
        for token in tokens:
            if token[0] == "node-connection":  # a daemon's process is gone (the OS says so)
                head.on_connection_lost(token[1], token[2])
            elif parent_fd is not None:
                log.info("parent exited; head stops")
                return
        now = time.monotonic()
        if now - last_loop > head.liveness.suspect_after / 2:
            head.forgive_stall(now, now - last_loop)  # the head itself was stalled, not the nodes
        last_loop = now
        if now >= next_check:
            next_check = now + 0.1
            head.check_liveness(now)
            head.close_idle_peers(now)


if __name__ == "__main__":
    main()
