"""Where a lease request goes: this node, another node (spillback), or waits for one that fits.

Owns the node's copy of the head's cluster view and the requests no node can satisfy yet.
Rules, in order, for a request arriving at this node (`request`):

0. Pinned here (`NodeAffinitySchedulingStrategy(node, soft=False)`) -> it queues here if this
   node's total resources fit it, else it is rejected naming the node; it is never spilled.

Nodes are chosen by what a request needs to be placed (`LeaseRequest.to_place()`: a default
actor needs 1 CPU on the node, as in Ray, yet holds none); a node grants what it holds.

1. No node fits it at all -> another live node whose total resources fit it, else it waits
   for a node that fits to join (as Ray does; the first request of each such shape yields a
   one-line warning naming it, for the daemon to show the owner). With `infeasible_timeout`
   set, it is rejected after that many seconds with the nodes' resources in the message.
2. An actor that needs no CPU to run (a default actor, or `num_cpus=0`), sent here by an
   owner -> the live node, this one included, with the fewest actors placed whose free
   resources fit it (ties: this node, then the view's order). Such actors hold nothing the
   resource accounting sees, so without this rule every actor of an owner landed on the
   owner's node (issue 11 §5). The counts are this daemon's: the actors it placed on each
   node (here: also those other daemons sent here), never decreased when one exits, so
   placement is a round robin that actors exiting cannot tilt toward this node; exact for one
   creator's burst, an estimate across creators.
3. Sent here by an owner (not spilled here already) while this node is busy (its free
   resources do not fit, or earlier requests wait) -> the live node with the most free CPUs
   whose free resources fit it, if any. Not a request with soft node affinity to this node
   (`NodeAffinitySchedulingStrategy(node, soft=True)`): as in Ray, it waits here while the
   node is busy, and goes elsewhere only by rule 1 (or, from its owner, if the node dies).
4. Else it queues in the local `LeaseScheduler`.

And over time (`tick`, `view_changed`): waiting infeasible requests are placed once a node
fits, and requests queued here longer than `spill_after` s go to nodes that have the free
resources now (each spilled request counts against the target's free resources, so a
burst is not sent to a single free CPU) — not pinned or soft-affinity ones.

A request for a placement group's resources waits (as infeasible, without a warning) until
the group's bundles are held somewhere; one for a group the head removed (the view's
`removed_groups`) is rejected.

A node the head suspects (silent for its suspect timeout; `suspect` in the view) is no
target: no new leases go to it until it beats again, while its running work goes on.

Does no I/O and reads no clock: methods take `now` and return a `Placement` (spills,
rejections and the local scheduler's `Decisions`) for the daemon to carry out. Not
thread-safe (daemon thread).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import errors
from ..placement_resources import group_of, is_group_resource
from .scheduler import Decisions, LeaseRequest, LeaseScheduler


@dataclass(slots=True)
class Placement:
    spill: list = field(default_factory=list)  # (LeaseRequest, daemon address): ask there
    reject: list = field(default_factory=list)  # (LeaseRequest, message): no node can run it
    warn: list = field(default_factory=list)  # (LeaseRequest, message): it waits for a node that fits
    local: Decisions = field(default_factory=Decisions)  # the local scheduler's decisions


def _fits(pool: dict, resources: dict) -> bool:
    return all(pool.get(k, 0) >= v - 1e-9 for k, v in resources.items() if v > 0)


def _takes_leases(node: dict) -> bool:
    """Alive and not suspected by the head (the cluster view says)."""
    return node.get("alive", True) and not node.get("suspect", False)


class Spillback:
    def __init__(self, node_id: str, scheduler: LeaseScheduler, infeasible_timeout: float | None = None,
                 spill_after: float = 0.2):
        self.node_id = node_id
        self.scheduler = scheduler
        self.infeasible_timeout = infeasible_timeout
        self.spill_after = spill_after
        self.view: dict[str, dict] = {}  # node_id -> {address, total, available, alive}
        self.infeasible: list[tuple[LeaseRequest, float]] = []  # (request, deadline)
        self.warned: set = set()  # infeasible resource shapes the owners were warned about
        self.actors_placed: dict[str, int] = {}  # node id -> actors this daemon placed there (rule 2)
        self.removed_groups: frozenset = frozenset()  # hex ids of placement groups the head removed

    # ---- events ------------------------------------------------------------------------
    def request(self, req: LeaseRequest, now: float) -> Placement:
        out = Placement()
        timeout = self.infeasible_timeout
        self._place(req, now, out, deadline=now + timeout if timeout is not None else float("inf"))
        return out

    def view_changed(self, view: dict, now: float) -> Placement:
        self.view = view
        mine = view.get(self.node_id)
        if mine is not None:
            self.removed_groups = frozenset(mine.get("removed_groups") or ())
        out = Placement()
        if self.infeasible:
            self._retry_infeasible(now, out)
        return out

    def node_died(self, node_id: str) -> None:
        node = self.view.get(node_id)
        if node is not None:
            node["alive"] = False
        self.actors_placed.pop(node_id, None)

    def owner_died(self, owner_addr: str) -> None:
        self.infeasible = [(r, d) for r, d in self.infeasible if r.owner_addr != owner_addr]

    def tick(self, now: float) -> Placement:
        """Time passed: place or reject waiting infeasible requests, spill long-waiting ones,
        then the local scheduler's tick (which asks owners for idle leases while requests wait)."""
        out = Placement()
        if self.infeasible:
            self._retry_infeasible(now, out)
        if self.scheduler.pending:
            self._spill_waiting(now, out)
        self._merge(out, self.scheduler.tick(now))
        return out

    # ---- the decisions -----------------------------------------------------------------------
    def _place(self, req: LeaseRequest, now: float, out: Placement, deadline: float) -> None:
        removed = self._removed_group(req)
        if removed is not None:
            out.reject.append((req, f"{errors.PLACEMENT_GROUP_REMOVED} (placement group {removed})"))
            return
        if req.pinned:  # rule 0
            if not self.scheduler.feasible(req.to_place()):
                out.reject.append((req, f"NodeAffinitySchedulingStrategy(soft=False) names node {self.node_id}, "
                                        f"which has {self.scheduler.total}, not {req.to_place()}"))
                return
            req.queued_at = now
            self._merge(out, self.scheduler.request(req))
            return
        if not self.scheduler.feasible(req.to_place()):
            target = self.target(req.to_place(), need_available=False)
            if target is not None:
                out.spill.append((req, target))
            else:  # wait for a node that fits to join (the head's view tells)
                self.infeasible.append((req, deadline))
                shape = tuple(sorted((k, v) for k, v in req.to_place().items() if v > 0))
                if shape not in self.warned and not any(is_group_resource(k) for k, _ in shape):
                    # (a placement group's request waits for its group without a warning, as in Ray)
                    self.warned.add(shape)
                    out.warn.append((req, f"a request for {dict(shape)} cannot be scheduled right now: no node "
                                          f"has these resources (nodes: {self._totals()}); it waits for "
                                          f"one that fits to join"))
            return
        if req.hops == 0 and req.for_actor and not req.resources.get("CPU") and not req.soft_affinity:
            node_id = self.spread_target(req.to_place())
            if node_id is not None:
                self.actors_placed[node_id] = self.actors_placed.get(node_id, 0) + 1
                out.spill.append((req, self.view[node_id]["address"]))
                return
        elif req.hops == 0 and not req.soft_affinity and not self.scheduler.fits_now(req.resources):
            target = self.target(req.to_place(), need_available=True)
            if target is not None:
                out.spill.append((req, target))
                return
        req.queued_at = now
        if req.for_actor:
            self.actors_placed[self.node_id] = self.actors_placed.get(self.node_id, 0) + 1
        self._merge(out, self.scheduler.request(req))

    def _removed_group(self, req: LeaseRequest) -> str | None:
        """The hex id of the removed placement group the request asks resources of, if any."""
        if not self.removed_groups:
            return None
        group = group_of(req.resources)
        return group if group in self.removed_groups else None

    def target(self, resources: dict, need_available: bool) -> str | None:
        """Another live, unsuspected node whose resources (free ones, if asked) fit; most free
        CPUs first. A suspect node (silent for the head's suspect timeout) gets no new leases."""
        best, best_free = None, -1.0
        for node_id, node in self.view.items():
            if node_id == self.node_id or not _takes_leases(node):
                continue
            if _fits(node["available"] if need_available else node["total"], resources):
                free = node["available"].get("CPU", 0)
                if free > best_free:
                    best, best_free = node["address"], free
        return best

    def spread_target(self, resources: dict) -> str | None:
        """Rule 2: the node id of another live node with fewer actors placed than this one (and
        than every other candidate) whose free resources fit; None: place it here (or, if it
        does not fit here, as any other request)."""
        placed = self.actors_placed
        here = placed.get(self.node_id, 0) if self.scheduler.fits_free(resources) else None
        best, fewest = None, here
        for node_id, node in self.view.items():
            if node_id == self.node_id or not node.get("alive", True) or node.get("suspect"):
                continue
            if not _fits(node["available"], resources):
                continue
            count = placed.get(node_id, 0)
            if fewest is None or count < fewest:
                best, fewest = node_id, count
        return best

    def _retry_infeasible(self, now: float, out: Placement) -> None:
        waiting, self.infeasible = self.infeasible, []
        for req, deadline in waiting:
            if self.scheduler.feasible(req.to_place()) or self.target(req.to_place(), False) is not None \
                    or self._removed_group(req) is not None:
                self._place(req, now, out, deadline)
            elif now >= deadline:
                out.reject.append((req, f"no node can satisfy resources {req.to_place()}; "
                                        f"the nodes have {self._totals()}"))
            else:
                self.infeasible.append((req, deadline))

    def _totals(self) -> dict:
        nodes = {n: v["total"] for n, v in self.view.items() if v.get("alive", True)}
        return nodes or {self.node_id: self.scheduler.total}

    def _spill_waiting(self, now: float, out: Placement) -> None:
        """Requests waiting here for a while go to another node with free resources (one that
        freed up or joined since they arrived)."""
        if len(self.view) < 2:
            return
        waiting = self.scheduler.take_waiting(now - self.spill_after)
        free = {n: dict(v["available"]) for n, v in self.view.items()
                if n != self.node_id and _takes_leases(v)}
        keep = []
        for req in waiting:
            if req.pinned or req.soft_affinity:
                keep.append(req)
                continue
            for node_id, avail in free.items():
                if _fits(avail, req.to_place()):
                    for k, v in req.to_place().items():  # don't send them all to one free CPU
                        avail[k] = avail.get(k, 0) - v
                    out.spill.append((req, self.view[node_id]["address"]))
                    break
            else:
                keep.append(req)
        if keep:
            self.scheduler.pending.extendleft(reversed(keep))

    @staticmethod
    def _merge(out: Placement, decisions: Decisions) -> None:
        local = out.local
        local.grants += decisions.grants
        local.start += decisions.start
        local.stop += decisions.stop
        local.recall |= decisions.recall
        local.reap_query += decisions.reap_query

    # ---- invariants (checked after every step in the unit tests) ----------------------------
    def validate_state(self) -> None:
        waiting = {id(r) for r, _ in self.infeasible}
        assert len(waiting) == len(self.infeasible), "a request waits twice"
        assert not any(id(r) in waiting for r in self.scheduler.pending), \
            "a request is both infeasible-waiting and queued"
        for req, _ in self.infeasible:
            assert not self.scheduler.feasible(req.to_place()), "a feasible request waits as infeasible"
        self.scheduler.validate_state()
