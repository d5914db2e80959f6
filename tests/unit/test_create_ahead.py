"""The object a process creates ahead of its next put: one at a time, for one size."""

from __future__ import annotations

from ownrun.engine.store.create_ahead import CreateAhead, CreatedAhead


def test_the_next_put_of_the_same_size_takes_what_was_created_ahead():
    ahead = CreateAhead(max_bytes=1000)
    assert ahead.wanted(100)
    assert ahead.made(CreatedAhead(b"a", 100, "request")) is None
    assert not ahead.wanted(100)  # one at a time
    taken, stale = ahead.take(100)
    assert (taken.oid, taken.request, stale) == (b"a", "request", None)
    assert ahead.take(100) == (None, None)  # taken once
    assert (ahead.used, ahead.aborted) == (1, 0)


def test_a_put_of_another_size_gets_the_stale_one_to_abort():
    ahead = CreateAhead(max_bytes=1000)
    ahead.made(CreatedAhead(b"a", 100, None))
    assert ahead.take(200) == (None, b"a")
    assert ahead.wanted(200) and (ahead.used, ahead.aborted) == (0, 1)


def test_nothing_is_created_ahead_for_empty_or_too_large_puts():
    ahead = CreateAhead(max_bytes=1000)
    assert not ahead.wanted(0) and not ahead.wanted(1001) and ahead.wanted(1000)
    assert not CreateAhead(max_bytes=0).wanted(1)


def test_a_second_creator_displaces_the_first_which_must_be_aborted():
    ahead = CreateAhead(max_bytes=1000)
    ahead.made(CreatedAhead(b"a", 100, None))
    assert ahead.made(CreatedAhead(b"b", 100, None)) == b"a"
    taken, _ = ahead.take(100)
    assert taken.oid == b"b" and ahead.aborted == 1
