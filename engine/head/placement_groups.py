"""Placement groups on the head: which node holds each bundle (Ray's `ray.util.placement_group`).

Owns the placement group table and the decision of where bundles go. A group is a list of
bundles (resource dicts) and a strategy; the head assigns each bundle to a node, the node's
daemon reserves it, and the group is CREATED once every bundle is held. States (Ray's names):

    PENDING --every bundle held--> CREATED --a node holding one died--> RESCHEDULING
       ^                                                                 |
       +-------- (RESCHEDULING: its bundles on live nodes stay) ---------+
    any state --remove()/its creator exited (not detached)--> REMOVED (final)

Reservation is declarative: a node's desired bundles (`desired(node_id)`) go to its daemon in
the cluster view the head sends it; the daemon reserves what it is told (as soon as its free
resources fit: it recalls idle leases for it) and releases what it is no longer told, and
its heartbeat's total resources list the bundles it holds (a `bundle_group_<i>_<pg hex>`
resource per bundle: `held_bundles`), which `node_reported` reads. So a lost message, a
restarted head or a restarted daemon converge on the next beat.

Placement (`place`), all bundles of a group or none (PENDING waits for a node to fit):
PACK puts all bundles on one node if one fits them, else as few nodes as it can; STRICT_PACK
one node or none; SPREAD a different node per bundle where it can, else any that fits;
STRICT_SPREAD a different node per bundle or none. A node fits a bundle if its capacity
(total resources minus the bundles assigned to it) does; among those, nodes whose free
resources fit it now are preferred. A suspect or dead node gets none.

Pure: no I/O, no clock. The server persists `records()` and sends the views. Not thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..placement_resources import base_resources, is_group_resource

PENDING, CREATED, RESCHEDULING, REMOVED = "PENDING", "CREATED", "RESCHEDULING", "REMOVED"
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
KEEP_REMOVED = 1000  # removed groups kept for table lookups; older ones are forgotten


def _fits(pool: dict, need: dict) -> bool:
    return all(pool.get(k, 0.0) >= v - 1e-9 for k, v in need.items() if v > 0)


def _take(pool: dict, need: dict) -> None:
    for k, v in need.items():
        pool[k] = pool.get(k, 0.0) - v


@dataclass(slots=True, eq=False)
class PlacementGroupRecord:
    pg_id: bytes
    bundles: list  # [{resource: amount}] in bundle order
    strategy: str
    name: str = ""
    namespace: str = ""
    creator: str = ""  # address of the process that created it (its fate, unless detached)
    detached: bool = False
    state: str = PENDING
    assigned: dict = field(default_factory=dict)  # bundle index -> node id
    held: set = field(default_factory=set)  # bundle indexes their node reported holding
    seq: int = 0  # creation order: pending groups are placed first come, first served

    @property
    def hex(self) -> str:
        return self.pg_id.hex()

    def view(self) -> dict:
        """Ray's `placement_group_table(pg)` entry."""
        return {"placement_group_id": self.hex, "name": self.name, "namespace": self.namespace,
                "bundles": {i: dict(b) for i, b in enumerate(self.bundles)},
                "bundles_to_node_id": {i: self.assigned[i] for i in sorted(self.assigned)},
                "strategy": self.strategy, "state": self.state,
                "is_detached": self.detached}

    def row(self) -> dict:
        """What is persisted (`PlacementGroups.load` takes it back)."""
        return {"pg_id": self.pg_id, "bundles": self.bundles, "strategy": self.strategy, "name": self.name,
                "namespace": self.namespace, "creator": self.creator, "detached": self.detached,
                "state": self.state, "assigned": {str(i): n for i, n in self.assigned.items()}, "seq": self.seq}


class PlacementGroups:
    def __init__(self):
        self.groups: dict[bytes, PlacementGroupRecord] = {}
        self.by_hex: dict[str, bytes] = {}
        self.removed_order: list[bytes] = []  # REMOVED groups, oldest first (bounded)
        self._seq = 0

    # ---- loading -------------------------------------------------------------------------
    def load(self, row: dict) -> None:
        """Takes back a persisted group (a restarted head): held bundles are re-reported."""
        record = PlacementGroupRecord(
            pg_id=row["pg_id"], bundles=row["bundles"], strategy=row["strategy"], name=row["name"],
            namespace=row["namespace"], creator=row["creator"], detached=row["detached"], state=row["state"],
            assigned={int(i): n for i, n in row["assigned"].items()}, seq=row["seq"])
        self._add(record)
        self._seq = max(self._seq, record.seq)

    def _add(self, record: PlacementGroupRecord) -> None:
        self.groups[record.pg_id] = record
        self.by_hex[record.hex] = record.pg_id
        if record.state == REMOVED:
            self.removed_order.append(record.pg_id)

    # ---- events --------------------------------------------------------------------------
    def create(self, pg_id: bytes, bundles: list, strategy: str, name: str, namespace: str,
               creator: str, detached: bool) -> PlacementGroupRecord:
        """Adds a PENDING group (`place` assigns it). ValueError for a bad group or a name
        a live group of the namespace has."""
        check_group(bundles, strategy)
        if pg_id in self.groups:
            raise ValueError(f"placement group {pg_id.hex()} exists already")
        if name and self.find_named(name, namespace) is not None:
            raise ValueError(f"a placement group named {name!r} exists already in namespace {namespace!r}")
        self._seq += 1
        record = PlacementGroupRecord(pg_id, [dict(b) for b in bundles], strategy, name, namespace,
                                      creator, detached, seq=self._seq)
        self._add(record)
        return record

    def remove(self, pg_id: bytes) -> PlacementGroupRecord | None:
        """Marks the group REMOVED: its nodes release its bundles. None if unknown or removed."""
        record = self.groups.get(pg_id)
        if record is None or record.state == REMOVED:
            return None
        record.state = REMOVED
        self.removed_order.append(pg_id)
        while len(self.removed_order) > KEEP_REMOVED:
            old = self.groups.pop(self.removed_order.pop(0), None)
            if old is not None:
                self.by_hex.pop(old.hex, None)
        return record

    def creator_exited(self, creator: str) -> list[PlacementGroupRecord]:
        """The process that created these groups exited: its non-detached ones are removed."""
        gone = [r for r in self.groups.values() if r.creator == creator and not r.detached and r.state != REMOVED]
        for record in gone:
            self.remove(record.pg_id)
        return gone

    def node_died(self, node_id: str) -> list[PlacementGroupRecord]:
        """Bundles on a dead node are placed again (the group is RESCHEDULING until they are
        held). Returns the groups that lost bundles."""
        changed = []
        for record in self.groups.values():
            if record.state == REMOVED:
                continue
            lost = [i for i, n in record.assigned.items() if n == node_id]
            if not lost:
                continue
            if record.state == PENDING:  # placed again as a whole (its other nodes release theirs)
                lost = list(record.assigned)
            for i in lost:
                del record.assigned[i]
                record.held.discard(i)
            if record.state == CREATED:
                record.state = RESCHEDULING
            changed.append(record)
        return changed

    def node_reported(self, node_id: str, held: set) -> list[PlacementGroupRecord]:
        """A node's heartbeat listed the bundles it holds ({(pg hex, index)}). Returns the
        groups that became CREATED."""
        created = []
        for record in self.groups.values():
            if record.state == REMOVED or node_id not in record.assigned.values():
                continue
            for i, n in record.assigned.items():
                if n == node_id:
                    if (record.hex, i) in held:
                        record.held.add(i)
                    else:
                        record.held.discard(i)
            if record.state != CREATED and len(record.held) == len(record.bundles):
                record.state = CREATED
                created.append(record)
        return created

    # ---- the decision ------------------------------------------------------------------------
    def waiting(self) -> bool:
        """Some group has bundles without a node."""
        return any(_unplaced(r) for r in self.groups.values())

    def place(self, nodes: dict) -> list[PlacementGroupRecord]:
        """Assigns the unassigned bundles of waiting groups, oldest first. `nodes`: {node id:
        {"total": ..., "available": ...}} of the nodes that take leases (alive, not suspect).
        Returns the groups that got nodes (their nodes' views changed)."""
        waiting = sorted((r for r in self.groups.values() if _unplaced(r)), key=lambda r: r.seq)
        if not waiting:
            return []
        capacity = {n: base_resources(v.get("total", {})) for n, v in nodes.items()}
        free = {n: base_resources(v.get("available", {})) for n, v in nodes.items()}
        for record in self.groups.values():  # what other groups' bundles take there
            if record.state == REMOVED:
                continue
            for i, n in record.assigned.items():
                if n in capacity:
                    _take(capacity[n], record.bundles[i])
                    if i not in record.held:  # a held one is out of `available` already
                        _take(free[n], record.bundles[i])
        placed = []
        for record in waiting:
            choice = choose_nodes(record, capacity, free)
            if choice is None:
                continue
            for i, n in choice.items():
                record.assigned[i] = n
                _take(capacity[n], record.bundles[i])
                _take(free[n], record.bundles[i])
            placed.append(record)
        return placed

    # ---- queries -------------------------------------------------------------------------
    def desired(self, node_id: str) -> list:
        """[[pg hex, bundle index, resources]] the node is to hold (sent in its view)."""
        return [[r.hex, i, r.bundles[i]] for r in self.groups.values() if r.state != REMOVED
                for i, n in r.assigned.items() if n == node_id]

    def recently_removed(self, count: int = 100) -> list[str]:
        """Hex ids of the newest removed groups (daemons refuse requests for them)."""
        return [self.groups[p].hex for p in self.removed_order[-count:] if p in self.groups]

    def find(self, key) -> PlacementGroupRecord | None:
        """By id (bytes) or hex (str)."""
        if isinstance(key, str):
            key = self.by_hex.get(key)
        return self.groups.get(key) if isinstance(key, bytes) else None

    def find_named(self, name: str, namespace: str) -> PlacementGroupRecord | None:
        for record in self.groups.values():
            if record.name == name and record.namespace == namespace and record.state != REMOVED:
                return record
        return None

    def nodes_of(self, record: PlacementGroupRecord) -> set[str]:
        return set(record.assigned.values())

    # ---- invariants (checked after every step in the unit tests) ---------------------------
    def validate_state(self) -> None:
        assert len(self.by_hex) == len(self.groups)
        for pg_id, r in self.groups.items():
            assert r.pg_id == pg_id and self.by_hex[r.hex] == pg_id
            assert r.state in (PENDING, CREATED, RESCHEDULING, REMOVED)
            assert set(r.assigned) <= set(range(len(r.bundles))), "a bundle index out of range is assigned"
            assert r.held <= set(r.assigned), "a bundle is held but not assigned"
            assert r.state != CREATED or len(r.held) == len(r.bundles), "CREATED with a bundle not held"
            if r.state == PENDING:
                assert len(r.assigned) in (0, len(r.bundles)), "a pending group is partly assigned"
            if r.strategy == "STRICT_PACK":
                assert len(set(r.assigned.values())) <= 1, "STRICT_PACK over two nodes"
            if r.strategy == "STRICT_SPREAD":
                assert len(set(r.assigned.values())) == len(r.assigned), "STRICT_SPREAD with two on a node"
        assert all(self.groups[p].state == REMOVED for p in self.removed_order if p in self.groups)


def _unplaced(record: PlacementGroupRecord) -> bool:
    """A live group with bundles that have no node yet."""
    return record.state in (PENDING, RESCHEDULING) and len(record.assigned) < len(record.bundles)


def check_group(bundles, strategy) -> None:
    """ValueError for bad bundles or an unknown strategy (the client checks before asking)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"placement group strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    check_bundles(bundles)


def check_bundles(bundles) -> None:
    """ValueError unless `bundles` is a non-empty list of resource dicts (Ray's rules)."""
    if not isinstance(bundles, (list, tuple)) or not bundles:
        raise ValueError("placement group bundles must be a non-empty list of resource dicts, "
                         f"got {bundles!r}")
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, dict) or not bundle:
            raise ValueError(f"placement group bundle {i} must be a non-empty dict of resources, got {bundle!r}")
        for key, amount in bundle.items():
            if not isinstance(key, str) or is_group_resource(key):
                raise ValueError(f"placement group bundle {i}: bad resource name {key!r}")
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
                raise ValueError(f"placement group bundle {i}: resource {key!r} must be a non-negative "
                                 f"number, got {amount!r}")
        if all(amount == 0 for amount in bundle.values()):
            raise ValueError(f"placement group bundle {i} cannot be all zero: {bundle!r} (Ray refuses "
                             "it too)")


def choose_nodes(record: PlacementGroupRecord, capacity: dict, free: dict) -> dict | None:
    """{bundle index: node id} for the group's unassigned bundles under its strategy, or None
    if they cannot all be placed now. Reads `capacity`/`free` ({node: resources left}); the
    caller takes the chosen bundles out of them."""
    missing = [i for i in range(len(record.bundles)) if i not in record.assigned]
    used = set(record.assigned.values())
    order = sorted(capacity)  # deterministic
    cap = {n: dict(v) for n, v in capacity.items()}
    fr = {n: dict(v) for n, v in free.items()}
    strategy = record.strategy

    if strategy == "STRICT_PACK" or (strategy == "PACK" and not used):
        need: dict = {}
        for i in missing:
            for k, v in record.bundles[i].items():
                need[k] = need.get(k, 0.0) + v
        candidates = [n for n in order if _fits(cap[n], need) and (not used or n in used)]
        candidates.sort(key=lambda n: not _fits(fr[n], need))  # free now first
        if candidates:
            return dict.fromkeys(missing, candidates[0])
        if strategy == "STRICT_PACK":
            return None

    choice: dict = {}
    for i in missing:
        bundle = record.bundles[i]
        nodes = [n for n in order if _fits(cap[n], bundle)]
        if strategy == "STRICT_SPREAD":
            nodes = [n for n in nodes if n not in used]
        if not nodes:
            return None
        if strategy == "PACK":  # nodes the group uses first, then free now
            nodes.sort(key=lambda n: (n not in used, not _fits(fr[n], bundle)))
        else:  # SPREAD, STRICT_SPREAD: unused nodes first, then free now
            nodes.sort(key=lambda n: (n in used, not _fits(fr[n], bundle)))
        node = nodes[0]
        choice[i] = node
        used.add(node)
        _take(cap[node], bundle)
        _take(fr[node], bundle)
    return choice
