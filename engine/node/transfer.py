"""Object transfer between node daemons: pull-based, chunked, with flow control.

Owns the pulls this node makes (`Pulls`): one per object, whichever readers wait for it.
The puller asks the source daemon for one chunk at a time (`OBJ_PULL oid offset length`)
and the source answers each request with one chunk (`OBJ_CHUNK`), read from its store under
a pin held only while it copies that chunk (`serve_chunk`). So neither side ever handles
more than a bounded amount of data per message, and the daemons' loops interleave chunks
with heartbeats and every other message while a large object moves:

* at most `window` chunks are requested and not yet received per pull, and
* at most `per_peer` chunks per source daemon across all pulls from it (round robin).

A pull ends `ok` once every byte arrived, or with a reason the readers are answered with:
the source has no copy (freed, or never had it), the source's node died (`source_died`,
from the head's NODE_DIED), the store could not take the object (`failed`), or no chunk
arrived for `stall_timeout` s (`tick`). Late chunks of an ended pull are ignored.

`Pulls` does no I/O and reads no clock: events in (`now` passed in), `TransferActions` out
(chunk requests to send, pulls that ended). The daemon creates the store entry on the first
chunk, writes each chunk, seals or aborts at the end, and answers the readers. Not
thread-safe (the daemon's thread).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHUNK_SIZE = 4 * 1024 * 1024
WINDOW = 4  # chunks in flight per pull
PER_PEER = 8  # chunks in flight per source daemon, across its pulls


@dataclass(slots=True, eq=False)
class Pull:
    """One object being pulled from one source daemon."""

    oid: bytes
    source: str  # the source daemon's inbox address
    readers: list  # opaque tokens of the readers waiting for it (the daemon's)
    last_progress: float  # when it started or last received a chunk
    total: int = -1  # the object's size; -1 until the first chunk says
    next_offset: int = 0  # the next chunk to request
    in_flight: set = field(default_factory=set)  # offsets requested, not yet received
    received: int = 0  # bytes received
    turn: int = 0  # when it was last given a chunk request (0: never): least recent goes first
    started: float = 0.0  # when the first reader asked (the timeline's transfer span)

    def wants_more(self, window: int) -> bool:
        if self.total < 0:  # the first chunk (which tells the size) comes first
            return self.next_offset == 0 and not self.in_flight
        return self.next_offset < self.total and len(self.in_flight) < window

    def complete(self) -> bool:
        return self.total >= 0 and self.received >= self.total and not self.in_flight


@dataclass(slots=True)
class TransferActions:
    requests: list = field(default_factory=list)  # (source, oid, offset, length): ask for a chunk
    finished: list = field(default_factory=list)  # (Pull, reason or None if ok): answer its readers


class Pulls:
    def __init__(self, chunk_size: int = CHUNK_SIZE, window: int = WINDOW, per_peer: int = PER_PEER,
                 stall_timeout: float = 60.0):
        self.chunk_size = chunk_size
        self.window = window
        self.per_peer = per_peer
        self.stall_timeout = stall_timeout
        self.pulls: dict[bytes, Pull] = {}
        self.peer_in_flight: dict[str, int] = {}  # source -> chunks requested, not yet received
        self._turns = 0

    # ---- events ------------------------------------------------------------------------
    def want(self, oid: bytes, source: str, reader, now: float) -> TransferActions:
        """A reader wants `oid`, a copy of which `source` holds: joins or starts its pull."""
        out = TransferActions()
        pull = self.pulls.get(oid)
        if pull is not None:
            pull.readers.append(reader)
            return out
        self.pulls[oid] = Pull(oid, source, [reader], now, started=now)
        self._issue(source, out)
        return out

    def expects(self, oid: bytes, offset: int) -> Pull | None:
        """The pull a chunk belongs to, if it was requested and the pull has not ended."""
        pull = self.pulls.get(oid)
        return pull if pull is not None and offset in pull.in_flight else None

    def received(self, oid: bytes, offset: int, total: int, nbytes: int, now: float) -> TransferActions:
        """A chunk arrived and was written (`total` -1: the source has no copy)."""
        out = TransferActions()
        pull = self.expects(oid, offset)
        if pull is None:
            return out
        self._landed(pull, offset)
        if total < 0:
            self._end(pull, f"node daemon {pull.source} has no copy of the object", out)
        elif pull.total >= 0 and total != pull.total:
            self._end(pull, f"the object's size changed from {pull.total} to {total} bytes", out)
        else:
            pull.total = total
            pull.received += nbytes
            pull.last_progress = now
            if pull.complete():
                self._end(pull, None, out)
        self._issue(pull.source, out)
        return out

    def failed(self, oid: bytes, reason: str) -> TransferActions:
        """The daemon could not take the object (its store is full): the pull ends."""
        out = TransferActions()
        pull = self.pulls.get(oid)
        if pull is not None:
            self._end(pull, reason, out)
            self._issue(pull.source, out)
        return out

    def source_died(self, source: str) -> TransferActions:
        out = TransferActions()
        for pull in [p for p in self.pulls.values() if p.source == source]:
            self._end(pull, f"the node of daemon {source} died during the transfer", out)
        self.peer_in_flight.pop(source, None)
        return out

    def tick(self, now: float) -> TransferActions:
        out = TransferActions()
        for pull in [p for p in self.pulls.values() if now - p.last_progress >= self.stall_timeout]:
            self._end(pull, f"no data from node daemon {pull.source} for {self.stall_timeout:g}s", out)
            self._issue(pull.source, out)
        return out

    # ---- the decisions -----------------------------------------------------------------------
    def _landed(self, pull: Pull, offset: int) -> None:
        pull.in_flight.discard(offset)
        left = self.peer_in_flight.get(pull.source, 0) - 1
        if left > 0:
            self.peer_in_flight[pull.source] = left
        else:
            self.peer_in_flight.pop(pull.source, None)

    def _end(self, pull: Pull, reason: str | None, out: TransferActions) -> None:
        del self.pulls[pull.oid]
        for offset in list(pull.in_flight):  # their chunks will be ignored when they come
            self._landed(pull, offset)
        out.finished.append((pull, reason))

    def _issue(self, source: str, out: TransferActions) -> None:
        """Requests chunks from `source` while its pulls want more and the peer has room."""
        pulls = sorted((p for p in self.pulls.values() if p.source == source), key=lambda p: p.turn)
        progress = True
        while progress and self.peer_in_flight.get(source, 0) < self.per_peer:
            progress = False
            for pull in pulls:  # one chunk per pull per round, least recently served first
                if self.peer_in_flight.get(source, 0) >= self.per_peer:
                    break
                if pull.wants_more(self.window):
                    offset = pull.next_offset
                    length = self.chunk_size if pull.total < 0 else min(self.chunk_size, pull.total - offset)
                    pull.in_flight.add(offset)
                    pull.next_offset = offset + max(length, 1)
                    self.peer_in_flight[source] = self.peer_in_flight.get(source, 0) + 1
                    self._turns += 1
                    pull.turn = self._turns
                    out.requests.append((source, pull.oid, offset, length))
                    progress = True

    # ---- invariants (checked after every step in the unit tests) ----------------------------
    def validate_state(self) -> None:
        per_peer: dict[str, int] = {}
        for oid, pull in self.pulls.items():
            assert pull.oid == oid
            assert pull.readers, "a pull nobody waits for"
            assert len(pull.in_flight) <= self.window, "more chunks in flight than the window"
            if pull.total < 0:
                assert pull.received == 0 and pull.in_flight <= {0}
            else:
                assert pull.received <= pull.total, "more bytes than the object has"
                assert all(0 <= o < max(pull.total, 1) for o in pull.in_flight)
                assert not pull.complete(), "a complete pull was not ended"
            per_peer[pull.source] = per_peer.get(pull.source, 0) + len(pull.in_flight)
        for source, count in per_peer.items():
            assert count <= self.per_peer, f"{count} chunks in flight from {source}"
        assert {s: n for s, n in per_peer.items() if n} == self.peer_in_flight, \
            "the per-peer counts drifted"


def serve_chunk(store, oid: bytes, offset: int, length: int) -> tuple[int, bytes]:
    """The source side: one chunk of a sealed object, copied under a pin held only for the
    copy; `(-1, b"")` if this store has no readable copy."""
    placement = store.get(oid, b"transfer")
    if placement is None:
        return -1, b""
    try:
        return placement.size, bytes(store.read(oid)[offset:offset + length])
    finally:
        store.release(oid, b"transfer")
