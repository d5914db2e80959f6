"""The node daemon: one per node. Leases workers, owns the node's object store (§2, §3, §6).

Owns: the worker pool (forked by the zygote), lease requests and resources (via
`LeaseScheduler`), the node's shared-memory `ObjectStore`, the registry of local clients
(drivers and workers) and death notices: when a worker exits, every local client hears
`WORKER_DIED` with the reason; when a client dies, its leases, pins, objects and actors
are released (fate-sharing). Worker output lines are forwarded to the drivers.

It is not on the task path: owners push tasks to leased workers directly.
Runs as its own process, one thread. Exits (cleaning up its workers and /dev/shm files)
on SHUTDOWN_NODE, SIGTERM, or when its parent driver (embedded cluster) dies.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time

from ..rpc import protocol as P
from ..rpc.transport import Transport, pack, unpack
from ..store.arena_client import ArenaClient
from ..store.object_store import ObjectStore
from ..util import process_tools
from .scheduler import LeaseRequest, LeaseScheduler

log = logging.getLogger("ownrun.node")


class Client:
    __slots__ = ("address", "worker_id", "pid", "kind", "pidfd")

    def __init__(self, address, worker_id, pid, kind, pidfd):
        self.address, self.worker_id, self.pid, self.kind, self.pidfd = address, worker_id, pid, kind, pidfd


class NodeDaemon:
    def __init__(self, transport: Transport, args):
        self.transport = transport
        self.node_id: str = args.node_id
        self.session_dir = args.session_dir
        self.head_address = args.head_address
        self.resources = json.loads(args.resources)
        self.config = json.loads(args.config)
        self.parent_pid = args.parent_pid
        self.scheduler = LeaseScheduler(self.resources, lambda: os.urandom(16),
                                        max_idle_workers=max(2, int(self.resources.get("CPU", 1)) * 2))
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
        self.pulls: dict[bytes, list] = {}  # oid -> [(client addr, req_id, worker_id)] waiting
        self.incoming: dict[bytes, list] = {}  # oid -> [placement, bytes received]
        self.copies: dict[bytes, set] = {}  # oid -> daemons that pulled a copy from us
        self.pull_sources: dict[bytes, str] = {}  # oid being pulled -> source daemon
        self.dead_daemons: set[str] = set()
        self.view: dict[str, dict] = {}  # the head's cluster view: node_id -> info
        self.clients_added: list = []
        self.clients_removed: list = []
        self.heartbeat_period = float(self.config.get("heartbeat_period", 0.1))
        self.current_frames: list = []
        self.infeasible: list = []  # (lease request header, deadline): no node fits it yet
        self.warm_modules: set = set()  # modules the zygote was asked to pre-import
        self.deferred_registrations: list = []  # drivers waiting for the pre-started workers
        self.started_at = time.monotonic()
        self.running = True
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
            P.OBJ_GET: self.on_obj_get,
            P.OBJ_RELEASE: self.on_obj_release,
            P.OBJ_FREE: self.on_obj_free,
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
            P.WORKER_DIED: self.on_remote_worker_died,
        }

    # ---- the zygote ----------------------------------------------------------------------
    def _start_zygote(self) -> subprocess.Popen:
        config = {"daemon_address": self.transport.address, "node_id": self.node_id,
                  "head_address": self.head_address, "session_dir": self.session_dir,
                  "arena_name": self.arena_name, "config": self.config}
        proc = subprocess.Popen([sys.executable, "-m", "ownrun.engine.node.zygote", json.dumps(config)],
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
            parts = line.decode().split()
            if parts[0] == "STARTED":
                self.pid_to_worker[int(parts[2])] = bytes.fromhex(parts[1])
            elif parts[0] == "EXITED":
                self.on_worker_exited(int(parts[1]), int(parts[2]))

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
                self.transport.send(w.address, [pack([P.EXIT_WORKER])])
        for owner in decisions.recall:
            self.transport.send(owner, [pack([P.RECALL_LEASES])])

    # ---- clients -------------------------------------------------------------------------
    def _add_client(self, addr, worker_id, pid, kind) -> None:
        fd = process_tools.pidfd(pid) if kind == "driver" else None
        self.clients[addr] = Client(addr, worker_id, pid, kind, fd)
        self.clients_added.append(addr)
        if fd is not None:
            self.transport.watch_fd(fd, ("client", addr))

    def on_register_client(self, h) -> None:
        _, req_id, addr, worker_id, pid, kind = h
        self._add_client(addr, worker_id, pid, kind)
        if self._prestarting() and time.monotonic() < self.started_at + 5.0:
            self.deferred_registrations.append(h)  # answered once the pre-started pool is up
            return
        self._answer_registration(h)

    def _prestarting(self) -> bool:
        return any(w.state == "starting" and w.lease is None for w in self.scheduler.workers.values())

    def _answer_registration(self, h) -> None:
        _, req_id, addr = h[:3]
        self.reply(addr, req_id, {"node_id": self.node_id, "arena_name": self.arena_name,
                                  "store_capacity": self.store_capacity, "head_address": self.head_address,
                                  "session_dir": self.session_dir, "resources": self.resources})

    def on_warm_modules(self, h) -> None:
        """A worker had to import these after it was forked: have the zygote import them."""
        new = [m for m in h[1] if m not in self.warm_modules]
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
        _, worker_id, addr, pid = h
        self._add_client(addr, worker_id, pid, "worker")
        self.apply(self.scheduler.worker_ready(worker_id, addr, pid))
        if self.deferred_registrations and not self._prestarting():
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
                                                          addr, reason])])
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
        for node in self.view.values():
            if node["address"] != self.address and node.get("alive", True):
                self.transport.send(node["address"], notice)

    def _kill(self, worker_id: bytes, reason: str) -> None:
        w = self.scheduler.workers.get(worker_id)
        if w is None or w.pid is None:
            return
        self.kill_reasons.setdefault(worker_id, reason)
        process_tools.kill_pid(w.pid)

    # ---- leases --------------------------------------------------------------------------
    def on_lease_request(self, h) -> None:
        _, owner_addr, owner_id, request_id, resources, for_actor = h[:6]
        hops = h[6] if len(h) > 6 else 0
        if not self.scheduler.feasible(resources):
            target = self._spill_target(resources, need_available=False)
            if target is not None:
                self._spill(owner_addr, request_id, target)
            else:  # maybe a node that fits is joining: wait a little for the head's view
                deadline = time.monotonic() + float(self.config.get("infeasible_timeout", 3.0))
                self.infeasible.append((h, deadline))
            return
        if hops == 0 and not self.scheduler.fits_now(resources):
            target = self._spill_target(resources, need_available=True)
            if target is not None:
                self._spill(owner_addr, request_id, target)
                return
        self.apply(self.scheduler.request(LeaseRequest(owner_addr, owner_id, request_id, resources, for_actor,
                                                       time.monotonic())))

    def spill_waiting(self, now: float) -> None:
        """Requests waiting here for a while go to another node with free resources (one that
        freed up or joined since they arrived)."""
        if not self.scheduler.pending or len(self.view) < 2:
            return
        waiting = self.scheduler.take_waiting(now - 0.2)
        free = {n: dict(v["available"]) for n, v in self.view.items()
                if n != self.node_id and v.get("alive", True)}
        keep = []
        for req in waiting:
            target = None
            for node_id, avail in free.items():
                if all(avail.get(k, 0) >= v - 1e-9 for k, v in req.resources.items() if v > 0):
                    target = node_id
                    for k, v in req.resources.items():  # don't send them all to one free CPU
                        avail[k] = avail.get(k, 0) - v
                    break
            if target is None:
                keep.append(req)
            else:
                self._spill(req.owner_addr, req.request_id, self.view[target]["address"])
        if keep:
            self.scheduler.pending.extendleft(reversed(keep))

    def retry_infeasible(self, now: float) -> None:
        """Re-places lease requests no node could satisfy; fails them after their deadline."""
        waiting, self.infeasible = self.infeasible, []
        for h, deadline in waiting:
            owner_addr, request_id, resources = h[1], h[3], h[4]
            if self.scheduler.feasible(resources) or self._spill_target(resources, False) is not None:
                self.on_lease_request(h)
            elif now >= deadline:
                nodes = {n: v["total"] for n, v in self.view.items() if v.get("alive", True)}
                self.transport.send(owner_addr, [pack([P.LEASE_GRANTED, request_id, None,
                                                       f"no node can satisfy resources {resources}; "
                                                       f"the nodes have {nodes or self.resources}",
                                                       self.node_id, self.address, None])])
            else:
                self.infeasible.append((h, deadline))

    def _spill_target(self, resources: dict, need_available: bool) -> str | None:
        """Another live node whose resources (free ones, if asked) fit the request."""
        best, best_free = None, -1.0
        for node_id, node in self.view.items():
            if node_id == self.node_id or not node.get("alive", True):
                continue
            pool = node["available"] if need_available else node["total"]
            if all(pool.get(k, 0) >= v - 1e-9 for k, v in resources.items() if v > 0):
                free = node["available"].get("CPU", 0)
                if free > best_free:
                    best, best_free = node["address"], free
        return best

    def _spill(self, owner_addr: str, request_id: int, target: str) -> None:
        self.transport.send(owner_addr, [pack([P.LEASE_GRANTED, request_id, None, None, self.node_id,
                                               self.address, target])])

    def on_lease_return(self, h) -> None:
        self.apply(self.scheduler.lease_returned(h[1]))

    def on_lease_cancel(self, h) -> None:
        self.scheduler.cancel(h[1], h[2])

    def on_worker_blocked(self, h) -> None:
        self.apply(self.scheduler.worker_blocked(h[1]))

    def on_worker_unblocked(self, h) -> None:
        self.scheduler.worker_unblocked(h[1])

    def on_kill_worker(self, h) -> None:
        self._kill(h[1], h[2])

    # ---- objects -------------------------------------------------------------------------
    def on_obj_create(self, h) -> None:
        _, req_id, addr, oid, size, owner_addr, writer_id = h
        try:
            placement = self.store.create(oid, size, writer_id)
        except Exception as exc:  # noqa: BLE001 - ObjectStoreFullError and friends go back typed
            self.reply(addr, req_id, [type(exc).__name__, str(exc)], ok=False)
            return
        self.object_owner[oid] = owner_addr
        self.owned_objects.setdefault(owner_addr, set()).add(oid)
        self.reply(addr, req_id, list(placement))

    def on_obj_seal(self, h) -> None:
        try:
            self.store.seal(h[2], h[1])
        except (KeyError, ValueError) as exc:
            log.warning("seal of %s by %s ignored: %s", h[2].hex(), h[1].hex(), exc)

    def on_obj_get(self, h) -> None:
        _, req_id, addr, oid, worker_id = h[:5]
        source = h[5] if len(h) > 5 else None
        placement = self.store.get(oid, worker_id)
        if placement is not None:
            self.reply(addr, req_id, list(placement))
        elif source in self.dead_daemons:
            self.reply(addr, req_id, None)
        elif source and source != self.address and oid not in self.incoming:
            waiting = self.pulls.get(oid)
            if waiting is None:
                self.pulls[oid] = [(addr, req_id, worker_id)]
                self.pull_sources[oid] = source
                self.transport.send(source, [pack([P.OBJ_PULL, self.address, oid])])
            else:
                waiting.append((addr, req_id, worker_id))
        elif oid in self.incoming:
            self.pulls.setdefault(oid, []).append((addr, req_id, worker_id))
        else:
            self.reply(addr, req_id, None)

    # ---- transfer between nodes (pull-based, chunked) --------------------------------------
    def on_obj_pull(self, h) -> None:
        requester, oid = h[1], h[2]
        placement = self.store.get(oid, b"transfer")
        if placement is None:
            self.transport.send(requester, [pack([P.OBJ_CHUNK, oid, 0, -1])])
            return
        try:
            data = self.store.read(oid)
            total = placement.size
            for offset in range(0, max(total, 1), P.CHUNK_SIZE):
                chunk = bytes(data[offset:offset + P.CHUNK_SIZE])
                self.transport.send(requester, [pack([P.OBJ_CHUNK, oid, offset, total]), chunk])
            self.copies.setdefault(oid, set()).add(requester)
        finally:
            self.store.release(oid, b"transfer")

    def on_obj_chunk(self, h) -> None:
        oid, offset, total = h[1], h[2], h[3]
        if total < 0:
            self._finish_pull(oid, ok=False)
            return
        data = self.current_frames[1]
        state = self.incoming.get(oid)
        if state is None:
            if offset != 0:
                return
            try:
                placement = self.store.create(oid, total, b"transfer", primary=False)
            except Exception:  # noqa: BLE001 - store full: the readers get "not found"
                log.exception("cannot receive object %s", oid.hex())
                self._finish_pull(oid, ok=False)
                return
            state = self.incoming[oid] = [placement, 0]
        if not state[0].exists:
            self.arena.write(state[0], [data], offset=offset)
        state[1] += len(data)
        if state[1] >= total:
            del self.incoming[oid]
            self.store.seal(oid, b"transfer")
            self._finish_pull(oid, ok=True)

    def _finish_pull(self, oid: bytes, ok: bool) -> None:
        self.pull_sources.pop(oid, None)
        for addr, req_id, worker_id in self.pulls.pop(oid, []):
            placement = self.store.get(oid, worker_id) if ok else None
            self.reply(addr, req_id, list(placement) if placement is not None else None)

    def on_obj_release(self, h) -> None:
        self.store.release(h[2], h[1])

    def on_obj_free(self, h) -> None:
        forward: dict[str, list] = {}
        for oid in h[1]:
            for daemon in self.copies.pop(oid, ()):
                forward.setdefault(daemon, []).append(oid)
            owner = self.object_owner.pop(oid, None)
            if owner is not None:
                owned = self.owned_objects.get(owner)
                if owned is not None:
                    owned.discard(oid)
            self.store.free(oid)
        for daemon, oids in forward.items():
            self.transport.send(daemon, [pack([P.OBJ_FREE, oids])])

    # ---- cluster membership ------------------------------------------------------------------
    def heartbeat(self) -> None:
        self.transport.send(self.head_address, [pack([P.HEARTBEAT, self.node_id, self.address,
                                                      self.resources, self.scheduler.available,
                                                      self.store.stats()])])
        if self.clients_added or self.clients_removed:
            self.transport.send(self.head_address, [pack([P.NODE_CLIENTS, self.node_id,
                                                          self.clients_added, self.clients_removed])])
            self.clients_added, self.clients_removed = [], []

    def on_cluster_view(self, h) -> None:
        self.view = h[1]
        if self.infeasible:
            self.retry_infeasible(time.monotonic())

    def on_node_died(self, h) -> None:
        """Another node died: its processes owned or borrowed things here."""
        _, node_id, daemon_addr, client_addrs, reason = h
        if daemon_addr in self.dead_daemons:
            return
        self.dead_daemons.add(daemon_addr)
        self.transport.disconnect(daemon_addr)
        if node_id in self.view:
            self.view[node_id]["alive"] = False
        for oid in [o for o, daemons in self.copies.items() if daemon_addr in daemons]:
            self.copies[oid].discard(daemon_addr)
        for oid, source in list(self.pull_sources.items()):
            if source == daemon_addr:  # the copy we were pulling died with its node
                incoming = self.incoming.pop(oid, None)
                if incoming is not None:
                    self.store.abort(oid, b"transfer")
                self._finish_pull(oid, ok=False)
        for addr in client_addrs:
            self._remote_process_gone(addr)
        notice = [pack(h)]
        for client in list(self.clients.values()):
            self.transport.send(client.address, notice)

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
        for worker_id in self.scheduler.owner_died(addr):
            self._kill(worker_id, f"its owner {addr} died")
        self.transport.disconnect(addr)

    # ---- misc ----------------------------------------------------------------------------
    def on_log_lines(self, h) -> None:
        for client in self.clients.values():
            if client.kind == "driver":
                self.transport.send(client.address, [pack(h)])

    def on_stats(self, h) -> None:
        _, req_id, addr = h
        self.reply(addr, req_id, {"node_id": self.node_id, "store": self.store.stats(),
                                  "scheduler": self.scheduler.usage(), "clients": len(self.clients),
                                  "pids": [w.pid for w in self.scheduler.workers.values() if w.pid]
                                  + [self.zygote.pid]})

    def on_shutdown(self, h) -> None:
        self.running = False

    # ---- loop ----------------------------------------------------------------------------
    def run(self) -> None:
        parent_fd = process_tools.watch_parent(self.transport, self.parent_pid)
        self.start_workers(self.scheduler.prestart(int(self.config.get("prestart_workers", 0))))
        next_beat = 0.0
        while self.running:
            now = time.monotonic()
            if now >= next_beat:
                if self.infeasible:
                    self.retry_infeasible(now)
                if self.deferred_registrations and now > self.started_at + 5.0:
                    waiting, self.deferred_registrations = self.deferred_registrations, []
                    for registration in waiting:  # workers are slow to start: don't hold drivers up
                        self._answer_registration(registration)
                if self.scheduler.pending:  # keep asking owners for idle leases while others wait
                    self.spill_waiting(now)
                    self.apply(self.scheduler.schedule())
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
            for frames in messages:
                try:
                    header = unpack(frames[0])
                    self.current_frames = frames
                    self.handlers[header[0]](header)
                except Exception:  # noqa: BLE001 - one bad message must not kill the node
                    log.exception("failed to handle a message")
        self.stop()

    def stop(self) -> None:
        for w in self.scheduler.workers.values():
            if w.pid:
                process_tools.kill_pid(w.pid)
        try:
            self.zygote.kill()
            self.zygote.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
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
    transport = _start_transport(args)
    daemon = NodeDaemon(transport, args)
    signal.signal(signal.SIGTERM, lambda *_: setattr(daemon, "running", False) or transport.wake())
    process_tools.announce_ready(transport.address,
                                 os.path.join(args.session_dir, "logs", f"node-{args.node_id}.log"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s node %(levelname)s %(message)s")
    daemon.run()
    sys.exit(0)


# ---- start-up (owned by the cluster start-up code, not the handlers above) --------------------
def _start_transport(args) -> Transport:
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
