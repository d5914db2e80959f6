"""Distributed reference counting: who keeps each object alive (DESIGN.md §4).

Owns one `Reference` record per object this process knows about, owned or borrowed, and
the rule that decides when the record is out of scope. Does no I/O: every method returns
the work the caller must do (values to free, release notices to send), so unit tests can
drive many owners and borrowers in one process.

The protocol is a tree of registrations. Whenever process P hands a ref to process Q in a
way that outlives the hand-over (Q still holds it when Q's task ends; Q receives it inside
a task's return value; Q receives it inside a value P sends on request), P counts Q as a
borrower (`borrowers[Q] += 1`) and Q remembers P as a parent (`parents[P] += 1`). When Q's
record goes out of scope, Q sends `REF_REMOVED(oid, n)` to each parent with the number of
registrations it held; the parent subtracts them. A record is in scope while

    local + submitted + contained_in > 0  or  some borrower count > 0

Borrower counts may go negative for a moment (a release can overtake the reply that
registered it); the registering reply always arrives while the parent's `submitted`
count still holds the record, so nothing is freed early. The owner frees the value when
its record goes out of scope; a borrower forwards the release up the tree.

Not thread-safe: the core worker calls it with its state lock held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Why an owned object has no lineage (Reference.no_lineage).
PUT, ACTOR_TASK, OVER_BUDGET, STREAMED = "put", "actor task", "lineage budget", "streamed"
MAX_LINEAGE_BYTES = 1 << 30  # argument bytes of retained task specs, like Ray's max_lineage_bytes


@dataclass(slots=True, eq=False)
class Reference:
    """What this process knows about one object."""

    oid: bytes
    owner: str  # inbox address of the owning process
    owned: bool
    local: int = 0  # live ObjectRef instances in this process
    submitted: int = 0  # pending tasks we submitted that carry the ref
    contained_in: int = 0  # records we hold whose value contains this ref
    # (None until the first one: most objects are never borrowed; see `_count`)
    borrowers: dict[str, int] | None = None  # processes borrowing via us
    parents: dict[str, int] | None = None  # processes counting us as borrower
    contains: list | None = None  # [[oid, owner], ...] refs nested in this object's value
    # Value state (the in-process memory store, see memory_store.py): None while pending.
    value: object = None  # a memory_store.Value
    waiters: list | None = None  # who to tell when the value arrives (memory_store.py)
    requested: bool = False  # borrowed, no value: we asked the owner for it
    owner_pending: bool = False  # borrowed, no value: the owner said it has none yet either
    size: int = 0  # serialized size of the value, once known (kept when the value is lost)
    copies: list | None = None  # owned shm objects: [(daemon, node_id)] holding secondary copies
    no_lineage: str | None = None  # owned, cannot be re-run: why (PUT, ACTOR_TASK, OVER_BUDGET)
    freed: bool = False  # the value was released; the record may stay for lineage
    task: object = None  # lineage: the TaskEntry that created the value (owned, rebuildable)
    lineage_refs: int = 0  # retained lineage entries that take this object as an argument

    def in_scope(self) -> bool:
        if self.local > 0 or self.submitted > 0 or self.contained_in > 0:
            return True
        if self.borrowers:
            for count in self.borrowers.values():
                if count > 0:
                    return True
        return False

    def held_apart_from(self, borrower: str) -> bool:
        """In scope for a reason other than `borrower` borrowing it through us."""
        if self.local > 0 or self.submitted > 0 or self.contained_in > 0:
            return True
        for addr, count in (self.borrowers or {}).items():
            if count > 0 and addr != borrower:
                return True
        return False

    def borrowed(self) -> int:
        """Registrations of borrowers through us (the state API shows it)."""
        return sum(self.borrowers.values()) if self.borrowers else 0


def _count(ref: Reference, table: str, address: str, delta: int = 1) -> None:
    """Adds `delta` to `address`'s count in `ref.borrowers` or `ref.parents` (made on first use)."""
    counts = getattr(ref, table)
    if counts is None:
        counts = {}
        setattr(ref, table, counts)
    counts[address] = counts.get(address, 0) + delta


@dataclass(slots=True)
class Release:
    """Work for the caller after records went out of scope."""

    freed_owned: list[Reference] = field(default_factory=list)  # free their values
    notices: dict[str, list[list]] = field(default_factory=dict)  # parent -> [[oid, n], ...]

    def notice(self, parent: str, oid: bytes, count: int) -> None:
        self.notices.setdefault(parent, []).append([oid, count])

    def __bool__(self) -> bool:
        return bool(self.freed_owned or self.notices)


class ReferenceCounter:
    """The table of `Reference` records of one process."""

    def __init__(self, self_address: str):
        self.address = self_address
        self.refs: dict[bytes, Reference] = {}
        self.lineage_bytes = 0  # argument bytes of the task specs kept as lineage
        self.max_lineage_bytes = MAX_LINEAGE_BYTES

    # ---- creation --------------------------------------------------------------------
    def add_owned(self, oid: bytes, local: int = 1) -> Reference:
        ref = self.refs.get(oid)
        if ref is None:
            ref = Reference(oid, self.address, True, local=local)
            self.refs[oid] = ref
        else:
            ref.local += local
        return ref

    def get_or_add_borrowed(self, oid: bytes, owner: str) -> Reference:
        ref = self.refs.get(oid)
        if ref is None:
            ref = Reference(oid, owner, owner == self.address)
            self.refs[oid] = ref
        return ref

    # ---- counts --------------------------------------------------------------------
    def add_local(self, oid: bytes, owner: str) -> None:
        self.get_or_add_borrowed(oid, owner).local += 1

    def remove_local(self, oid: bytes, out: Release) -> None:
        ref = self.refs.get(oid)
        if ref is None:
            return
        ref.local -= 1
        self._check(ref, out)

    def add_submitted(self, refs: list) -> list[Reference]:
        """A task we submitted carries these [oid, owner] refs until it finishes. Returns
        their records, in order, for `remove_submitted` (a record counted as submitted stays
        in the table: the task may use the records instead of looking them up)."""
        get = self.refs.get
        records = [get(oid) for oid, _owner in refs]
        if None in records:  # (records compare by identity: this finds a missing one only)
            for i, ref in enumerate(records):
                if ref is None:  # (an oid given twice is made by its first occurrence)
                    records[i] = self.get_or_add_borrowed(*refs[i])
        for ref in records:
            ref.submitted += 1
            ref.freed = False
        return records

    def remove_submitted(self, records: list[Reference], out: Release) -> None:
        """The task that `add_submitted` returned these records to no longer carries them."""
        # (a task's arguments are mostly still held otherwise: those skip the scope check)
        for ref in records:
            ref.submitted -= 1
            if ref.local <= 0 and ref.submitted <= 0:
                self._check(ref, out)

    def set_contains(self, ref: Reference, contains: list, registered_by: str | None) -> None:
        """Records that `ref`'s value holds these refs; they stay alive while it does.

        `registered_by` is the process that sent us the value and counted us as a borrower
        of each contained ref we do not own; we report their release to it.
        """
        ref.contains = contains
        for oid, owner in contains:
            inner = self.get_or_add_borrowed(oid, owner)
            inner.contained_in += 1
            if registered_by is not None and owner != self.address:
                _count(inner, "parents", registered_by)

    def register_borrower(self, refs: list, borrower: str) -> None:
        """We hand these refs to `borrower`, who will report their release to us."""
        for oid, owner in refs:
            if owner == borrower:
                continue  # the owner needs no registration for its own objects
            _count(self.get_or_add_borrowed(oid, owner), "borrowers", borrower)

    def still_borrowed(self, refs: list, parent: str) -> list:
        """At the end of a task from `parent`: which received refs we still hold.

        Each one is registered with `parent` (we will send it a release notice).
        """
        kept = []
        for oid, owner in refs:
            if owner == self.address:
                continue  # our own object: nobody needs to hear from us
            ref = self.refs.get(oid)
            # A ref the parent itself borrows back from us (we returned it) is not reported:
            # the parent will tell us when it is done, and reporting would make a cycle.
            if ref is not None and ref.held_apart_from(parent):
                _count(ref, "parents", parent)
                kept.append(oid)
        return kept

    def add_borrowers_from_reply(self, oids: list, borrower: str) -> None:
        for oid in oids:
            ref = self.refs.get(oid)
            if ref is not None:
                _count(ref, "borrowers", borrower)

    def borrower_released(self, borrower: str, oid: bytes, count: int, out: Release) -> None:
        ref = self.refs.get(oid)
        if ref is None:
            return
        _count(ref, "borrowers", borrower, -count)
        if ref.borrowers[borrower] == 0:
            del ref.borrowers[borrower]
        self._check(ref, out)

    def process_died(self, address: str, out: Release) -> None:
        """A process died: it borrows nothing any more and will send no notices."""
        for ref in list(self.refs.values()):
            if ref.borrowers and ref.borrowers.pop(address, None) is not None:
                self._check(ref, out)
            if ref.parents:
                ref.parents.pop(address, None)

    # ---- scope -----------------------------------------------------------------------
    def _check(self, ref: Reference, out: Release) -> None:
        """Frees `ref` if out of scope, and then whatever only it kept (contained refs,
        lineage). Iterative: a long lineage chain is released without deep recursion."""
        stack = [ref]
        while stack:
            ref = stack.pop()
            if ref.in_scope() or ref.waiters:
                continue  # (a get() or dependent task waiting on it holds it too)
            if not ref.freed:
                ref.freed = True
                if ref.owned:
                    out.freed_owned.append(ref)
                else:
                    if ref.parents:
                        for parent, count in ref.parents.items():
                            if count:
                                out.notice(parent, ref.oid, count)
                        ref.parents = None
                contains, ref.contains = ref.contains, None
                if contains:
                    for oid, _owner in contains:
                        inner = self.refs.get(oid)
                        if inner is not None:
                            inner.contained_in -= 1
                            stack.append(inner)
            if ref.lineage_refs > 0:
                continue  # downstream lineage may need to rebuild this object: keep its record
            if self.refs.get(ref.oid) is ref:
                del self.refs[ref.oid]
            task, ref.task = ref.task, None
            if task is not None:
                self.lineage_bytes -= task.spec_bytes
                for dep in task.dep_refs:  # (records with lineage_refs > 0 stay in the table)
                    dep.lineage_refs -= 1
                    if dep.local <= 0 and dep.submitted <= 0:  # (else still in scope: stays)
                        stack.append(dep)

    def keep_lineage(self, ref: Reference, task) -> None:
        """`ref`'s value can be rebuilt by re-running `task`; pin its arguments' records.
        Beyond `max_lineage_bytes` of kept specs (`task.spec_bytes` each: its by-value
        argument bytes and a little), new objects get no lineage (OVER_BUDGET)."""
        if ref.task is not None:
            return
        size = task.spec_bytes
        if self.lineage_bytes + size > self.max_lineage_bytes:
            ref.no_lineage = OVER_BUDGET
            return
        self.lineage_bytes += size
        ref.task = task
        for dep in task.dep_refs:  # (the task is still submitted: its records are in the table)
            dep.lineage_refs += 1

    def check(self, oid: bytes, out: Release) -> None:
        ref = self.refs.get(oid)
        if ref is not None:
            self._check(ref, out)

    def __len__(self) -> int:
        return len(self.refs)

    def validate_state(self) -> None:
        """Checks every record's invariants (unit tests call it after each step)."""
        lineage_refs: dict[bytes, int] = {}
        lineage_bytes = 0
        for oid, ref in self.refs.items():
            assert ref.oid == oid
            assert ref.owned == (ref.owner == self.address), f"{oid.hex()}: owned flag disagrees with owner"
            assert ref.local >= 0 and ref.submitted >= 0 and ref.contained_in >= 0, f"{oid.hex()}: negative count"
            assert ref.lineage_refs >= 0, f"{oid.hex()}: negative lineage count"
            if ref.value is not None:
                assert not ref.waiters, f"{oid.hex()}: has a value and waiters"
                assert not ref.requested, f"{oid.hex()}: has a value and is still requested"
            if ref.requested:
                assert not ref.owned, f"{oid.hex()}: an owned object was requested from its owner"
            if ref.freed and ref.owned:
                assert ref.value is None or ref.waiters is None, f"{oid.hex()}: freed with waiters"
            if not ref.freed:
                assert ref.in_scope() or ref.waiters or ref.lineage_refs > 0 or ref.value is None, \
                    f"{oid.hex()}: out of scope but not freed"
            if ref.copies:
                assert ref.owned, f"{oid.hex()}: a borrower tracks copies"
            if ref.task is not None:
                lineage_bytes += ref.task.spec_bytes
                for dep, _owner in ref.task.deps:
                    lineage_refs[dep] = lineage_refs.get(dep, 0) + 1
        for oid, count in lineage_refs.items():
            ref = self.refs.get(oid)
            assert ref is None or ref.lineage_refs == count, \
                f"{oid.hex()}: lineage count {ref.lineage_refs}, {count} lineage entries use it"
        assert lineage_bytes == self.lineage_bytes, \
            f"lineage bytes {self.lineage_bytes}, the kept specs add up to {lineage_bytes}"
