"""Pulls (object transfer between daemons), driven by hand with no sockets; `validate_state()`
after every step. Chunks are 10 bytes, 2 in flight per pull, 3 per source daemon."""

from __future__ import annotations

import pytest
from ownrun.engine.node.transfer import Pulls, serve_chunk

SRC = "tcp://source"
OTHER = "tcp://other"


class Checked:
    def __init__(self, pulls: Pulls):
        self._pulls = pulls

    def __getattr__(self, name):
        value = getattr(self._pulls, name)
        if not callable(value) or name == "validate_state":
            return value

        def checked(*args, **kwargs):
            result = value(*args, **kwargs)
            self._pulls.validate_state()
            return result

        return checked


@pytest.fixture
def pulls():
    return Checked(Pulls(chunk_size=10, window=2, per_peer=3, stall_timeout=5.0))


def deliver(pulls, request, total: int, now: float = 0.0):
    """The source answers one chunk request with the right number of bytes."""
    _, oid, offset, length = request
    return pulls.received(oid, offset, total, max(0, min(length, total - offset)), now)


def test_a_pull_asks_for_the_first_chunk_then_a_window_of_chunks(pulls):
    out = pulls.want(b"o1", SRC, "reader", now=0.0)
    assert out.requests == [(SRC, b"o1", 0, 10)]  # the size is not known yet
    out = deliver(pulls, out.requests[0], total=45)
    assert out.requests == [(SRC, b"o1", 10, 10), (SRC, b"o1", 20, 10)]  # window 2
    out = deliver(pulls, out.requests[0], total=45)
    assert out.requests == [(SRC, b"o1", 30, 10)]
    more = deliver(pulls, (SRC, b"o1", 20, 10), total=45)
    assert more.requests == [(SRC, b"o1", 40, 5)]  # the last chunk is short
    assert deliver(pulls, out.requests[0], total=45).finished == []
    done = deliver(pulls, more.requests[0], total=45)
    assert done.finished and done.finished[0][1] is None
    assert done.finished[0][0].readers == ["reader"]
    assert pulls.pulls == {} and pulls.peer_in_flight == {}


def test_readers_of_an_object_being_pulled_join_the_pull(pulls):
    first = pulls.want(b"o1", SRC, "r1", now=0.0)
    assert pulls.want(b"o1", SRC, "r2", now=0.1).requests == []
    out = deliver(pulls, first.requests[0], total=3)
    ((pull, reason),) = out.finished
    assert reason is None and pull.readers == ["r1", "r2"]


def test_empty_object_takes_one_chunk(pulls):
    out = pulls.want(b"empty", SRC, "r", now=0.0)
    done = deliver(pulls, out.requests[0], total=0)
    assert done.finished[0][1] is None


def test_chunks_in_flight_per_source_are_bounded_across_pulls(pulls):
    asked = [pulls.want(oid, SRC, "r", now=0.0).requests for oid in (b"a", b"b", b"c", b"d")]
    assert [len(r) for r in asked] == [1, 1, 1, 0]  # d waits for a slot
    assert pulls.peer_in_flight[SRC] == 3
    out = deliver(pulls, asked[0][0], total=100)  # a learns its size; one slot frees
    assert out.requests == [(SRC, b"d", 0, 10)]  # round robin: d's turn before a's second
    out = deliver(pulls, asked[1][0], total=100)
    assert out.requests == [(SRC, b"a", 10, 10)]
    assert pulls.peer_in_flight[SRC] == 3
    other = pulls.want(b"x", OTHER, "r", now=0.0)
    assert other.requests == [(OTHER, b"x", 0, 10)]  # another peer has its own budget


def test_source_without_a_copy_ends_the_pull_with_the_reason(pulls):
    out = pulls.want(b"o1", SRC, "r", now=0.0)
    out = pulls.received(b"o1", 0, -1, 0, now=0.1)
    ((pull, reason),) = out.finished
    assert "has no copy" in reason and pull.readers == ["r"]


def test_source_dying_mid_transfer_ends_its_pulls_and_late_chunks_are_ignored(pulls):
    out = pulls.want(b"o1", SRC, "r", now=0.0)
    out = deliver(pulls, out.requests[0], total=100)
    pulls.want(b"o2", OTHER, "r2", now=0.0)
    died = pulls.source_died(SRC)
    ((pull, reason),) = died.finished
    assert pull.oid == b"o1" and "died" in reason
    assert list(pulls.pulls) == [b"o2"]
    assert pulls.expects(b"o1", 10) is None
    assert deliver(pulls, out.requests[0], total=100).finished == []  # late: ignored


def test_store_failure_ends_the_pull_and_frees_its_slots(pulls):
    out = pulls.want(b"o1", SRC, "r", now=0.0)
    out = deliver(pulls, out.requests[0], total=100)
    failed = pulls.failed(b"o1", "cannot store it: full")
    assert failed.finished[0][1] == "cannot store it: full"
    assert pulls.peer_in_flight == {}


def test_stalled_pull_ends_after_the_stall_timeout(pulls):
    out = pulls.want(b"o1", SRC, "r", now=0.0)
    deliver(pulls, out.requests[0], total=100, now=1.0)
    assert pulls.tick(now=5.9).finished == []
    ((_, reason),) = pulls.tick(now=6.0).finished
    assert "no data" in reason


def test_a_freed_slot_goes_to_a_pull_waiting_for_one(pulls):
    pulls.want(b"a", SRC, "r", now=0.0)
    pulls.want(b"b", SRC, "r", now=0.0)
    pulls.want(b"c", SRC, "r", now=0.0)
    assert pulls.want(b"d", SRC, "r", now=0.0).requests == []
    out = pulls.received(b"a", 0, 5, 5, now=0.1)  # a is complete: its slot goes to d
    assert out.finished[0][0].oid == b"a"
    assert out.requests == [(SRC, b"d", 0, 10)]


class FakeStore:
    def __init__(self, data: bytes | None):
        self.data, self.pins = data, 0

    def get(self, oid, client):
        if self.data is None:
            return None
        self.pins += 1
        return type("P", (), {"size": len(self.data)})()

    def read(self, oid):
        return memoryview(self.data)

    def release(self, oid, client):
        self.pins -= 1


def test_serve_chunk_copies_one_chunk_under_a_short_pin():
    store = FakeStore(b"0123456789abc")
    assert serve_chunk(store, b"o", 10, 10) == (13, b"abc")
    assert store.pins == 0
    assert serve_chunk(FakeStore(None), b"o", 0, 10) == (-1, b"")


@pytest.mark.parametrize("seed", range(40))
def test_random_transfers_keep_the_invariants_and_answer_every_reader(seed):
    """Random interleavings of wants, chunk arrivals (in any order), failures and time: every
    reader is answered exactly once, and the flow-control bounds hold after every step."""
    import random

    rng = random.Random(seed)
    pulls = Checked(Pulls(chunk_size=10, window=2, per_peer=3, stall_timeout=5.0))
    sizes = {f"o{i}".encode(): rng.choice([-1, 0, 7, 10, 35, 64]) for i in range(6)}  # -1: no copy
    sources = {oid: rng.choice([SRC, OTHER]) for oid in sizes}
    outstanding: list = []  # chunk requests sent, not yet answered
    answered: dict = {}
    readers = 0
    now = 0.0

    def absorb(out):
        outstanding.extend(out.requests)
        for pull, reason in out.finished:
            for reader in pull.readers:
                assert reader not in answered, "a reader answered twice"
                answered[reader] = reason

    for _ in range(rng.randint(10, 80)):
        now += rng.choice([0.0, 0.5, 2.0])
        event = rng.choice(["want", "chunk", "chunk", "chunk", "died", "tick", "failed"])
        if event == "want":
            oid = rng.choice(list(sizes))
            readers += 1
            absorb(pulls.want(oid, sources[oid], readers, now))
        elif event == "chunk" and outstanding:
            source, oid, offset, length = outstanding.pop(rng.randrange(len(outstanding)))
            total = sizes[oid]
            absorb(pulls.received(oid, offset, total, max(0, min(length, total - offset)), now))
        elif event == "died":
            absorb(pulls.source_died(rng.choice([SRC, OTHER])))
        elif event == "tick":
            absorb(pulls.tick(now))
        elif event == "failed" and pulls.pulls:
            absorb(pulls.failed(rng.choice(list(pulls.pulls)), "store full"))
    while outstanding:  # deliver the rest: every pull still running completes
        source, oid, offset, length = outstanding.pop(0)
        total = sizes[oid]
        absorb(pulls.received(oid, offset, total, max(0, min(length, total - offset)), now))
    assert pulls.pulls == {} and pulls.peer_in_flight == {}
    assert len(answered) == readers
