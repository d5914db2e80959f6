"""ReferenceCounter driven by hand: several "processes" in one test, notices delivered by us.

Each process is a `ReferenceCounter` with its own address. The steps mirror what the core
worker does (see core_worker.py / executor.py): an owner counts a ref nested in a task's
arguments as submitted, the executing worker reports what it still borrows in its reply,
release notices (`Release.notices`) travel to the parents named in them.
"""

from __future__ import annotations

import pytest
from ownrun.engine.ownership.reference_counter import ReferenceCounter, Release

X = b"object-x"
R = b"result-r"


class World:
    """A few processes and a post office for their release notices."""

    def __init__(self, *addresses: str):
        self.procs = {a: ReferenceCounter(a) for a in addresses}
        self.submitted: dict = {}  # (caller, refs) -> records add_submitted returned, per task
        self.freed = {a: [] for a in addresses}

    def __getitem__(self, address: str) -> ReferenceCounter:
        return self.procs[address]

    def out(self, sender: str, release: Release) -> None:
        """Records what `sender` freed and delivers its release notices at once."""
        self.freed[sender].extend(ref.oid for ref in release.freed_owned)
        for parent, items in release.notices.items():
            for oid, count in items:
                out = Release()
                self.procs[parent].borrower_released(sender, oid, count, out)
                self.out(parent, out)

    # ---- the core worker's steps ----------------------------------------------------------
    def remove_local(self, address: str, oid: bytes) -> None:
        out = Release()
        self.procs[address].remove_local(oid, out)
        self.out(address, out)

    def submit_with_nested(self, caller: str, worker: str, refs: list) -> None:
        """`caller` submits a task to `worker` carrying `refs` nested in its arguments."""
        self.submitted.setdefault((caller, tuple(map(tuple, refs))), []).append(self.procs[caller].add_submitted(refs))
        for oid, owner in refs:
            self.procs[worker].add_local(oid, owner)  # the worker unpickles them

    def task_reply(self, caller: str, worker: str, refs: list, borrowed: list) -> None:
        """`caller` processes the reply of the task it sent to `worker`."""
        rc = self.procs[caller]
        rc.add_borrowers_from_reply(borrowed, worker)
        out = Release()
        rc.remove_submitted(self.submitted[caller, tuple(map(tuple, refs))].pop(), out)
        self.out(caller, out)

    def tables_empty(self) -> bool:
        return all(len(rc) == 0 for rc in self.procs.values())


def nested(oid: bytes, owner: str) -> list:
    return [[oid, owner]]


# ---- basics ------------------------------------------------------------------------------------
def test_owned_object_is_freed_when_its_last_local_ref_goes():
    rc = ReferenceCounter("O")
    rc.add_owned(X)
    rc.add_owned(X)  # a second ObjectRef instance
    out = Release()
    rc.remove_local(X, out)
    assert not out and X in rc.refs
    rc.remove_local(X, out)
    assert [r.oid for r in out.freed_owned] == [X]
    assert len(rc) == 0


def test_submitted_task_keeps_its_argument_alive():
    rc = ReferenceCounter("O")
    rc.add_owned(X)
    records = rc.add_submitted(nested(X, "O"))
    assert records == [rc.refs[X]]
    out = Release()
    rc.remove_local(X, out)
    assert not out and X in rc.refs
    rc.remove_submitted(records, out)
    assert [r.oid for r in out.freed_owned] == [X]


def test_get_in_progress_holds_the_record():
    rc = ReferenceCounter("O")
    ref = rc.add_owned(X)
    ref.waiters = [object()]
    out = Release()
    rc.remove_local(X, out)
    assert not out and X in rc.refs
    ref.waiters = None
    rc.check(X, out)
    assert [r.oid for r in out.freed_owned] == [X]


def test_contained_ref_lives_as_long_as_the_outer_value():
    rc = ReferenceCounter("O")
    rc.add_owned(X)
    outer = rc.add_owned(R)
    rc.set_contains(outer, nested(X, "O"), None)
    out = Release()
    rc.remove_local(X, out)
    assert not out
    rc.remove_local(R, out)
    assert sorted(r.oid for r in out.freed_owned) == sorted([R, X])
    assert len(rc) == 0


# ---- two and three processes -------------------------------------------------------------------
def test_owner_frees_only_after_the_borrower_releases():
    w = World("O", "A")
    w["O"].add_owned(X)
    w.submit_with_nested("O", "A", nested(X, "O"))
    borrowed = w["A"].still_borrowed(nested(X, "O"), "O")  # A stored the ref somewhere
    assert borrowed == [X]
    w.task_reply("O", "A", nested(X, "O"), borrowed)
    w.remove_local("O", X)
    assert w.freed["O"] == [] and X in w["O"].refs
    w.remove_local("A", X)
    assert w.freed["O"] == [X]
    assert w.tables_empty()


def test_borrower_that_kept_nothing_is_not_registered():
    w = World("O", "A")
    w["O"].add_owned(X)
    w.submit_with_nested("O", "A", nested(X, "O"))
    w.remove_local("A", X)  # the task's argument is dropped when it ends
    borrowed = w["A"].still_borrowed(nested(X, "O"), "O")
    assert borrowed == []
    w.task_reply("O", "A", nested(X, "O"), borrowed)
    assert not w["O"].refs[X].borrowers  # none registered
    w.remove_local("O", X)
    assert w.freed["O"] == [X]
    assert w.tables_empty()


def test_nested_borrower_chain_owner_a_b_frees_after_b_releases():
    w = World("O", "A", "B")
    w["O"].add_owned(X)
    w.submit_with_nested("O", "A", nested(X, "O"))
    # A passes the ref on to a task on B, which keeps it.
    w.submit_with_nested("A", "B", nested(X, "O"))
    borrowed_b = w["B"].still_borrowed(nested(X, "O"), "A")
    assert borrowed_b == [X]
    w.task_reply("A", "B", nested(X, "O"), borrowed_b)
    # A's own task ends: A dropped its ref but still borrows through B.
    w.remove_local("A", X)
    borrowed_a = w["A"].still_borrowed(nested(X, "O"), "O")
    assert borrowed_a == [X]
    w.task_reply("O", "A", nested(X, "O"), borrowed_a)
    w.remove_local("O", X)
    assert w.freed["O"] == []
    assert X in w["A"].refs and X in w["O"].refs
    # B releases: A forwards the release to O, which frees.
    w.remove_local("B", X)
    assert w.freed["O"] == [X]
    assert w.tables_empty()


def test_release_overtaking_the_registration_does_not_free_early():
    w = World("O", "A")
    w["O"].add_owned(X)
    w.submit_with_nested("O", "A", nested(X, "O"))
    borrowed = w["A"].still_borrowed(nested(X, "O"), "O")
    assert borrowed == [X]
    # A releases right after replying; the release notice reaches O before the reply.
    w.remove_local("A", X)
    assert w["O"].refs[X].borrowers == {"A": -1}
    w.remove_local("O", X)
    assert w.freed["O"] == [], "freed while the task reply was still in flight"
    assert X in w["O"].refs
    w.task_reply("O", "A", nested(X, "O"), borrowed)
    assert w.freed["O"] == [X]
    assert w.tables_empty()


def test_ref_returned_back_to_its_caller_does_not_make_a_cycle():
    """O owns X; C borrows it and passes it to A; A returns [X] to C; then C drops everything."""
    w = World("O", "C", "A")
    w["O"].add_owned(X)
    w.submit_with_nested("O", "C", nested(X, "O"))
    w.submit_with_nested("C", "A", nested(X, "O"))
    # A returns a value containing X: C will tell A when it no longer needs it.
    w["A"].register_borrower(nested(X, "O"), "C")
    w.remove_local("A", X)
    borrowed_a = w["A"].still_borrowed(nested(X, "O"), "C")
    assert borrowed_a == [], "A must not report back what C borrows from it"
    # C stores A's result R (which contains X, registered by A).
    result = w["C"].add_owned(R)
    w["C"].set_contains(result, nested(X, "O"), registered_by="A")
    w.task_reply("C", "A", nested(X, "O"), borrowed_a)
    # C's own task ends; it keeps R (and through it X).
    w.remove_local("C", X)
    borrowed_c = w["C"].still_borrowed(nested(X, "O"), "O")
    assert borrowed_c == [X]
    w.task_reply("O", "C", nested(X, "O"), borrowed_c)
    w.remove_local("O", X)
    assert w.freed["O"] == []
    # C drops R: releases go to both parents (A and O), and everything is freed.
    w.remove_local("C", R)
    assert w.freed["C"] == [R]
    assert w.freed["O"] == [X]
    assert w.tables_empty()


def test_ref_returned_to_its_owner_needs_no_registration():
    w = World("O", "A")
    w["O"].add_owned(X)
    w.submit_with_nested("O", "A", nested(X, "O"))
    w["A"].register_borrower(nested(X, "O"), "O")  # A returns [X] to its owner
    w.remove_local("A", X)
    assert w["A"].still_borrowed(nested(X, "O"), "O") == []
    assert len(w["A"]) == 0
    result = w["O"].add_owned(R)
    w["O"].set_contains(result, nested(X, "O"), registered_by="A")
    w.task_reply("O", "A", nested(X, "O"), [])
    w.remove_local("O", X)
    assert w.freed["O"] == []  # still inside R
    w.remove_local("O", R)
    assert sorted(w.freed["O"]) == sorted([R, X])
    assert w.tables_empty()


def test_value_served_on_request_registers_the_requester_as_borrower_of_its_contents():
    """O serves R's value (containing X) to B; O keeps X until B releases it."""
    w = World("O", "B")
    w["O"].add_owned(X)
    outer = w["O"].add_owned(R)
    w["O"].set_contains(outer, nested(X, "O"), None)
    w.remove_local("O", X)
    # B holds a ref to R and asks O for R's value; O registers B for what the value holds.
    w["B"].add_local(R, "O")
    w["O"].register_borrower(nested(X, "O"), "B")
    assert w["O"].refs[X].borrowers == {"B": 1}
    w["B"].set_contains(w["B"].refs[R], nested(X, "O"), registered_by="O")
    w["B"].add_local(X, "O")  # B unpickled X from R's value
    w.remove_local("O", R)
    assert w.freed["O"] == [R]
    assert X in w["O"].refs  # B still borrows it
    w.remove_local("B", X)
    assert w.freed["O"] == [R]  # still inside B's copy of R
    w.remove_local("B", R)
    assert w.freed["O"] == [R, X]
    assert w.tables_empty()


def test_process_died_removes_a_dead_borrower_and_frees():
    w = World("O", "A")
    w["O"].add_owned(X)
    w.submit_with_nested("O", "A", nested(X, "O"))
    borrowed = w["A"].still_borrowed(nested(X, "O"), "O")
    w.task_reply("O", "A", nested(X, "O"), borrowed)
    w.remove_local("O", X)
    assert w.freed["O"] == []
    out = Release()
    w["O"].process_died("A", out)
    w.out("O", out)
    assert w.freed["O"] == [X]
    assert len(w["O"]) == 0


def test_process_died_drops_the_dead_parent_so_no_notice_is_sent_to_it():
    w = World("O", "A")
    w["O"].add_owned(X)
    w.submit_with_nested("O", "A", nested(X, "O"))
    w["A"].still_borrowed(nested(X, "O"), "O")
    out = Release()
    w["A"].process_died("O", out)
    assert not out
    out = Release()
    w["A"].remove_local(X, out)
    assert out.notices == {}
    assert len(w["A"]) == 0


def test_process_died_keeps_an_object_other_borrowers_hold():
    w = World("O", "A", "B")
    w["O"].add_owned(X)
    for worker in ("A", "B"):
        w.submit_with_nested("O", worker, nested(X, "O"))
        borrowed = w[worker].still_borrowed(nested(X, "O"), "O")
        w.task_reply("O", worker, nested(X, "O"), borrowed)
    w.remove_local("O", X)
    out = Release()
    w["O"].process_died("A", out)
    assert not out and X in w["O"].refs
    w.remove_local("B", X)
    assert w.freed["O"] == [X]


@pytest.mark.parametrize("holders", [1, 3])
def test_release_counts_several_registrations_at_once(holders):
    w = World("O", "A")
    w["O"].add_owned(X)
    for _ in range(holders):
        w.submit_with_nested("O", "A", nested(X, "O"))
    for _ in range(holders):
        borrowed = w["A"].still_borrowed(nested(X, "O"), "O")
        w.task_reply("O", "A", nested(X, "O"), borrowed)
    assert w["O"].refs[X].borrowers == {"A": holders}
    w.remove_local("O", X)
    for _ in range(holders - 1):
        w.remove_local("A", X)
    assert w.freed["O"] == []
    w.remove_local("A", X)  # one notice carries all `holders` registrations
    assert w.freed["O"] == [X]
    assert w.tables_empty()
