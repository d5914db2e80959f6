"""Worker leases on one node: resources, the worker pool's states, queued lease requests.

Owns the node's resource accounting and the decision of which request gets which worker.
A request is bound to a worker as soon as its resources fit: an idle pooled worker, or a
new worker to start (an actor always gets a new, dedicated worker that it keeps for life).
A leased worker blocked in `get` gives its CPUs (a bundle's, in a placement group) back until it unblocks, so nested tasks
cannot deadlock the node; while it is blocked the node may be oversubscribed.

Idle reaping: the pool keeps at most `max_idle_workers` idle workers, plus any idle for
less than `idle_grace` s (a burst of owners that lease again soon — the video job's owners
between their warm-up and their first frame — finds its workers still there instead of
forking them all again). Past that, the oldest idle worker is not stopped outright: it is asked first (`reap_query`), since a worker that
ran tasks may own objects (a `put` or a child task's result handed out nested in a list) or
have tasks of its own in flight, and stopping it would lose them (OwnerDiedError). While
asked it cannot be leased; it answers with `reap_answer`: may exit -> stopped; may not ->
back in the pool, not asked again for `recheck_period` s (`tick` re-asks and gives up on
unanswered questions). A worker that owns something is therefore never reaped.

Placement group bundles (`set_bundles`, told by the head through the cluster view): a bundle
takes its resources out of the node's pool (held for the group, like a lease that never
ends) and adds them back under its group's names (`placement_resources.bundle_resources`),
which the group's tasks and actors ask for. A bundle is reserved as soon as free resources
fit it, before any queued lease request (it recalls idle leases holding what it needs). A
bundle the head no longer lists is released at once: its names leave the node's total, the
workers leased with them are to be stopped (`BundleChanges.stop`) and requests queued for
them are refused (`BundleChanges.refused`); its own resources go back to the pool.

While requests wait, the owners of leases holding what they need are asked for idle leases
back (`Decisions.recall`) — not for leases of no such resource, and not an owner whose own
requests of the lease's kind are all that waits (it would get the same lease back). An owner
once asked returns its idle leases for RECALL_HOLDS_S (worker/handlers.py), so `due_recalls`
asks each one again at most every RECALL_REPEAT_S: every queued request asked every holder,
and 60 owners with requests waiting got thousands of recalls a second (a herd of wake-ups).

Does no I/O: methods return the decisions (grants to send, workers to start, owners to
ask for idle leases back) for the daemon to carry out. Not thread-safe (daemon thread).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..placement_resources import bundle_resources, is_group_resource

STARTING, IDLE, LEASED, DEAD = "starting", "idle", "leased", "dead"
REAP_QUERIED = "reap_queried"  # idle, asked whether it may exit (owns nothing): not leasable
RETIRED = "retired"  # ran its function's max_calls but owns objects in use: never leased again
RECALL_HOLDS_S = 0.5  # an owner asked for its leases back returns idle ones for this long
RECALL_REPEAT_S = 0.2  # so asking again sooner than this changes nothing


@dataclass(slots=True, eq=False)
class LeaseRequest:
    owner_addr: str
    owner_id: bytes
    request_id: int
    resources: dict
    for_actor: bool
    hops: int = 0  # 1: spilled here by another node (never spilled again for being busy)
    queued_at: float = 0.0  # when it was queued here (set by `Spillback`)
    detached: bool = False  # a detached actor's: its worker outlives the owner
    placement: dict = field(default_factory=dict)  # needed on a node to be placed there, not held
    pinned: bool = False  # NodeAffinitySchedulingStrategy(soft=False): this node or none, never spilled
    soft_affinity: bool = False  # NodeAffinitySchedulingStrategy(soft=True): not spilled for being busy

    def to_place(self) -> dict:
        """What a node must have to be chosen: the resources, or more where `placement` says
        (a default actor: 1 CPU to place, 0 to run, as in Ray)."""
        if not self.placement:
            return self.resources
        needed = dict(self.resources)
        for name, amount in self.placement.items():
            needed[name] = max(amount, needed.get(name, 0))
        return needed


@dataclass(slots=True, eq=False)
class WorkerState:
    worker_id: bytes
    state: str = STARTING
    address: str | None = None
    pid: int | None = None
    lease: LeaseRequest | None = None  # set while leased or bound while starting
    blocked: int = 0  # nesting depth of get() calls blocking this worker
    dedicated: bool = False  # an actor's worker: never returns to the pool
    queried_at: float | None = None  # when it was asked whether it may exit (REAP_QUERIED)
    kept_at: float | None = None  # when it last answered that it owns objects or tasks
    idle_since: float = 0.0  # when it last went idle (reaped only after `idle_grace` s of that)
    retired: bool = False  # it ran a function's max_calls: it exits once it may, never leased again


@dataclass(slots=True)
class Decisions:
    grants: list = field(default_factory=list)  # (LeaseRequest, WorkerState)
    start: list = field(default_factory=list)  # worker ids to start
    stop: list = field(default_factory=list)  # idle worker ids to stop
    recall: set = field(default_factory=set)  # owner addresses to ask for idle leases
    reap_query: list = field(default_factory=list)  # idle worker ids to ask "may you exit?"


@dataclass(slots=True)
class BundleChanges:
    decisions: Decisions = field(default_factory=Decisions)
    stop: list = field(default_factory=list)  # worker ids leased in released bundles: stop them
    refused: list = field(default_factory=list)  # queued LeaseRequests whose bundle was released


def _is_cpu(name: str) -> bool:
    """CPUs, a placement group bundle's included (what a worker blocked in get gives back)."""
    return name == "CPU" or name.startswith("CPU_group_")


def _cpus(resources: dict) -> dict:
    return {k: v for k, v in resources.items() if _is_cpu(k)}


def _without_cpus(resources: dict) -> dict:
    return {k: v for k, v in resources.items() if not _is_cpu(k)}


def _request_kind(req: LeaseRequest) -> tuple:
    """What tells requests apart for recalls: the owner and what it asked for."""
    return (req.owner_addr, tuple(sorted(req.resources.items())), req.for_actor, req.pinned, req.soft_affinity,
            tuple(sorted(req.placement.items())) if req.placement else ())


def _holds_any(resources: dict, names: set) -> bool:
    for name in names:
        if resources.get(name, 0) > 0:
            return True
    return False


class LeaseScheduler:
    def __init__(self, total: dict, new_worker_id, max_idle_workers: int,
                 recheck_period: float = 5.0, query_timeout: float = 10.0, idle_grace: float = 0.0):
        self.total = dict(total)
        self.available = dict(total)
        self.pending: deque[LeaseRequest] = deque()
        self.workers: dict[bytes, WorkerState] = {}
        self.idle: list[bytes] = []  # oldest first; leases take the newest
        self._new_worker_id = new_worker_id
        self.max_idle_workers = max_idle_workers
        self.idle_grace = idle_grace  # an idle worker is not reaped before this many seconds idle
        self.recheck_period = recheck_period  # an owner that said "no" is asked again after this
        self.query_timeout = query_timeout  # an unanswered question counts as "no" after this
        self.bundles: dict[tuple, dict] = {}  # (pg hex, index) -> resources it holds out of the pool
        self.wanted_bundles: dict[tuple, dict] = {}  # told to hold, waiting for resources to fit
        self.draining: set[str] = set()  # names of released bundles some lease may still hold
        self.bundles_changed = 0  # bumped when `bundles` changes (the daemon beats at once)
        self.reaped = 0  # idle workers stopped (they owned nothing)
        self.kept_owners = 0  # answers "I own objects or tasks": kept in the pool
        self.recalled_at: dict[str, float] = {}  # owner -> when it was last asked for leases

    # ---- resources ---------------------------------------------------------------------
    def _fits(self, resources: dict) -> bool:
        for name, amount in resources.items():
            if amount > 0 and self.available.get(name, 0) < amount - 1e-9:
                return False
        return True

    def fits_free(self, resources: dict) -> bool:
        """Free resources fit the request now (requests waiting or not)."""
        return self._fits(resources)

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

    # ---- placement group bundles ---------------------------------------------------------
    def set_bundles(self, desired: list) -> BundleChanges:
        """The head's list of bundles this node is to hold ([[pg hex, index, resources]]):
        releases those not in it, reserves the new ones as they fit."""
        out = BundleChanges()
        want = {(pg_hex, index): resources for pg_hex, index, resources in desired}
        released = [key for key in self.bundles if key not in want]
        for key in released:
            self._release_bundle(key)
        self.wanted_bundles = {k: v for k, v in want.items() if k not in self.bundles}
        if released:
            gone = {n for n, total in self.total.items() if is_group_resource(n) and total <= 1e-9}
            out.refused = [r for r in self.pending if _holds_any(r.resources, gone)]
            for w in self.workers.values():
                if w.lease is None or not _holds_any(w.lease.resources, gone):
                    continue
                if w.state == STARTING:  # unbound: it joins the pool when ready, its request is refused
                    self._release(w.lease.resources)
                    out.refused.append(w.lease)
                    w.lease, w.dedicated = None, False
                elif w.state == LEASED:
                    out.stop.append(w.worker_id)
            if out.refused:
                self.pending = deque(r for r in self.pending if not _holds_any(r.resources, gone))
            self.draining |= gone
            self._forget_drained()
        self._schedule_into(out.decisions)
        return out

    def _forget_drained(self) -> None:
        """Drops the names of released bundles that no lease holds any more."""
        held = {n for w in self.workers.values() if w.lease is not None for n in w.lease.resources}
        for name in [n for n in self.draining if n not in held]:
            self.draining.discard(name)
            if abs(self.total.get(name, 0.0)) < 1e-9:  # (a bundle of that name may be back)
                self.total.pop(name, None)
                self.available.pop(name, None)

    def _release_bundle(self, key: tuple) -> None:
        """Its names leave the pool (a lease still holding one leaves `available` below zero
        until it ends: nothing else fits there meanwhile); its resources come back."""
        resources = self.bundles.pop(key)
        self._add_group_names(key, resources, -1)
        self._release(resources)

    def _add_group_names(self, key: tuple, resources: dict, sign: int) -> None:
        """Adds (+1) or takes away (-1) bundle `key`'s names to the node's total and free resources."""
        for name, amount in bundle_resources(key[0], key[1], resources).items():
            self.total[name] = self.total.get(name, 0.0) + sign * amount
            self.available[name] = self.available.get(name, 0.0) + sign * amount
        self.bundles_changed += 1

    def _reserve_bundles(self, out: Decisions) -> None:
        for key, resources in list(self.wanted_bundles.items()):
            if not self._fits(resources):  # idle leases holding what it needs: asked back
                self._recall_holders({n for n, amount in resources.items() if amount > 0}, out)
                continue
            del self.wanted_bundles[key]
            self._acquire(resources)
            self.bundles[key] = resources
            self._add_group_names(key, resources, +1)

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

    def lease_returned(self, worker_id: bytes, now: float = 0.0, retire: bool = False) -> Decisions:
        """The owner gave the worker back; `retire` (it ran its function's `max_calls`): not to be
        leased again — asked at once whether it may exit (kept, and leasable, while it owns
        objects others use: stopping it would lose them)."""
        out = Decisions()
        w = self.workers.get(worker_id)
        if w is None or w.state != LEASED or w.lease is None:  # (a repeated return of an actor's)
            return out
        if not w.blocked:
            self._release(w.lease.resources)
        else:  # its CPUs were given back when it blocked; the rest are still held
            self._release(_without_cpus(w.lease.resources))
        w.lease, w.blocked = None, 0
        if self.draining:
            self._forget_drained()
        if w.dedicated:
            return out
        if retire:
            w.retired = True
            self._ask_to_exit(w, now, out)
            self._schedule_into(out)
            return out
        w.state, w.idle_since = IDLE, now
        self.idle.append(worker_id)
        self._schedule_into(out)
        self._trim_pool(out, now)
        return out

    def reap_answer(self, worker_id: bytes, may_exit: bool, now: float) -> Decisions:
        """The idle worker asked by `reap_query` answered: it owns nothing (`may_exit`) or not."""
        out = Decisions()
        w = self.workers.get(worker_id)
        if w is None or w.state != REAP_QUERIED:
            return out
        w.queried_at = None
        if may_exit:
            w.state = DEAD
            self.reaped += 1
            out.stop.append(worker_id)
            return out
        self.kept_owners += 1
        self._keep(w, now)
        self._schedule_into(out)
        self._trim_pool(out, now)
        return out

    def tick(self, now: float) -> Decisions:
        """Time passed: unanswered questions count as "no"; owners kept long enough are asked again."""
        out = Decisions()
        for w in self.workers.values():
            if w.state == REAP_QUERIED and now - w.queried_at >= self.query_timeout:
                w.queried_at = None
                self._keep(w, now)
            elif w.state == RETIRED and now - w.kept_at >= self.recheck_period:
                self._ask_to_exit(w, now, out)
        self._schedule_into(out)
        self._trim_pool(out, now)
        return out

    def _keep(self, w: WorkerState, now: float) -> None:
        if w.retired:  # asked again after the recheck period (`tick`), never leased
            w.state, w.kept_at = RETIRED, now
            return
        w.state, w.kept_at = IDLE, now
        self.idle.append(w.worker_id)  # newest: leased first, as it stays anyway

    @staticmethod
    def _ask_to_exit(w: WorkerState, now: float, out: Decisions) -> None:
        """Asks `w` (not leasable meanwhile) whether it owns nothing and may exit."""
        w.state, w.queried_at = REAP_QUERIED, now
        out.reap_query.append(w.worker_id)

    def _trim_pool(self, out: Decisions, now: float) -> None:
        """Asks the oldest idle workers over the pool's limit whether they may exit."""
        excess = len(self.idle) - self.max_idle_workers
        if excess <= 0:
            return
        for worker_id in list(self.idle):
            w = self.workers[worker_id]
            if w.kept_at is not None and now - w.kept_at < self.recheck_period:
                continue
            if now - w.idle_since < self.idle_grace:
                continue
            self.idle.remove(worker_id)
            self._ask_to_exit(w, now, out)
            excess -= 1
            if excess == 0:
                return

    def worker_blocked(self, worker_id: bytes) -> Decisions:
        w = self.workers.get(worker_id)
        if w is None or w.state != LEASED or w.lease is None:  # (an actor's worker after its lease)
            return Decisions()
        w.blocked += 1
        if w.blocked == 1:
            self._release(_cpus(w.lease.resources))
        return self.schedule()

    def worker_unblocked(self, worker_id: bytes) -> Decisions:
        w = self.workers.get(worker_id)
        if w is not None and w.state == LEASED and w.blocked:
            w.blocked -= 1
            if w.blocked == 0:
                self._acquire(_cpus(w.lease.resources))
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
                self._release(_without_cpus(w.lease.resources))
        w.state = DEAD
        if self.draining:
            self._forget_drained()
        self._schedule_into(out)
        return w, out

    def due_recalls(self, owners, now: float) -> list[str]:
        """The owners of `owners` (a decision's recall) not asked within RECALL_REPEAT_S."""
        due = [o for o in owners if now - self.recalled_at.get(o, -RECALL_REPEAT_S) >= RECALL_REPEAT_S]
        for owner in due:
            self.recalled_at[owner] = now
        if len(self.recalled_at) > 4 * len(self.workers) + 64:  # owners long gone or satisfied
            self.recalled_at = {o: t for o, t in self.recalled_at.items() if now - t < RECALL_HOLDS_S}
        return due

    def owner_died(self, owner_addr: str) -> list[bytes]:
        """Drops the dead owner's queued requests and unbinds workers still starting for it
        (their resources are free again; they join the pool when ready); returns the workers
        leased to it (to stop), except detached actors' workers, which outlive their owner."""
        self.recalled_at.pop(owner_addr, None)
        self.pending = deque(r for r in self.pending if r.owner_addr != owner_addr)
        for w in self.workers.values():
            if w.state == STARTING and w.lease is not None and w.lease.owner_addr == owner_addr \
                    and not w.lease.detached:
                self._release(w.lease.resources)
                w.lease, w.dedicated = None, False
        return [w.worker_id for w in self.workers.values()
                if w.lease is not None and w.lease.owner_addr == owner_addr and not w.lease.detached]

    # ---- the decision ----------------------------------------------------------------------
    def schedule(self) -> Decisions:
        out = Decisions()
        self._schedule_into(out)
        return out

    def _schedule_into(self, out: Decisions) -> None:
        if self.wanted_bundles:  # before any request: a group waits for no task to start
            self._reserve_bundles(out)
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
            self._recall_for(kept, out)

    def _recall_for(self, waiting: deque, out: Decisions) -> None:
        """Asks back idle leases holding what the waiting requests need. Not a lease of no CPU
        (or of other resources): it frees nothing for them, and recalling every owner at each
        queued request woke all of them in a herd (issue 8 §3). Not a lease whose owner alone
        waits for that resource, with requests like the lease's own (same resources, a normal
        task's): the owner would give it back only to be granted it again — after a burst of
        tasks left requests queued, a loop of sync calls gave back and asked again for its
        lease after 4 calls in 10 for the next half second."""
        wanted: dict[str, set] = {}  # resource -> kinds of the requests waiting for it
        for req in waiting:
            kind = _request_kind(req)
            for name, amount in req.resources.items():
                if amount > 0:
                    wanted.setdefault(name, set()).add(kind)
        for w in self.workers.values():
            if w.state != LEASED or w.dedicated:
                continue
            own = None
            for name, amount in w.lease.resources.items():
                askers = wanted.get(name) if amount > 0 else None
                if askers:
                    own = own or _request_kind(w.lease)
                    if len(askers) > 1 or own not in askers:
                        out.recall.add(w.lease.owner_addr)
                        break

    def _recall_holders(self, needed: set, out: Decisions) -> None:
        """Asks the owners of leases (not actors') holding any of `needed` to give idle ones back."""
        for w in self.workers.values():
            if w.state == LEASED and not w.dedicated and _holds_any(w.lease.resources, needed):
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

    def prestarting(self) -> bool:
        """Pre-started workers (not bound to a request) are still starting."""
        return any(w.state == STARTING and w.lease is None for w in self.workers.values())

    def usage(self) -> dict:
        counts: dict[str, int] = {}
        for w in self.workers.values():
            counts[w.state] = counts.get(w.state, 0) + 1
        return {"total": self.total, "available": self.available, "workers": counts,
                "pending_leases": len(self.pending), "reaped": self.reaped,
                "kept_owners": self.kept_owners}

    # ---- invariants (checked after every step in the unit tests) ----------------------------
    def validate_state(self) -> None:
        assert len(self.idle) == len(set(self.idle)), "a worker is twice in the idle list"
        assert set(self.idle) == {i for i, w in self.workers.items() if w.state == IDLE}, \
            "the idle list and the idle workers differ"
        held: dict[str, float] = {}
        for resources in self.bundles.values():  # reserved for placement groups
            for name, amount in resources.items():
                held[name] = held.get(name, 0) + amount
        assert not set(self.bundles) & set(self.wanted_bundles), "a bundle both held and wanted"
        for worker_id, w in self.workers.items():
            assert w.worker_id == worker_id
            assert w.state != DEAD or w.lease is None, "a stopped worker holds a lease"
            if w.state in (IDLE, REAP_QUERIED, RETIRED):
                assert w.lease is None and not w.blocked and not w.dedicated
            assert w.state != RETIRED or w.retired, "a worker retired without max_calls"
            assert (w.state == REAP_QUERIED) == (w.queried_at is not None)
            if w.state == LEASED:  # an actor's worker keeps its state after its lease ends
                assert w.address is not None and (w.lease is not None or w.dedicated)
            if w.blocked:
                assert w.state == LEASED
            if w.lease is not None and w.state in (STARTING, LEASED):
                assert w.dedicated == w.lease.for_actor
                for name, amount in w.lease.resources.items():
                    if not (w.blocked and _is_cpu(name)):
                        held[name] = held.get(name, 0) + amount
        for name in set(self.total) | set(held) | set(self.available):
            total = self.total.get(name, 0)
            accounted = self.available.get(name, 0) + held.get(name, 0)
            assert abs(total - accounted) < 1e-6, f"{name}: {accounted} accounted of {total}"
        leased = {id(w.lease) for w in self.workers.values() if w.lease is not None}
        assert not any(id(r) in leased for r in self.pending), "a request is both queued and bound"
