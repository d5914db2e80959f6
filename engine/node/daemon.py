"""The node daemon: one per node. Leases workers, owns the node's object store (§2, §3, §6).

Owns the dispatch and I/O around pure policies: the worker pool and lease requests
(`scheduler.LeaseScheduler`: resources, grants, idle reaping that asks a worker before
stopping it), where requests go (`spillback.Spillback`: other nodes, infeasible requests
waiting for one that fits), pulls of objects from other nodes (`transfer.Pulls`: chunked,
flow-controlled; each finished pull is a span on its timeline, state/spans.py, which the
state API asks for with NODE_STATS ["timeline"]). Itself it keeps the node's shared-memory `ObjectStore`, the registry of
local clients (drivers and workers) and death notices: when a worker exits, every local
client hears `WORKER_DIED` with the reason; when a client dies, its leases, pins, objects
and actors are released (fate-sharing). Worker output lines are forwarded to the drivers.
A handler that raises is logged and counted (`handler_errors` in NODE_STATS); the loop goes on.
Notices from the head (NODE_DIED, NODE_FENCED, CLUSTER_VIEW) are obeyed only with this
daemon's notice token, which it sends the head in its heartbeats; it forwards NODE_DIED to
its clients with each one's own token, and passes their tokens on to the head (NODE_CLIENTS;
rpc/notices.py). A notice without its token is dropped and counted (`unauthorized`). What it
tells the head of its clients (NODE_CLIENTS, WORKER_DIED_REMOTE) carries its token as proof.
Placement group bundles: the cluster view lists those this node is to hold; the scheduler
reserves and releases them (`set_bundles`), the daemon stops the workers of released ones
and refuses their queued requests, and beats at once when what it holds changed (the head
reads the bundles from the total resources it reports).

It is not on the task path: owners push tasks to leased workers directly.
Runs as its own process, one thread. Exits (cleaning up its workers and /dev/shm files)
on SHUTDOWN_NODE, SIGTERM, when its parent driver (embedded cluster) dies, or when the head
answers its heartbeat with NODE_FENCED (it was declared dead while paused: exit code 3).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

from .. import errors, ids
from ..rpc import notices
from ..rpc import protocol as P
from ..rpc.schema import Inbox
from ..rpc.transport import AnyTransport, Transport, pack
from ..state.spans import EVENTS
from ..store.arena_client import ArenaClient
from ..store.object_store import ObjectStore
from ..util import gc_tuning, process_tools
from ..util.handler_errors import log_handler_error
from .scheduler import LeaseRequest, LeaseScheduler
from .spillback import Placement, Spillback
from .transfer import Pulls, TransferActions, serve_chunk

log = logging.getLogger("ownrun.node")

# Requests ([kind, req_id, reply_addr, ...]): a malformed one is answered with an error.
FENCED_EXIT_CODE = 3  # the head declared this node dead and it stopped

_REQUESTS = frozenset({P.REGISTER_CLIENT, P.OBJ_CREATE, P.OBJ_GET, P.NODE_STATS, P.UNREGISTER_CLIENT})
_BEAT_CHECK_EVERY = 16  # messages handled between looks at the heartbeat clock


class Client:
    __slots__ = ("address", "worker_id", "pid", "kind", "pidfd", "token")

    def __init__(self, address, worker_id, pid, kind, pidfd, token=None):
        self.address, self.worker_id, self.pid, self.kind, self.pidfd = address, worker_id, pid, kind, pidfd
        self.token = token  # its notice token (rpc/notices.py): the proof of what we forward to it


class NodeDaemon:
    def __init__(self, transport: AnyTransport, args):
        self.transport = transport
        self.node_id: str = args.node_id
        self.session_dir = args.session_dir
        self.head_address = args.head_address
        self.resources = json.loads(args.resources)
        self.config = json.loads(args.config)
        self.parent_pid = args.parent_pid
        max_idle = self.config.get("max_idle_workers", max(2, int(self.resources.get("CPU", 1)) * 2))
        self.scheduler = LeaseScheduler(self.resources, ids.new_worker_id, max_idle_workers=int(max_idle),
                                        recheck_period=float(self.config.get("reap_recheck_period", 5.0)),
                                        idle_grace=float(self.config.get("idle_worker_grace", 10.0)))
        self.spillback = Spillback(self.node_id, self.scheduler,
                                   infeasible_timeout=self.config.get("infeasible_timeout"))  # None: wait
        self.arena_name = f"ownrun-{os.path.basename(self.session_dir)}-{self.node_id}"
        self.store = ObjectStore(self.arena_name, args.store_capacity,
                                 os.path.join(self.session_dir, "spill", self.node_id))
        self.store_capacity = args.store_capacity
        self.clients: dict[str, Client] = {}
        self.pid_to_worker: dict[int, bytes] = {}
        self.kill_reasons: dict[bytes, str] = {}
        self.object_owner: dict[bytes, str] = {}
        self.owned_objects: dict[str, set] = {}
        self.address = transport.address
        self.arena = ArenaClient()
        self.transfers = Pulls()  # objects being pulled from other nodes, with their readers
        self.bundles_told: list = []  # the placement group bundles the head's last view gave us
        self.bundles_reported = 0  # scheduler.bundles_changed at our last heartbeat
        self.incoming: dict = {}  # oid being pulled -> its store placement (from the first chunk)
        self.transfer_bytes = 0  # chunk bytes sent and received in the current loop iteration
        self.max_transfer_bytes_per_loop = 0  # flow control at work: bounded however big objects are
        self.copies: dict[bytes, set] = {}  # oid -> daemons that pulled a copy from us
        # oid being written here -> reads and pulls that arrived before its seal: the writer's
        # OBJ_SEAL and a reader's OBJ_GET come over different connections, and a busy inbox
        # may hand us the read first (answering "not here" made a slow machine lose objects).
        self.awaiting_seal: dict[bytes, list] = {}
        self.dead_daemons: set[str] = set()
        self.clients_added: list = []
        self.clients_removed: list = []
        self.notice_token = notices.new_token()  # the head's notices to us carry it (rpc/notices.py)
        self.heartbeat_period = float(self.config.get("heartbeat_period", 0.1))
        self.last_beat_at = 0.0  # monotonic time of the last heartbeat sent
        self.longest_beat_gap_s = 0.0  # the head declares us dead after 30 s of this (default)
        self.longest_loop_s = 0.0  # one turn of the loop: poll excluded, handlers included
        self.current_frames: list = []
        self.warm_modules: set = set()  # modules the zygote was asked to pre-import
        self.deferred_registrations: list = []  # drivers waiting for the pre-started workers
        self.started_at = time.monotonic()
        self.handler_errors = 0  # exceptions raised by message handlers (each one a bug)
        self.running = True
        self.fenced = False  # the head declared this node dead: it stops (on_fenced)
        self.zygote = self._start_zygote()
        self.zygote_buf = b""
        self.handlers = {
            P.REGISTER_CLIENT: self.on_register_client,
            P.WORKER_READY: self.on_worker_ready,
            P.LEASE_REQUEST: self.on_lease_request,
            P.LEASE_RETURN: self.on_lease_return,
            P.LEASE_CANCEL: self.on_lease_cancel,
            P.WORKER_BLOCKED: self.on_worker_blocked,
            P.WORKER_UNBLOCKED: self.on_worker_unblocked,
            P.OBJ_CREATE: self.on_obj_create,
            P.OBJ_SEAL: self.on_obj_seal,
            P.OBJ_ABORT: self.on_obj_abort,
            P.OBJ_GET: self.on_obj_get,
            P.OBJ_RELEASE: self.on_obj_release,
            P.OBJ_FREE: self.on_obj_free,
            P.OBJ_PIN: self.on_obj_pin,
            P.KILL_WORKER: self.on_kill_worker,
            P.LOG_LINES: self.on_log_lines,
            P.NODE_STATS: self.on_stats,
            P.SHUTDOWN_NODE: self.on_shutdown,
            P.UNREGISTER_CLIENT: self.on_unregister_client,
            P.WARM_MODULES: self.on_warm_modules,
            P.OBJ_PULL: self.on_obj_pull,
            P.OBJ_CHUNK: self.on_obj_chunk,
            P.CLUSTER_VIEW: self.on_cluster_view,
            P.NODE_DIED: self.on_node_died,
            P.NODE_FENCED: self.on_fenced,
            P.WORKER_DIED: self.on_remote_worker_died,
            P.REAP_ANSWER: self.on_reap_answer,
        }
        self.inbox = Inbox(log, f"node {self.node_id}", self.handlers)  # drops malformed messages

    # ---- the zygote ----------------------------------------------------------------------
    def _start_zygote(self) -> subprocess.Popen:
        config = {"daemon_address": self.transport.address, "node_id": self.node_id,
                  "head_address": self.head_address, "session_dir": self.session_dir,
                  "arena_name": self.arena_name, "config": self.config}
        proc = subprocess.Popen([sys.executable, *process_tools.interpreter_flags(), "-m",
                                 "ownrun.engine.node.zygote", json.dumps(config)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        os.set_blocking(proc.stdout.fileno(), False)
        self.transport.watch_fd(proc.stdout.fileno(), "zygote")
        return proc

    def start_workers(self, worker_ids: list) -> None:
        if not worker_ids:
            return
        lines = "".join(json.dumps({"worker_id": w.hex()}) + "\n" for w in worker_ids)
        try:
            self.zygote.stdin.write(lines.encode())
            self.zygote.stdin.flush()
        except BrokenPipeError:
            log.error("the zygote is gone; cannot start workers")

    def on_zygote_output(self) -> None:
        try:
            chunk = os.read(self.zygote.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        if not chunk:
            self.transport.unwatch_fd(self.zygote.stdout.fileno())
            if self.running:
                log.error("the zygote exited; shutting the node down")
                self.running = False
            return
        self.zygote_buf += chunk
        while b"\n" in self.zygote_buf:
            line, self.zygote_buf = self.zygote_buf.split(b"\n", 1)
            event, *fields = line.decode().split()
            if event == "STARTED":
                worker_hex, pid = fields
                self.pid_to_worker[int(pid)] = bytes.fromhex(worker_hex)
            elif event == "EXITED":
                pid, code = fields
                self.on_worker_exited(int(pid), int(code))

    # ---- helpers -------------------------------------------------------------------------
    def reply(self, addr: str, req_id: int, result, ok: bool = True) -> None:
        self.transport.send(addr, [pack([P.REPLY, req_id, ok, result])])

    def apply(self, decisions) -> None:
        for req, worker in decisions.grants:
            self.transport.send(req.owner_addr, [pack([P.LEASE_GRANTED, req.request_id, worker.worker_id,
                                                       worker.address, self.node_id, self.address, None])])
        self.start_workers(decisions.start)
        for worker_id in decisions.stop:
            w = self.scheduler.workers.get(worker_id)
            if w is not None and w.address:
                self.transport.send(w.address, [pack([P.EXIT_WORKER, self.address])])
        for owner in self.scheduler.due_recalls(decisions.recall, time.monotonic()) if decisions.recall else ():
            self.transport.send(owner, [pack([P.RECALL_LEASES])])
        for worker_id in decisions.reap_query:
            self.transport.send(self.scheduler.workers[worker_id].address, [pack([P.REAP_QUERY])])

    # ---- clients -------------------------------------------------------------------------
    def _add_client(self, addr, worker_id, pid, kind, token=None) -> None:
        fd = process_tools.pidfd(pid) if kind == "driver" else None
        self.clients[addr] = Client(addr, worker_id, pid, kind, fd, token)
        self.clients_added.append(addr)
        if fd is not None:
            self.transport.watch_fd(fd, ("client", addr))

    def on_register_client(self, h) -> None:
        _, req_id, addr, worker_id, pid, kind = h[:6]
        self._add_client(addr, worker_id, pid, kind, P.optional(h, P.REGISTER_CLIENT_TOKEN))
        if self.scheduler.prestarting() and time.monotonic() < self.started_at + 5.0:
            self.deferred_registrations.append(h)  # answered once the pre-started pool is up
            return
        self._answer_registration(h)

    def _answer_registration(self, h) -> None:
        req_id, addr = h[1], h[2]
        self.reply(addr, req_id, {"node_id": self.node_id, "arena_name": self.arena_name,
                                  "store_capacity": self.store_capacity, "head_address": self.head_address,
                                  "session_dir": self.session_dir, "resources": self.resources,
                                  "pid": os.getpid(), "host": socket.gethostname()})

    def on_warm_modules(self, h) -> None:
        """A worker had to import these after it was forked: have the zygote import them."""
        _, modules = h
        new = [m for m in modules if m not in self.warm_modules]
        if new:
            self.warm_modules.update(new)
            try:
                self.zygote.stdin.write((json.dumps({"import": new}) + "\n").encode())
                self.zygote.stdin.flush()
            except BrokenPipeError:
                pass

    def on_unregister_client(self, h) -> None:
        """A driver shut down while its process lives on: release its leases, pins and objects."""
        _, req_id, addr = h
        self._client_gone(addr)
        self.reply(addr, req_id, True)

    def on_worker_ready(self, h) -> None:
        _, worker_id, addr, pid = h[:4]
        self._add_client(addr, worker_id, pid, "worker", P.optional(h, P.WORKER_READY_TOKEN))
        self.apply(self.scheduler.worker_ready(worker_id, addr, pid))
        if self.deferred_registrations and not self.scheduler.prestarting():
            waiting, self.deferred_registrations = self.deferred_registrations, []
            for registration in waiting:
                self._answer_registration(registration)

    def on_worker_exited(self, pid: int, code: int) -> None:
        worker_id = self.pid_to_worker.pop(pid, None)
        if worker_id is None:
            return
        w, decisions = self.scheduler.worker_died(worker_id)
        reason = self.kill_reasons.pop(worker_id, None)
        if reason is None:
            if code < 0:
                reason = f"the worker process (pid {pid}) was killed by {signal.Signals(-code).name}"
            else:
                reason = f"the worker process (pid {pid}) exited with code {code}"
        addr = w.address if w is not None else None
        if addr is not None:
            self._client_gone(addr)
            self._announce_death(worker_id, addr, reason)
            self.transport.send(self.head_address, [pack([P.WORKER_DIED_REMOTE, self.node_id, worker_id,
                                                          addr, reason, self.notice_token])])
        self.apply(decisions)

    def _client_gone(self, addr: str) -> None:
        """Fate-sharing on this node: release what the dead process held or owned."""
        client = self.clients.pop(addr, None)
        if client is None:
            return
        self.clients_removed.append(addr)
        if client.pidfd is not None:
            self.transport.unwatch_fd(client.pidfd)
            os.close(client.pidfd)
        self.transport.disconnect(addr)
        self.store.release_client(client.worker_id)
        for oid in self.owned_objects.pop(addr, ()):
            self.object_owner.pop(oid, None)
            self.store.free(oid)
        if self.awaiting_seal:
            self._settle_awaiting_seal()
        self.spillback.owner_died(addr)
        for worker_id in self.scheduler.owner_died(addr):
            self._kill(worker_id, f"its owner {addr} died")
        if client.kind == "driver":  # other nodes' processes may borrow what it owned
            self._announce_death(client.worker_id, addr, f"the driver (pid {client.pid}) exited")
        if client.kind == "driver" and client.pid == self.parent_pid:
            log.info("the driver that started this node exited; shutting down")
            self.running = False

    def _announce_death(self, worker_id: bytes, addr: str, reason: str) -> None:
        """Tells local clients and the other nodes (whose processes may own or borrow what the
        dead process held) that it died."""
        notice = [pack([P.WORKER_DIED, worker_id, addr, reason])]
        for client in list(self.clients.values()):
            self.transport.send(client.address, notice)
        for node in self.spillback.view.values():
            if node["address"] != self.address and node.get("alive", True):
                self.transport.send(node["address"], notice)

    def _kill(self, worker_id: bytes, reason: str) -> None:
        w = self.scheduler.workers.get(worker_id)
        if w is None or w.pid is None:
            return
        self.kill_reasons.setdefault(worker_id, reason)
        process_tools.kill_pid(w.pid)

    # ---- leases ----------------------------------------------------------------------------
    def on_lease_request(self, h) -> None:
        _, owner_addr, owner_id, request_id, resources, for_actor, hops = h[:7]
        actor_options = P.optional(h, P.LEASE_ACTOR_OPTIONS, {})
        req = LeaseRequest(owner_addr, owner_id, request_id, resources, for_actor, hops,
                           detached=bool(actor_options.get("detached")),
                           placement=actor_options.get("placement") or {},
                           pinned=bool(actor_options.get("pinned")),
                           soft_affinity=bool(actor_options.get("soft_affinity")))
        self.apply_placement(self.spillback.request(req, time.monotonic()))

    def apply_placement(self, placement: Placement) -> None:
        for req, target in placement.spill:
            self.transport.send(req.owner_addr, [pack([P.LEASE_GRANTED, req.request_id, None, None,
                                                       self.node_id, self.address, target])])
        for req, message in placement.warn:  # one line per shape, shown by the owner (Ray does so too)
            log.warning("%s", message)
            self.transport.send(req.owner_addr, [pack([P.LOG_LINES, "ownrun", f"Warning: {message}"])])
        for req, message in placement.reject:
            self.transport.send(req.owner_addr, [pack([P.LEASE_GRANTED, req.request_id, None, message,
                                                       self.node_id, self.address, None])])
        self.apply(placement.local)

    def on_lease_return(self, h) -> None:
        _, worker_id, reuse = h
        self.apply(self.scheduler.lease_returned(worker_id, time.monotonic(), retire=not reuse))

    def on_reap_answer(self, h) -> None:
        _, worker_id, may_exit = h
        self.apply(self.scheduler.reap_answer(worker_id, may_exit, time.monotonic()))

    def on_lease_cancel(self, h) -> None:
        _, owner_addr, request_id = h
        self.scheduler.cancel(owner_addr, request_id)

    def on_worker_blocked(self, h) -> None:
        _, worker_id = h
        self.apply(self.scheduler.worker_blocked(worker_id))

    def on_worker_unblocked(self, h) -> None:
        _, worker_id = h
        self.scheduler.worker_unblocked(worker_id)

    def on_kill_worker(self, h) -> None:
        """Kills a worker leased to the sender, or an actor's worker (any handle may kill an actor)."""
        _, worker_id, reason, sender = h
        w = self.scheduler.workers.get(worker_id)
        if w is None:
            return
        if not (w.dedicated or (w.lease is not None and w.lease.owner_addr == sender)):
            log.warning("KILL_WORKER of worker %s from %s refused: not its lease holder", worker_id.hex(), sender)
            return
        self._kill(worker_id, reason)

    # ---- objects -------------------------------------------------------------------------
    def on_obj_create(self, h) -> None:
        _, req_id, addr, oid, size, owner_addr, writer_id, *ahead = h
        try:
            placement = self.store.create(oid, size, writer_id, ahead=bool(ahead and ahead[0]))
        except Exception as exc:  # noqa: BLE001 - ObjectStoreFullError and friends go back typed
            self.reply(addr, req_id, [type(exc).__name__, str(exc)], ok=False)
            return
        self.object_owner[oid] = owner_addr
        self.owned_objects.setdefault(owner_addr, set()).add(oid)
        self.reply(addr, req_id, list(placement))

    def on_obj_seal(self, h) -> None:
        """[OBJ_SEAL, worker_id, oid, keep]: `keep` (a `put`) turns the creator's pin into a
        read pin the client caches (it releases it with OBJ_RELEASE like any other)."""
        _, worker_id, oid, keep = h
        try:
            self.store.seal(oid, worker_id)
        except (KeyError, ValueError) as exc:
            log.warning("seal of %s by %s ignored: %s", oid.hex(), worker_id.hex(), exc)
            return
        if keep:
            self.store.get(oid, worker_id)
        if oid in self.awaiting_seal:
            self._settle_awaiting_seal()

    def on_obj_abort(self, h) -> None:
        """[OBJ_ABORT, worker_id, oid]: the writer created `oid` ahead of a put whose value
        turned out a different size; it will never seal it."""
        _, worker_id, oid = h
        try:
            self.store.abort(oid, worker_id)
        except ValueError as exc:
            log.warning("abort of %s by %s ignored: %s", oid.hex(), worker_id.hex(), exc)
            return
        self._forget_owner(oid)
        if oid in self.awaiting_seal:
            self._settle_awaiting_seal()

    def _forget_owner(self, oid: bytes) -> None:
        """`oid` is gone or going: its owner no longer owns it here."""
        owner = self.object_owner.pop(oid, None)
        if owner is not None:
            owned = self.owned_objects.get(owner)
            if owned is not None:
                owned.discard(oid)

    def on_obj_get(self, h) -> None:
        _, req_id, addr, oid, worker_id, source = h
        placement = self.store.get(oid, worker_id)
        reader = (addr, req_id, worker_id)
        if placement is not None:
            self.reply(addr, req_id, list(placement))
        elif oid in self.transfers.pulls or (source and source != self.address
                                             and source not in self.dead_daemons):
            self.apply_transfers(self.transfers.want(oid, source, reader, time.monotonic()))
        elif self.store.being_written(oid):  # its seal is on its way: answer once it lands
            self.awaiting_seal.setdefault(oid, []).append(reader)
        else:
            self.reply(addr, req_id, None)

    def _settle_awaiting_seal(self) -> None:
        """Answers the reads and pulls of objects no longer being written: sealed (the value),
        or aborted, freed, or their writer died (not here)."""
        for oid in [o for o in self.awaiting_seal if not self.store.being_written(o)]:
            for waiter in self.awaiting_seal.pop(oid):
                if len(waiter) == 4:  # a pull from another daemon: (requester, oid, offset, length)
                    self._serve_pull(*waiter)
                    continue
                addr, req_id, worker_id = waiter
                if addr not in self.clients:
                    continue  # the reader died meanwhile: pin nothing for it
                placement = self.store.get(oid, worker_id)
                self.reply(addr, req_id, list(placement) if placement is not None else None)

    # ---- transfer between nodes (node/transfer.py: pull-based, chunked, flow-controlled) -------
    def on_obj_pull(self, h) -> None:
        """Another daemon asks for one chunk of an object we hold (or are still being written)."""
        _, requester, oid, offset, length = h
        if self.store.being_written(oid):  # its seal is on its way: serve it once it lands
            self.awaiting_seal.setdefault(oid, []).append((requester, oid, offset, length))
            return
        self._serve_pull(requester, oid, offset, length)

    def _serve_pull(self, requester: str, oid: bytes, offset: int, length: int) -> None:
        total, data = serve_chunk(self.store, oid, offset, length)
        if total >= 0 and offset == 0:
            self.copies.setdefault(oid, set()).add(requester)
        self.transfer_bytes += len(data)
        self.transport.send(requester, [pack([P.OBJ_CHUNK, oid, offset, total]), data])

    def on_obj_chunk(self, h) -> None:
        _, oid, offset, total = h
        data = self.current_frames[1]
        now = time.monotonic()
        pull = self.transfers.expects(oid, offset)
        if pull is None:
            return  # a late chunk of a pull that ended
        self.transfer_bytes += len(data)
        if total >= 0 and oid not in self.incoming:
            try:
                self.incoming[oid] = self.store.create(oid, total, b"transfer", primary=False)
            except Exception as exc:  # noqa: BLE001 - store full: the readers get "not found"
                log.warning("cannot receive object %s: %s", oid.hex(), exc)
                self.apply_transfers(self.transfers.failed(oid, f"cannot store it: {exc}"))
                return
        placement = self.incoming.get(oid)
        if placement is not None and not placement.exists and data:
            self.arena.write(placement, [data], offset=offset)
        self.apply_transfers(self.transfers.received(oid, offset, total, len(data), now))

    def apply_transfers(self, actions: TransferActions) -> None:
        for source, oid, offset, length in actions.requests:
            self.transport.send(source, [pack([P.OBJ_PULL, self.address, oid, offset, length])])
        for pull, reason in actions.finished:
            placement = self.incoming.pop(pull.oid, None)
            if placement is not None and (reason is None or placement.exists):
                self.store.seal(pull.oid, b"transfer")
                reason = None
            elif placement is not None:
                self.store.abort(pull.oid, b"transfer")
            EVENTS.append(("transfer", pull.oid, pull.source, max(pull.total, 0), pull.started,
                           time.monotonic(), reason))
            if reason is not None:
                log.warning("pull of object %s from %s failed: %s", pull.oid.hex(), pull.source, reason)
            for addr, req_id, worker_id in pull.readers:
                got = self.store.get(pull.oid, worker_id) if reason is None else None
                self.reply(addr, req_id, list(got) if got is not None else None)

    def transfer_bound_per_loop(self) -> int:
        """The most chunk bytes one loop iteration can handle: per peer, `per_peer` chunks
        pulled from it plus `per_peer` chunks it pulls from us."""
        peers = sum(1 for n in self.spillback.view.values() if n["address"] != self.address) or 1
        return 2 * peers * self.transfers.per_peer * self.transfers.chunk_size

    def on_obj_release(self, h) -> None:
        _, worker_id, oids = h  # a batch: a client's cached pins that no view needs any more
        for oid in oids:
            self.store.release(oid, worker_id)

    def on_obj_pin(self, h) -> None:
        """The owner lost the primary copy and pins our secondary one: it becomes the primary
        (never evicted; freed by the owner or with it)."""
        _, oid, owner_addr = h
        if self.store.get(oid, b"pin") is None:
            return  # evicted meanwhile: the owner's next read fails and it rebuilds the object
        self.store.create(oid, 0, b"pin", primary=True)  # sealed already: marks it primary
        self.store.seal(oid, b"pin")
        self.store.release(oid, b"pin")
        self.object_owner[oid] = owner_addr
        self.owned_objects.setdefault(owner_addr, set()).add(oid)

    def on_obj_free(self, h) -> None:
        _, oids = h
        forward: dict[str, list] = {}
        for oid in oids:
            for daemon in self.copies.pop(oid, ()):
                forward.setdefault(daemon, []).append(oid)
            self._forget_owner(oid)
            self.store.free(oid)
        if self.awaiting_seal:  # freed before its seal: its readers hear "not here" now
            self._settle_awaiting_seal()
        for daemon, freed in forward.items():
            self.transport.send(daemon, [pack([P.OBJ_FREE, freed])])

    # ---- cluster membership ------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Our resources (with the placement group bundles held: the head reads them from
        the total), what is free, the store's stats; and the clients that came and went."""
        now = time.monotonic()
        if self.last_beat_at:
            self.longest_beat_gap_s = max(self.longest_beat_gap_s, now - self.last_beat_at)
        self.last_beat_at = now
        self.bundles_reported = self.scheduler.bundles_changed
        self.transport.send(self.head_address, [pack([P.HEARTBEAT, self.node_id, self.address,
                                                      self.scheduler.total, self.scheduler.available,
                                                      self.store.stats(), self.notice_token])])
        if self.clients_added or self.clients_removed:
            tokens = {a: c.token for a in self.clients_added if (c := self.clients.get(a)) is not None and c.token}
            self.transport.send(self.head_address, [pack([P.NODE_CLIENTS, self.node_id,
                                                          self.clients_added, self.clients_removed, tokens,
                                                          self.notice_token])])
            self.clients_added, self.clients_removed = [], []

    def _from_head(self, h, token_at: int) -> bool:
        """True when the notice `h` carries our token (rpc/notices.py); else it is refused."""
        return self.inbox.proven(h, token_at, self.notice_token, "a head notice without this daemon's token")

    def on_cluster_view(self, h) -> None:
        if not self._from_head(h, P.CLUSTER_VIEW_PROOF):
            return
        view = h[1]
        bundles = (view.get(self.node_id) or {}).get("bundles") or []
        if bundles != self.bundles_told:
            self.bundles_told = bundles
            self.apply_bundles(self.scheduler.set_bundles(bundles))
        self.apply_placement(self.spillback.view_changed(view, time.monotonic()))

    def apply_bundles(self, changes) -> None:
        """Placement group bundles released: their workers stop, their queued requests fail."""
        for worker_id in changes.stop:
            self._kill(worker_id, errors.PLACEMENT_GROUP_REMOVED)
        for req in changes.refused:
            self.transport.send(req.owner_addr, [pack([P.LEASE_GRANTED, req.request_id, None,
                                                       errors.PLACEMENT_GROUP_REMOVED, self.node_id,
                                                       self.address, None])])
        self.apply(changes.decisions)

    def on_node_died(self, h) -> None:
        """Another node died: its processes owned or borrowed things here."""
        if not self._from_head(h, P.NODE_DIED_PROOF):
            return
        _, node_id, daemon_addr, client_addrs, reason = h[:5]
        if daemon_addr in self.dead_daemons:
            return
        self.dead_daemons.add(daemon_addr)
        self.transport.disconnect(daemon_addr)
        self.spillback.node_died(node_id)
        for oid in [o for o, daemons in self.copies.items() if daemon_addr in daemons]:
            self.copies[oid].discard(daemon_addr)
        self.apply_transfers(self.transfers.source_died(daemon_addr))
        for addr in client_addrs:
            self._remote_process_gone(addr)
        notice = h[:5]
        for client in list(self.clients.values()):
            self.transport.send(client.address, [pack([*notice, client.token])])

    def on_fenced(self, h) -> None:
        """The head declared this node dead (it was paused or cut off for the death timeout):
        the owners consider its workers and objects lost, so it stops (killing its workers,
        unlinking its store) rather than serve them. A replacement joins under a new id."""
        if not self._from_head(h, P.NODE_FENCED_PROOF):
            return
        _, node_id, reason = h[:3]
        if node_id != self.node_id:
            log.warning("NODE_FENCED for node %r ignored (this is %s)", node_id[:80], self.node_id)
            return
        log.warning("node %s fenced by the head (%s): stopping with its workers", self.node_id, reason)
        self.fenced = True
        self.running = False

    def on_remote_worker_died(self, h) -> None:
        _, worker_id, addr, reason = h
        if addr in self.clients:
            return  # ours: handled by on_worker_exited
        self._remote_process_gone(addr)
        notice = [pack(h)]
        for client in list(self.clients.values()):
            self.transport.send(client.address, notice)

    def _remote_process_gone(self, addr: str) -> None:
        for oid in self.owned_objects.pop(addr, ()):
            self.object_owner.pop(oid, None)
            self.store.free(oid)
        self.spillback.owner_died(addr)
        for worker_id in self.scheduler.owner_died(addr):
            self._kill(worker_id, f"its owner {addr} died")
        self.transport.disconnect(addr)

    # ---- misc ----------------------------------------------------------------------------
    def on_log_lines(self, h) -> None:
        for client in self.clients.values():
            if client.kind == "driver":
                self.transport.send(client.address, [pack(h)])

    def on_stats(self, h) -> None:
        _, req_id, addr, *what = h
        if what and "timeline" in what[0]:  # the state API's timeline: this daemon's transfers
            self.reply(addr, req_id, {"node_id": self.node_id, "timeline": EVENTS.snapshot()})
            return
        self.reply(addr, req_id, {"node_id": self.node_id, "store": self.store.stats(),
                                  "scheduler": self.scheduler.usage(), "clients": len(self.clients),
                                  "handler_errors": self.handler_errors,
                                  "loop": {"longest_turn_s": round(self.longest_loop_s, 4),
                                           "longest_beat_gap_s": round(self.longest_beat_gap_s, 4)},
                                  "nodes_known": sorted(self.spillback.view),
                                  "malformed": self.inbox.malformed,
                                  "unauthorized": self.inbox.unauthorized,
                                  "transfer": {"pulls": len(self.transfers.pulls),
                                               "max_bytes_per_loop": self.max_transfer_bytes_per_loop,
                                               "bound_per_loop": self.transfer_bound_per_loop()},
                                  "processes": [[c.address, c.worker_id, c.pid, c.kind]
                                                for c in self.clients.values()],
                                  "pids": [w.pid for w in self.scheduler.workers.values() if w.pid]
                                  + [self.zygote.pid]})

    def on_shutdown(self, h) -> None:
        """Stops this node if the message names it (a stray or mangled one does not)."""
        if h[1] != self.node_id:
            log.warning("SHUTDOWN_NODE for node %r ignored (this is %s)", h[1][:80], self.node_id)
            return
        self.running = False

    # ---- loop ----------------------------------------------------------------------------
    def run(self) -> None:
        parent_fd = process_tools.watch_parent(self.transport, self.parent_pid)
        self.start_workers(self.scheduler.prestart(int(self.config.get("prestart_workers", 0))))
        next_beat = 0.0
        while self.running:
            now = time.monotonic()
            if now >= next_beat:
                if self.deferred_registrations and now > self.started_at + 5.0:
                    waiting, self.deferred_registrations = self.deferred_registrations, []
                    for registration in waiting:  # workers are slow to start: don't hold drivers up
                        self._answer_registration(registration)
                self.apply_placement(self.spillback.tick(now))  # spills, reaps, recalls leases
                if self.transfers.pulls:
                    self.apply_transfers(self.transfers.tick(now))
                self.heartbeat()
                next_beat = now + self.heartbeat_period
            messages, tokens = self.transport.poll(int(max(1, (next_beat - now) * 1000)))
            for token in tokens:
                if token == "zygote":
                    self.on_zygote_output()
                elif token[0] == "client":
                    self._client_gone(token[1])
                elif token[0] == "parent" and parent_fd is not None:
                    self.running = False
            self.transfer_bytes = 0
            turn_started = time.monotonic()
            for count, frames in enumerate(messages, 1):
                if count % _BEAT_CHECK_EVERY == 0 \
                        and time.monotonic() - self.last_beat_at >= self.heartbeat_period:
                    # a long batch (a herd of owners on a starved machine) must not silence
                    # us: the head declares a node dead after 30 s without a beat (default).
                    # `next_beat` stays: the spills and reaps due with it still run next turn.
                    self.heartbeat()
                header = self.inbox.header(frames)
                if header is None:  # malformed: dropped and counted; a request is answered
                    answer = self.inbox.reply_address(_REQUESTS)
                    if answer is not None:
                        self.reply(answer[1], answer[0], ["EngineError", f"node {self.node_id}: malformed "
                                                                         f"request: {answer[2]}"], ok=False)
                    continue
                try:
                    self.current_frames = frames
                    self.handlers[header[0]](header)
                except Exception:  # noqa: BLE001 - one bad message must not kill the node
                    self.handler_errors += 1
                    log_handler_error(log, "failed to handle a message")
            if self.scheduler.bundles_changed != self.bundles_reported:  # the head learns it now
                self.heartbeat()
            self.longest_loop_s = max(self.longest_loop_s, time.monotonic() - turn_started)
            if self.transfer_bytes > self.max_transfer_bytes_per_loop:
                self.max_transfer_bytes_per_loop = self.transfer_bytes
        self.stop()

    def _stop_zygote(self, timeout: float = 5.0) -> None:
        """Closes the zygote's stdin: it kills and reaps the workers it forked, then exits (so no
        worker is left to an init that may never reap it). Killed if it takes over `timeout`."""
        try:
            self.zygote.stdin.close()
        except OSError:
            pass  # it is gone already: wait() reaps it
        try:
            self.zygote.wait(timeout)
        except subprocess.TimeoutExpired:
            self.zygote.kill()
            self.zygote.wait()

    def stop(self) -> None:
        for w in self.scheduler.workers.values():
            if w.pid:
                process_tools.kill_pid(w.pid)
        self._stop_zygote()
        deadline = time.monotonic() + 5
        for w in list(self.scheduler.workers.values()):
            if w.pid:
                process_tools.wait_pid_exit(w.pid, max(0.0, deadline - time.monotonic()))
        self.arena.close()
        self.store.close()
        self.transport.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="ownrun-node")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--head-address", required=True)
    parser.add_argument("--resources", required=True)
    parser.add_argument("--store-capacity", type=int, required=True)
    parser.add_argument("--config", default="{}")
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cluster-key", default=None,
                        help="the cluster key file (clusters beyond loopback); passed on to workers")
    args = parser.parse_args(argv)
    process_tools.raise_open_file_limit()  # two descriptors per worker; its workers inherit it
    transport = _start_transport(args)
    daemon = NodeDaemon(transport, args)
    signal.signal(signal.SIGTERM, lambda *_: setattr(daemon, "running", False) or transport.wake())
    process_tools.announce_ready(transport.address,
                                 os.path.join(args.session_dir, "logs", f"node-{args.node_id}.log"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s node %(levelname)s %(message)s")
    gc_tuning.apply(freeze=True)
    daemon.run()
    sys.exit(FENCED_EXIT_CODE if daemon.fenced else 0)


# ---- start-up (owned by the cluster start-up code, not the handlers above) --------------------
def _start_transport(args) -> AnyTransport:
    """The daemon's inbox, with the cluster key if any; exports the same identity (bind host,
    key, advertised IP) to the zygote and workers through the environment. A head that is not
    on loopback is asked once before READY, so a missing or wrong key fails the start-up
    with the reason in this node's log instead of a node that silently never joins."""
    from ..rpc import addresses, oneshot
    from ..rpc.cluster_key import CurveKeys
    from ..rpc.transport import export_identity

    try:
        curve = CurveKeys.load(args.cluster_key) if args.cluster_key else None
        head_host = addresses.host(args.head_address)
        node_ip = addresses.source_ip_toward(head_host) if addresses.is_wildcard(args.host) else None
        export_identity(os.environ, args.host, curve, node_ip)
        transport = Transport(args.host, curve=curve)
        if curve is not None or not addresses.is_loopback(head_host):
            with oneshot.OneShotClient(args.head_address, curve, args.host) as client:
                client.call(P.HEAD_STATS, timeout=10.0)
    except (OSError, ValueError, oneshot.PeerError) as exc:
        sys.stderr.write(f"node {args.node_id}: cannot join the head at {args.head_address}: {exc}\n")
        sys.exit(1)
    return transport
# ---- end of start-up ---------------------------------------------------------------------------


if __name__ == "__main__":
    main()
