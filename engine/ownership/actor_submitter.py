"""The actor submitter: one caller's view of one actor, as a pure state machine (§3, §5).

Owns, for one actor this process calls: where the actor lives (address, worker, the daemon
of its node), the calls this process submitted to it with their sequence numbers, the calls
in flight (pushed, awaiting a reply), the restart machine and the handle-scope rule. The
creator (the process that ran `A.remote()`) also owns the creation task and drives
restarts; every other caller looks the actor's address up at the head.

Events in (methods), instructions out (each method returns a list of them):

    submit_call, call_resolved, call_finished, call_failed     one method call's life
    creation_submitted, creation_failed, lease_granted, lease_failed    the creator's lease
    creation_lost_argument                                      the constructor could not fetch one
    worker_died, head_update, lookup_answered                   failures, the head's word
    kill, handles_out_of_scope                                  ending it

    PushTask, RequestLease, ReportToHead (ACTOR_UPDATE), LookUp (ACTOR_LOOKUP),
    KillWorker, FailTask (ActorDiedError with the message), ReleaseCreationArgs,
    ResolveCreation (the task manager resolves the creation's arguments again)

The rules:
1. Ordering. Each call gets the next sequence number of this caller when it is submitted
   and waits in the queue in that order. The queue's head is pushed once the actor is ALIVE
   and the call's arguments are resolved; a call whose arguments are pending holds back the
   later ones (so calls never overtake each other, whatever their arguments). Pushed calls
   travel over one connection, so the actor runs them in sequence order.
2. Start. The creator pushes the constructor alone and holds the calls until it replies
   (one round trip, at each start only); a constructor that raised fails them on the worker
   with its error. A constructor that could not fetch an argument (its copy's node died:
   `creation_lost_argument`) costs no restart: that worker is killed and the task manager
   resolves the creation's arguments again (rebuilding lost ones, or waiting for the node's
   death notice first), then `creation_submitted` asks for a lease again.
3. Restarts. When the actor's process dies and `max_restarts` allows (-1: always), calls
   in flight go back to the front of the queue, in sequence order, while their
   `max_task_retries` allows (else they fail naming the reason); sequence numbers continue.
   The creator tells the head (RESTARTING) and has the creation's arguments resolved again
   (`ResolveCreation`: an argument whose copy died with the node is rebuilt or fetched anew,
   never named by its old location), asks for a new lease once they are (`creation_submitted`),
   then re-runs the constructor ahead of the queued calls; a caller looks the new address up
   at the head (naming the dead worker, so it is not answered with it).
4. Death. Killed, exited on purpose (`sys.exit()`), restarts used up, lease infeasible,
   unknown to the head: the actor is DEAD for good; every queued and later call fails with ActorDiedError carrying the reason.
5. Scope. When every handle is gone (`handles_out_of_scope`, creator only) the actor is
   killed once this process's submitted calls (queued and in flight) have finished.

States of this caller's view:
    PENDING     no address yet: the creator waits for its lease, a caller for its lookup
    ALIVE       address known: resolved calls at the queue's head are pushed (the creator's
                once the constructor on it replied: `starting` until then)
    RESTARTING  its process died: waiting for the new one (lease or lookup)
    DEAD        for good

Pure: no sockets, threads or clocks. Not thread-safe: the core worker calls it with its
state lock held. Fails only by instruction (FailTask); an event that does not apply to the
current state (a late reply, a stale head view) is ignored and returns no instructions.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

PENDING, ALIVE, RESTARTING, DEAD = "PENDING", "ALIVE", "RESTARTING", "DEAD"
STATES = (PENDING, ALIVE, RESTARTING, DEAD)
KILLED = "killed by engine.kill()"
ARGUMENT_LOST = "its constructor could not fetch an argument (the argument's node died); it is started again"
# engine.kill(no_restart=False): a crash on purpose, restarted if max_restarts allows (Ray)
KILLED_TO_RESTART = "its process was killed by engine.kill(no_restart=False)"
OUT_OF_SCOPE = "all handles to the actor went out of scope"
EXITED = "the actor exited"  # sys.exit() / exit_actor() in a method: intended, never restarted
NOT_KNOWN = "the actor is not known to the cluster (its creator may have died)"
HISTORY = 64  # transitions kept per actor
_NOTHING = ()  # what most events return: shared, not allocated per call


# ---- instructions -----------------------------------------------------------------------------
class PushTask(NamedTuple):
    entry: object
    address: str
    worker_id: bytes


class RequestLease(NamedTuple):
    resources: dict


class ReportToHead(NamedTuple):
    state: str  # RESTARTING or DEAD (the actor's worker reports ALIVE itself)
    reason: str


class LookUp(NamedTuple):
    not_worker_id: bytes | None  # answer only once it runs on another worker than this one


class KillWorker(NamedTuple):
    worker_id: bytes
    daemon: str | None  # None: this process's own daemon
    reason: str


class FailTask(NamedTuple):
    entry: object
    message: str  # the ActorDiedError's message


class ReleaseCreationArgs(NamedTuple):
    entry: object  # the actor is dead for good: the creation will not run again


class ResolveCreation(NamedTuple):
    entry: object  # the creation task: its arguments are resolved again, then creation_submitted
    reason: str  # why the constructor runs again


_new_tuple = tuple.__new__


class Call:
    """One method call from this caller: its place in the order and its retries left."""

    __slots__ = ("seq", "entry", "resolved", "retries_left")

    def __init__(self, seq: int, entry, retries_left: int):
        self.seq = seq
        self.entry = entry
        self.resolved = False
        self.retries_left = retries_left  # -1: unlimited


class ActorSubmitter:
    """One actor as seen by one calling process. Entries are opaque except `task_id` and
    `retries_left` (the call's `max_task_retries`), which are read, never written."""

    def __init__(self, actor_id: bytes, class_name: str, is_creator: bool,
                 max_restarts: int = 0, max_task_retries: int = 0,
                 address: str | None = None, worker_id: bytes | None = None):
        self.actor_id = actor_id
        self.class_name = class_name
        self.is_creator = is_creator
        self.state = PENDING
        self.address: str | None = None
        self.worker_id: bytes | None = None
        self.node_id: str | None = None
        self.daemon: str | None = None  # daemon of the actor's node (creator: it granted the lease)
        self.queue: deque[Call] = deque()  # submitted, not pushed, in sequence order
        self.unresolved: dict[bytes, Call] = {}  # queued calls whose arguments are pending
        self.in_flight: dict[bytes, Call] = {}  # pushed, awaiting a reply, in sequence order
        self.next_seq = 0
        self.dead_reason: str | None = None
        self.creation = None  # the creation task's entry (creator only)
        self.creation_replied = False  # the constructor's first run answered
        self.starting = False  # creator: the constructor runs on our worker; calls wait for its reply
        self.resolving = False  # creator: the creation's arguments are being resolved again
        self.lease_outstanding = False
        self.lookup_outstanding = False
        self.dead_workers: set[bytes] = set()  # workers of this actor seen dying
        self.last_dead_worker: bytes | None = None
        self.restarts_left = max_restarts  # -1: unlimited
        self.max_restarts = max_restarts
        self.max_task_retries = max_task_retries
        self.restarts = 0
        self.killed = False
        self.handles_gone = False
        self.log: deque = deque(maxlen=HISTORY)
        if address is not None and worker_id is not None:  # a handle that carried the address
            self.address, self.worker_id, self.state = address, worker_id, ALIVE

    # ---- queries --------------------------------------------------------------------------------
    def outstanding(self) -> int:
        """Calls this process submitted that have not finished (queued or in flight)."""
        return len(self.queue) + len(self.in_flight)

    def history(self) -> list[tuple[str, str, str]]:
        """The last transitions: (event, state after it, detail). Answers "what happened?"."""
        return list(self.log)

    def _note(self, event: str, detail: str = "") -> None:
        self.log.append((event, self.state, detail))

    def _died_message(self, why: str) -> str:
        return f"actor {self.class_name} ({self.actor_id.hex()[:12]}) died: {why}"

    # ---- one call's life --------------------------------------------------------------------------
    def submit_call(self, entry) -> list:
        """A method call was submitted (its arguments may still be pending)."""
        if self.state == DEAD:
            return _NOTHING  # it fails once resolved (call_resolved): the caller is mid-submission
        call = Call(self.next_seq, entry, entry.retries_left)
        self.next_seq += 1
        self.queue.append(call)
        self.unresolved[entry.task_id] = call
        if self.address is None and not self.is_creator and not self.lookup_outstanding:
            return self._look_up()
        return _NOTHING

    def call_resolved(self, entry) -> list:
        """The call's arguments have values: it may be pushed once it heads the queue."""
        call = self.unresolved.pop(entry.task_id, None)
        if call is None:
            if self.state == DEAD:
                return [FailTask(entry, self._died_message(self.dead_reason))]
            return _NOTHING
        call.resolved = True
        if self.state == ALIVE and self.queue[0] is call and not self.starting:
            return self._flush()
        return _NOTHING

    def call_finished(self, task_id: bytes) -> list:
        """A reply arrived (for a method call, or for the constructor)."""
        if self.in_flight.pop(task_id, None) is None:
            if self.creation is not None and task_id == self.creation.task_id:
                self.creation_replied = True
                if self.starting:  # the constructor ran (or raised): the calls may follow it
                    self.starting = False
                    self._note("constructed")
                    return self._flush()
            return _NOTHING
        if self.handles_gone and not self.in_flight and not self.queue:
            return self.kill(OUT_OF_SCOPE)
        return _NOTHING

    def call_failed(self, task_id: bytes) -> list:
        """The call ended at this process without a reply (an argument was an error, or it
        was cancelled while waiting for its arguments)."""
        call = self.unresolved.pop(task_id, None) or self.in_flight.pop(task_id, None)
        if call is None:
            call = next((c for c in self.queue if c.entry.task_id == task_id), None)
            if call is None:
                return _NOTHING  # not ours any more (we failed it ourselves)
        if call in self.queue:
            self.queue.remove(call)
        out = self._flush() if self.state == ALIVE and not self.starting else []
        if self.handles_gone and not self.in_flight and not self.queue:
            out += self.kill(OUT_OF_SCOPE)
        return out

    def _flush(self) -> list:
        """Pushes resolved calls at the head of the queue (ALIVE, constructor replied)."""
        out = []
        queue, in_flight = self.queue, self.in_flight
        address, worker_id = self.address, self.worker_id
        while queue and queue[0].resolved:
            call = queue.popleft()
            entry = call.entry
            in_flight[entry.task_id] = call
            out.append(_new_tuple(PushTask, (entry, address, worker_id)))  # PushTask(...), minus a call
        return out

    # ---- the creator's lease ------------------------------------------------------------------------
    def creation_submitted(self, entry) -> list:
        """The constructor's arguments are resolved: ask for the actor's dedicated worker."""
        self.creation = entry
        if self.state == DEAD:  # killed before it was ever placed
            return [FailTask(entry, self._died_message(self.dead_reason))]
        self.resolving = False
        self.lease_outstanding = True
        self._note("creation_submitted")
        return [RequestLease(entry.resources)]

    def creation_failed(self, reason: str) -> list:
        """The creation task failed before it was placed (an argument was an error)."""
        if self.state == DEAD:
            return _NOTHING
        self.creation_replied = True  # its error is stored already
        return self._die(reason)

    def creation_lost_argument(self) -> list:
        """The constructor could not fetch an argument (its copy's node died): the worker is
        killed (it holds no instance) without counting a restart, and the task manager
        resolves the creation again; `creation_submitted` follows. The held calls wait."""
        if not self.starting:
            return _NOTHING  # not the constructor of our current worker
        worker_id, daemon = self.worker_id, self.daemon
        self.starting = False
        self.dead_workers.add(worker_id)
        self.address = self.worker_id = None
        self.state = RESTARTING if self.restarts else PENDING
        self.resolving = True
        self._note("creation_lost_argument", worker_id.hex()[:12])
        return [KillWorker(worker_id, daemon, ARGUMENT_LOST)]

    def lease_granted(self, worker_id: bytes, address: str, node_id: str, daemon: str) -> list:
        if self.state == DEAD:  # killed before it started
            self.lease_outstanding = False
            self._note("lease_granted", "killing the late worker")
            return [KillWorker(worker_id, daemon, self.dead_reason)]
        if not self.lease_outstanding:  # a duplicate grant: the actor has its worker
            return [KillWorker(worker_id, daemon, "a second worker for an actor that has one")]
        self.lease_outstanding = False
        self.worker_id, self.address, self.node_id, self.daemon = worker_id, address, node_id, daemon
        self.state = ALIVE
        self.starting = True  # the calls follow once the constructor replied
        self._note("lease_granted", address)
        return [PushTask(self.creation, address, worker_id)]

    def lease_failed(self, reason: str) -> list:
        self.lease_outstanding = False
        return self._die(reason, creation_message=f"actor {self.class_name} could not be created: {reason}")

    # ---- failures and the head's word ------------------------------------------------------------------
    def worker_died(self, worker_id: bytes | None, reason: str) -> list:
        """The actor's process `worker_id` died (None: the one we use; e.g. its node died)."""
        if self.state == DEAD or (worker_id is not None and worker_id != self.worker_id):
            return []
        if self.state != ALIVE:
            return []  # already waiting for a new process
        if self.killed or reason.startswith((KILLED, EXITED)):
            return self._die(reason)
        if self.restarts_left == 0:
            return self._die(reason if self.max_restarts == 0 else
                             f"{reason}; its restarts are used up (max_restarts={self.max_restarts})")
        self.dead_workers.add(self.worker_id)
        self.last_dead_worker = self.worker_id
        self.address = self.worker_id = None
        self.state = RESTARTING
        self.starting = False
        out = []
        retry = []
        for call in self.in_flight.values():
            if call.retries_left != 0:
                if call.retries_left > 0:
                    call.retries_left -= 1
                retry.append(call)
            else:
                out.append(FailTask(call.entry, self._died_message(
                    f"it died ({reason}) while running this call, which has no retries left "
                    f"(max_task_retries={self.max_task_retries})")))
        self.in_flight.clear()
        self.queue.extendleft(reversed(retry))
        self._note("worker_died", reason)
        if self.is_creator:
            if self.restarts_left > 0:
                self.restarts_left -= 1
            self.restarts += 1
            self.resolving = True  # creation_submitted follows: then the lease is asked for
            return [ReportToHead(RESTARTING, reason), ResolveCreation(self.creation, reason), *out]
        if not self.lookup_outstanding:
            return [*self._look_up(), *out]
        return out

    def head_update(self, view: dict) -> list:
        """The head's word on the actor: a published change, or a lookup's answer."""
        if self.is_creator or self.state == DEAD:
            return []  # the creator drives restarts itself
        state, worker_id = view["state"], view["worker_id"]
        reason = view["reason"]
        if state == DEAD:
            return self._die(reason or "the actor died")
        if worker_id is not None and worker_id == self.worker_id and state != ALIVE:
            return self.worker_died(worker_id, reason or "its process died")
        if state != ALIVE or worker_id == self.worker_id or worker_id in self.dead_workers:
            return []  # nothing new, or stale
        out = []
        if self.worker_id is not None:  # the worker we were using died and was replaced
            out = self.worker_died(self.worker_id, reason or "its process died")
            if self.state == DEAD:
                return out
        self.address, self.worker_id = view["address"], worker_id
        self.state = ALIVE
        self._note("head_update", view["address"])
        return out + self._flush()

    def lookup_answered(self, found: bool, view: dict | None) -> list:
        self.lookup_outstanding = False
        if self.is_creator or self.state == DEAD:
            return []
        if not found or view is None:
            return self._die(NOT_KNOWN) if self.address is None else []
        out = self.head_update(view)
        if self.address is None and self.state != DEAD and not self.lookup_outstanding:
            out += self._look_up()  # the answer was stale: ask again
        return out

    def subscribe(self) -> list:
        """A handle arrived with an address that may be stale: hear from the head too."""
        if self.is_creator or self.state == DEAD or self.lookup_outstanding:
            return []
        return self._look_up()

    def _look_up(self) -> list:
        self.lookup_outstanding = True
        return [LookUp(self.last_dead_worker)]

    # ---- ending it ---------------------------------------------------------------------------------------
    def kill(self, reason: str = KILLED) -> list:
        """Kills the actor's process; calls from here fail at once, not when the kill lands."""
        if self.state == DEAD:
            return []
        self.killed = True
        out = []
        if self.worker_id is not None:
            out.append(KillWorker(self.worker_id, self.daemon, reason))
        return out + self._die(reason)

    def kill_to_restart(self) -> list:
        """`engine.kill(no_restart=False)`: ends the actor's process as a crash would, so the
        creator restarts it if `max_restarts` allows (and calls retry as `max_task_retries`
        allows), as in Ray. An actor with no process yet is left to start."""
        if self.state != ALIVE or self.worker_id is None:
            return []
        self._note("kill_to_restart")
        return [KillWorker(self.worker_id, self.daemon, KILLED_TO_RESTART)]

    def handles_out_of_scope(self) -> list:
        """Every handle to the actor is gone (creator only): kill it once the calls this
        process submitted have finished."""
        if self.state == DEAD:
            return []
        self.handles_gone = True
        if self.queue or self.in_flight:
            self._note("handles_out_of_scope", f"{self.outstanding()} calls to finish first")
            return []
        return self.kill(OUT_OF_SCOPE)

    def _die(self, reason: str, creation_message: str | None = None) -> list:
        self.state = DEAD
        self.dead_reason = reason
        self.starting = self.resolving = False
        self._note("died", reason)
        out = []
        if self.is_creator:
            out.append(ReportToHead(DEAD, reason))
            creation = self.creation
            if creation is not None:
                if self.creation_replied:
                    out.append(ReleaseCreationArgs(creation))  # a restart will not need them
                else:
                    out.append(FailTask(creation, creation_message or self._died_message(reason)))
        message = self._died_message(reason)
        for call in self.in_flight.values():
            out.append(FailTask(call.entry, message))
        for call in self.queue:
            out.append(FailTask(call.entry, message))
        self.in_flight.clear()
        self.queue.clear()
        self.unresolved.clear()
        return out

    # ---- invariants ----------------------------------------------------------------------------------------
    def validate_state(self) -> None:
        """Asserts the invariants (unit tests call it after every event)."""
        assert self.state in STATES, self.state
        assert (self.state == DEAD) == (self.dead_reason is not None)
        if self.state == DEAD:
            assert not self.queue and not self.in_flight and not self.unresolved
        if self.state == ALIVE:
            assert self.address is not None and self.worker_id is not None
            assert self.starting or not self.queue or not self.queue[0].resolved, \
                "a resolved call heads an ALIVE queue"
        if self.starting:
            assert self.is_creator and self.state == ALIVE and not self.in_flight, \
                "a call was pushed before the constructor replied"
        if self.resolving:
            assert self.is_creator and self.state in (PENDING, RESTARTING) and not self.lease_outstanding
        if self.state in (PENDING, RESTARTING):
            assert self.address is None and self.worker_id is None
        if self.in_flight:
            assert self.state == ALIVE, "calls in flight to an actor that is not ALIVE"
        seqs = [c.seq for c in self.in_flight.values()] + [c.seq for c in self.queue]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"out of order: {seqs}"
        assert all(s < self.next_seq for s in seqs)
        assert all(c.entry.task_id == t for t, c in self.in_flight.items())
        waiting = {c.entry.task_id for c in self.queue if not c.resolved}
        assert waiting == set(self.unresolved), (waiting, set(self.unresolved))
        assert all(c.resolved for c in self.in_flight.values())
        assert self.restarts_left >= -1
        if not self.is_creator:
            assert self.creation is None and not self.lease_outstanding and not self.handles_gone
        else:
            assert not self.lookup_outstanding
        if self.handles_gone:
            assert self.state == DEAD or self.queue or self.in_flight, "out of scope and idle, yet alive"
        if self.state == RESTARTING and self.is_creator:
            assert self.lease_outstanding or self.resolving, "a restart waits for nothing"
        if self.state == RESTARTING and not self.is_creator:
            assert self.lookup_outstanding
