"""Node liveness at the head: ALIVE -> SUSPECT -> DEAD, with fencing (§5). Pure.

Owns each node's liveness state and the rules that move it; events in (a heartbeat, a
connection the OS reports dropped, time passing, the head's own stall), instructions out
(`Suspect`, `Cleared`, `Dead`, `Fence`) that the head's shell (`server.Head`) carries out.

* A node that beats is ALIVE. Silent for `suspect_after` (default 1 s) it is SUSPECT: its
  work goes on, but daemons place no new leases on it (the cluster view marks it). A beat
  clears the suspicion.
* Silent for `dead_after` (default 30 s) it is DEAD. Long enough for a loaded machine: a
  daemon of a 2-core machine running the 60-video job (~200 processes) went 7 s between
  beats, and at 10 s the job once lost its only node (Ray declares a hung node dead after
  5 failed health checks 3 s apart). A crashed daemon is still dead at once (below).
* A death the OS reports (the head's connection to the daemon dropped: the process exited
  or closed its inbox) makes it DEAD at once, whatever the timers say, so a killed node is
  still detected within milliseconds.
* DEAD is final for that node id. A dead node that speaks again (a daemon that was paused,
  not killed) is answered with `Fence`: it must stop, as the owners already consider its
  workers and objects lost; a replacement joins under a new node id.
* The head's own stall (its loop did not run) does not count against the nodes: their
  silence is shifted by the stall's length (`forgive_stall`).

No clocks: `now` is passed in (monotonic seconds). No I/O, not thread-safe (the head's one
thread). Failures: `ValueError` for timeouts that are not positive; `validate_state()`
raises `AssertionError` on a broken invariant (unit tests call it after every step).
"""

from __future__ import annotations

from dataclasses import dataclass

ALIVE, SUSPECT, DEAD = "ALIVE", "SUSPECT", "DEAD"
DEFAULT_SUSPECT_AFTER = 1.0  # s without a heartbeat before no new leases go to a node
DEFAULT_DEAD_AFTER = 30.0  # s without a heartbeat before a node is declared dead


@dataclass(frozen=True)
class Suspect:
    """Place no new leases on `node_id` (its work continues)."""

    node_id: str
    silent_for: float


@dataclass(frozen=True)
class Cleared:
    """`node_id` beat again: it takes new leases again."""

    node_id: str


@dataclass(frozen=True)
class Dead:
    """Declare `node_id` dead: persist it, tell every daemon and the node's clients."""

    node_id: str
    reason: str


@dataclass(frozen=True)
class Fence:
    """`node_id` was declared dead but spoke: tell it to stop."""

    node_id: str
    reason: str


class NodeLiveness:
    """The liveness of every node the head knows."""

    def __init__(self, suspect_after: float = DEFAULT_SUSPECT_AFTER, dead_after: float = DEFAULT_DEAD_AFTER):
        if not (suspect_after > 0 and dead_after > 0):
            raise ValueError(f"liveness timeouts must be positive, not {suspect_after!r}, {dead_after!r}")
        self.dead_after = float(dead_after)
        self.suspect_after = min(float(suspect_after), self.dead_after)
        self.state: dict[str, str] = {}
        self.last_beat: dict[str, float] = {}  # ALIVE and SUSPECT nodes only
        self.death_reason: dict[str, str] = {}  # DEAD nodes only

    # ---- events ------------------------------------------------------------------------
    def known(self, node_id: str, alive: bool, now: float) -> None:
        """A node from the persisted table (a restarted head): alive ones get a full timeout."""
        if alive:
            self.state[node_id] = ALIVE
            self.last_beat[node_id] = now
        else:
            self.state[node_id] = DEAD
            self.last_beat.pop(node_id, None)
            self.death_reason[node_id] = "declared dead before the head restarted"

    def beat(self, node_id: str, now: float) -> list:
        """A heartbeat (or registration) from `node_id`."""
        state = self.state.get(node_id)
        if state == DEAD:
            return [Fence(node_id, self.death_reason[node_id])]
        self.state[node_id] = ALIVE
        self.last_beat[node_id] = now
        return [Cleared(node_id)] if state == SUSPECT else []

    def lost(self, node_id: str, reason: str) -> list:
        """The OS reported the node's daemon gone (its connection dropped): dead now."""
        if self.state.get(node_id) in (ALIVE, SUSPECT):
            return [self._die(node_id, reason)]
        return []

    def tick(self, now: float) -> list:
        """Time passed: silent nodes become SUSPECT, then DEAD."""
        out: list = []
        for node_id, last in list(self.last_beat.items()):
            silent = now - last
            if silent > self.dead_after:
                out.append(self._die(node_id, f"no heartbeat for {silent:.1f}s (timeout {self.dead_after:g}s)"))
            elif silent > self.suspect_after and self.state[node_id] == ALIVE:
                self.state[node_id] = SUSPECT
                out.append(Suspect(node_id, silent))
        return out

    def forgive_stall(self, now: float, stalled_for: float) -> None:
        """The head itself did not run for `stalled_for` s: that silence was ours, not the nodes'."""
        for node_id, last in self.last_beat.items():
            self.last_beat[node_id] = min(now, last + max(0.0, stalled_for))

    # ---- queries -----------------------------------------------------------------------
    def is_suspect(self, node_id: str) -> bool:
        return self.state.get(node_id) == SUSPECT

    def is_dead(self, node_id: str) -> bool:
        return self.state.get(node_id) == DEAD

    # ---- internals ---------------------------------------------------------------------
    def _die(self, node_id: str, reason: str) -> Dead:
        self.state[node_id] = DEAD
        del self.last_beat[node_id]
        self.death_reason[node_id] = reason
        return Dead(node_id, reason)

    def validate_state(self) -> None:
        assert 0 < self.suspect_after <= self.dead_after
        for node_id, state in self.state.items():
            assert state in (ALIVE, SUSPECT, DEAD), (node_id, state)
            assert (node_id in self.last_beat) == (state != DEAD), (node_id, state)
            assert (node_id in self.death_reason) == (state == DEAD), (node_id, state)
        assert set(self.last_beat) <= set(self.state)
        assert set(self.death_reason) <= set(self.state)
