"""The objects a process creates ahead of its next puts: up to `depth`, of one size."""

from __future__ import annotations

from ownrun.engine.store.create_ahead import CreateAhead, CreatedAhead


def test_puts_of_the_same_size_take_what_was_created_ahead_oldest_first():
    ahead = CreateAhead(max_bytes=1000, depth=2)
    assert ahead.wanted(100) == 2
    assert ahead.made(CreatedAhead(b"a", 100, "request a")) is None
    assert ahead.made(CreatedAhead(b"b", 100, "request b")) is None
    assert ahead.wanted(100) == 0  # two at most
    taken, stale = ahead.take(100)
    assert (taken.oid, taken.request, stale) == (b"a", "request a", [])
    assert ahead.wanted(100) == 1  # one more after each put
    assert ahead.take(100)[0].oid == b"b"
    assert ahead.take(100) == (None, [])  # each taken once
    assert (ahead.used, ahead.aborted) == (2, 0)


def test_a_put_of_another_size_gets_every_stale_one_to_abort():
    ahead = CreateAhead(max_bytes=1000, depth=2)
    ahead.made(CreatedAhead(b"a", 100, None))
    ahead.made(CreatedAhead(b"b", 100, None))
    assert ahead.take(200) == (None, [b"a", b"b"])
    assert ahead.wanted(200) == 2 and (ahead.used, ahead.aborted) == (0, 2)


def test_nothing_is_created_ahead_for_empty_or_too_large_puts():
    ahead = CreateAhead(max_bytes=1000)
    assert (ahead.wanted(0), ahead.wanted(1001)) == (0, 0) and ahead.wanted(1000) > 0
    assert CreateAhead(max_bytes=0).wanted(1) == 0


def test_one_made_beyond_the_depth_displaces_the_oldest_which_must_be_aborted():
    ahead = CreateAhead(max_bytes=1000, depth=1)  # two threads both saw room for one
    ahead.made(CreatedAhead(b"a", 100, None))
    assert ahead.made(CreatedAhead(b"b", 100, None)) == b"a"
    taken, _ = ahead.take(100)
    assert taken.oid == b"b" and ahead.aborted == 1
