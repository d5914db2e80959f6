"""Worker leases on one node: resources, the worker pool's states, queued lease requests.

Owns the node's resource accounting and the decision of which request gets which worker.
A request is bound to a worker as soon as its resources fit: an idle pooled worker, or a
new worker to start (an actor always gets a new, dedicated worker that it keeps for life).
A leased worker blocked in `get` gives its CPUs back until it unblocks, so nested tasks
cannot deadlock the node; while it is blocked the node may be oversubscribed.

Does no I/O: methods return the decisions (grants to send, workers to start, owners to
ask for idle leases back) for the daemon to carry out. Not thread-safe (daemon thread).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

STARTING, IDLE, LEASED, DEAD = "starting", "idle", "leased", "dead"


@dataclass(slots=True, eq=False)
class LeaseRequest:
    owner_addr: str
    owner_id: bytes
    request_id: int
    resources: dict
    for_actor: bool
    queued_at: float = 0.0  # when the daemon queued it (set by the daemon)


@dataclass(slots=True, eq=False)
class WorkerState:
    worker_id: bytes
    state: str = STARTING
    address: str | None = None
    pid: int | None = None
    lease: LeaseRequest | None = None  # set while leased or bound while starting
    blocked: int = 0  # nesting depth of get() calls blocking this worker
    dedicated: bool = False  # an actor's worker: never returns to the pool


@dataclass(slots=True)
class Decisions:
    grants: list = field(default_factory=list)  # (LeaseRequest, WorkerState)
    start: list = field(default_factory=list)  # worker ids to start
    stop: list = field(default_factory=list)  # idle worker ids to stop
    recall: set = field(default_factory=set)  # owner addresses to ask for idle leases


class LeaseScheduler:
    def __init__(self, total: dict, new_worker_id, max_idle_workers: int):
        self.total = dict(total)
        self.available = dict(total)
        self.pending: deque[LeaseRequest] = deque()
        self.workers: dict[bytes, WorkerState] = {}
        self.idle: list[bytes] = []
        self._new_worker_id = new_worker_id
        self.max_idle_workers = max_idle_workers

    # ---- resources ---------------------------------------------------------------------
    def _fits(self, resources: dict) -> bool:
        for name, amount in resources.items():
            if amount > 0 and self.available.get(name, 0) < amount - 1e-9:
                return False
        return True

    def fits_now(self, resources: dict) -> bool:
        """Free resources fit the request now (and no earlier request is waiting)."""
        return not self.pending and self._fits(resources)

    def feasible(self, resources: dict) -> bool:
        return all(self.total.get(n, 0) >= a - 1e-9 for n, a in resources.items() if a > 0)

    def _acquire(self, resources: dict) -> None:
        for name, amount in resources.items():
            self.available[name] = self.available.get(name, 0) - amount

    def _release(self, resources: dict) -> None:
        for name, amount in resources.items():
            self.available[name] = self.available.get(name, 0) + amount

    # ---- events ------------------------------------------------------------------------
    def request(self, req: LeaseRequest) -> Decisions:
        self.pending.append(req)
        return self.schedule()

    def cancel(self, owner_addr: str, request_id: int) -> Decisions:
        for req in self.pending:
            if req.owner_addr == owner_addr and req.request_id == request_id:
                self.pending.remove(req)
                break
        return Decisions()

    def worker_ready(self, worker_id: bytes, address: str, pid: int) -> Decisions:
        out = Decisions()
        w = self.workers.get(worker_id)
        if w is None or w.state != STARTING:
            return out
        w.address, w.pid = address, pid
        if w.lease is not None:
            w.state = LEASED
            out.grants.append((w.lease, w))
        else:
            w.state = IDLE
            self.idle.append(worker_id)
            self._schedule_into(out)
        return out

    def lease_returned(self, worker_id: bytes) -> Decisions:
        out = Decisions()
        w = self.workers.get(worker_id)
        if w is None or w.state != LEASED:
            return out
        if not w.blocked:
            self._release(w.lease.resources)
        else:  # its CPUs were given back when it blocked; the rest are still held
            self._release({k: v for k, v in w.lease.resources.items() if k != "CPU"})
        w.lease, w.blocked = None, 0
        if w.dedicated:
            return out
        w.state = IDLE
        self.idle.append(worker_id)
        self._schedule_into(out)
        if len(self.idle) > self.max_idle_workers:
            extra = self.idle.pop(0)
            self.workers[extra].state = DEAD
            out.stop.append(extra)
        return out

    def worker_blocked(self, worker_id: bytes) -> Decisions:
        w = self.workers.get(worker_id)
        if w is None or w.state != LEASED:
            return Decisions()
        w.blocked += 1
        if w.blocked == 1:
            self._release({k: v for k, v in w.lease.resources.items() if k == "CPU"})
        return self.schedule()

    def worker_unblocked(self, worker_id: bytes) -> Decisions:
        w = self.workers.get(worker_id)
        if w is not None and w.state == LEASED and w.blocked:
            w.blocked -= 1
            if w.blocked == 0:
                self._acquire({k: v for k, v in w.lease.resources.items() if k == "CPU"})
        return Decisions()

    def worker_died(self, worker_id: bytes) -> tuple[WorkerState | None, Decisions]:
        w = self.workers.pop(worker_id, None)
        out = Decisions()
        if w is None:
            return None, out
        if w.state == IDLE and worker_id in self.idle:
            self.idle.remove(worker_id)
        if w.lease is not None:
            if w.state == STARTING:
                self._release(w.lease.resources)
                self.pending.appendleft(w.lease)  # start another worker for it
            elif not w.blocked:
                self._release(w.lease.resources)
            else:
                self._release({k: v for k, v in w.lease.resources.items() if k != "CPU"})
        w.state = DEAD
        self._schedule_into(out)
        return w, out

    def owner_died(self, owner_addr: str) -> list[bytes]:
        """Drops the dead owner's queued requests; returns workers leased to it (to stop)."""
        self.pending = deque(r for r in self.pending if r.owner_addr != owner_addr)
        return [w.worker_id for w in self.workers.values()
                if w.lease is not None and w.lease.owner_addr == owner_addr]

    # ---- the decision ----------------------------------------------------------------------
    def schedule(self) -> Decisions:
        out = Decisions()
        self._schedule_into(out)
        return out

    def _schedule_into(self, out: Decisions) -> None:
        if not self.pending:
            return
        kept: deque[LeaseRequest] = deque()
        # Requests from owners blocked in get() go first: their children finishing is what
        # frees the node (depth-first), instead of starting yet more blocked parents.
        blocked = {w.address for w in self.workers.values() if w.blocked}
        if blocked:
            first = [r for r in self.pending if r.owner_addr in blocked]
            if first:
                self.pending = deque(first + [r for r in self.pending if r.owner_addr not in blocked])
        while self.pending:
            req = self.pending.popleft()
            if not self._fits(req.resources):
                kept.append(req)
                continue
            self._acquire(req.resources)
            if not req.for_actor and self.idle:
                w = self.workers[self.idle.pop()]
                w.state, w.lease = LEASED, req
                out.grants.append((req, w))
            else:
                worker_id = self._new_worker_id()
                w = WorkerState(worker_id, lease=req, dedicated=req.for_actor)
                self.workers[worker_id] = w
                out.start.append(worker_id)
        self.pending = kept
        if kept:
            for w in self.workers.values():
                if w.state == LEASED and not w.dedicated:
                    out.recall.add(w.lease.owner_addr)

    def take_waiting(self, older_than: float) -> list[LeaseRequest]:
        """Removes and returns requests queued before `older_than` (to spill elsewhere)."""
        old = [r for r in self.pending if r.queued_at < older_than]
        if old:
            self.pending = deque(r for r in self.pending if r.queued_at >= older_than)
        return old

    def prestart(self, count: int) -> list[bytes]:
        ids = []
        for _ in range(count):
            worker_id = self._new_worker_id()
            self.workers[worker_id] = WorkerState(worker_id)
            ids.append(worker_id)
        return ids

    def usage(self) -> dict:
        counts: dict[str, int] = {}
        for w in self.workers.values():
            counts[w.state] = counts.get(w.state, 0) + 1
        return {"total": self.total, "available": self.available, "workers": counts,
                "pending_leases": len(self.pending)}
