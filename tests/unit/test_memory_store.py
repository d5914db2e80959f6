"""The memory store's values and waiters on bare Reference records."""

from __future__ import annotations

from ownrun.engine.ownership import memory_store as ms
from ownrun.engine.ownership.reference_counter import ReferenceCounter, Release

ME, OTHER = "tcp://me", "tcp://other"


def test_value_wire_form_round_trips():
    for value, frames in [(ms.inline_value([b"ab", b"c"], 3), [b"ab", b"c"]),
                          (ms.error_value([b"e"]), [b"e"]),
                          (ms.shm_value("n1", 1 << 20, "tcp://d1"), [])]:
        meta = value.to_meta([[b"x", OTHER]])
        back, contains = ms.value_from_meta(meta, [b"header", *frames], 1)
        assert (back.kind, back.frames, back.daemon, back.node_id) == \
            (value.kind, value.frames or None if value.kind == ms.SHM else value.frames, value.daemon, value.node_id)
        assert contains == [[b"x", OTHER]]
        if value.kind != ms.ERROR:
            assert back.size == value.size


def test_a_borrowed_value_is_requested_from_its_owner_once():
    ref = ReferenceCounter(ME).get_or_add_borrowed(b"o", OTHER)
    assert ms.add_waiter(ref, "w1") is True
    assert ms.add_waiter(ref, "w2") is False
    assert ref.requested


def test_owned_values_are_never_requested():
    ref = ReferenceCounter(ME).add_owned(b"o")
    assert ms.add_waiter(ref, "w1") is False and not ref.requested


def test_first_value_wins_and_hands_back_the_waiters():
    rc = ReferenceCounter(ME)
    ref = rc.get_or_add_borrowed(b"o", OTHER)
    ms.add_waiter(ref, "w1")
    first = ms.inline_value([b"1"], 1)
    assert ms.set_value(ref, first) == ["w1"]
    assert ms.set_value(ref, ms.inline_value([b"2"], 1)) is None
    assert ref.value is first and ref.waiters is None and not ref.requested
    rc.check(b"o", Release())  # (the task manager checks scope once the waiters are gone)
    rc.validate_state()
    assert b"o" not in rc.refs


def test_removing_the_last_waiter_clears_the_list():
    ref = ReferenceCounter(ME).add_owned(b"o")
    ms.add_waiter(ref, "w1")
    ms.remove_waiter(ref, "w1")
    ms.remove_waiter(ref, "w1")  # twice is harmless
    assert ref.waiters is None


def test_a_lost_value_keeps_its_size_for_the_rebuild():
    ref = ReferenceCounter(ME).add_owned(b"o")
    ms.set_value(ref, ms.shm_value("n1", 4096, "tcp://d1"))
    ms.lose_value(ref)
    assert ref.value is None and ref.size == 4096
