"""The actor submitter driven by hand, with no processes: ordering, restarts, death, scope.

Every event goes through `step`, which checks `validate_state()` after it.
"""

from __future__ import annotations

import random

import pytest
from ownrun.engine.ownership import actor_submitter as S
from ownrun.engine.ownership.actor_submitter import (
    ALIVE,
    DEAD,
    PENDING,
    RESTARTING,
    ActorSubmitter,
    FailTask,
    KillWorker,
    LookUp,
    PushTask,
    ReleaseCreationArgs,
    ReportToHead,
    RequestLease,
    ResolveCreation,
)

ACTOR = b"A" * 16


class Entry:
    """The two fields of a TaskEntry the submitter reads (and a name for messages)."""

    def __init__(self, name: str, retries: int = 0, resources: dict | None = None):
        self.task_id = name.encode().ljust(16, b"\0")
        self.name = name
        self.retries_left = retries
        self.resources = resources or {"CPU": 1}

    def __repr__(self) -> str:
        return self.name


def step(actor: ActorSubmitter, event: str, *args) -> list:
    out = list(getattr(actor, event)(*args))
    actor.validate_state()
    return out


def pushed(out: list) -> list[str]:
    return [i.entry.name for i in out if isinstance(i, PushTask)]


def failed(out: list) -> dict[str, str]:
    return {i.entry.name: i.message for i in out if isinstance(i, FailTask)}


def call(actor: ActorSubmitter, name: str, retries: int = 0) -> tuple[Entry, list]:
    """Submits a call whose arguments are already resolved."""
    entry = Entry(name, retries)
    out = step(actor, "submit_call", entry) + step(actor, "call_resolved", entry)
    return entry, list(out)


def created(max_restarts: int = 0, max_task_retries: int = 0) -> tuple[ActorSubmitter, Entry]:
    """A creator's actor, running on worker w1."""
    actor = ActorSubmitter(ACTOR, "Counter", True, max_restarts, max_task_retries)
    creation = Entry("init", 0, {"CPU": 0, "gpu": 1})
    assert step(actor, "creation_submitted", creation) == [RequestLease({"CPU": 0, "gpu": 1})]
    out = step(actor, "lease_granted", b"w1", "tcp://w1", "n1", "tcp://d1")
    assert pushed(out) == ["init"]
    step(actor, "call_finished", creation.task_id)
    return actor, creation


def restart(actor: ActorSubmitter, creation: Entry, worker: bytes = b"w2") -> list:
    """After a death: the creation's arguments resolve again, a lease arrives, the constructor
    replies. Returns what the constructor's reply released (the held calls)."""
    assert step(actor, "creation_submitted", creation) == [RequestLease(creation.resources)]
    out = step(actor, "lease_granted", worker, "tcp://" + worker.decode(), "n1", "tcp://d1")
    assert pushed(out) == ["init"] and actor.starting
    return step(actor, "call_finished", creation.task_id)


def view(state: str, worker: bytes | None, address: str | None = None, reason: str | None = None) -> dict:
    return {"actor_id": ACTOR, "state": state, "address": address, "worker_id": worker, "reason": reason}


# ---- ordering ------------------------------------------------------------------------------------
def test_calls_before_the_lease_are_pushed_in_order_once_the_constructor_replied():
    actor = ActorSubmitter(ACTOR, "Counter", True)
    creation = Entry("init")
    step(actor, "creation_submitted", creation)
    for name in ("a", "b", "c"):
        assert call(actor, name)[1] == []
    out = step(actor, "lease_granted", b"w1", "tcp://w1", "n1", "tcp://d1")
    assert pushed(out) == ["init"]
    assert call(actor, "late")[1] == []  # held too, behind the others
    out = step(actor, "call_finished", creation.task_id)
    assert pushed(out) == ["a", "b", "c", "late"]
    assert all(i.address == "tcp://w1" and i.worker_id == b"w1" for i in out)
    assert call(actor, "d")[1] == [PushTask(actor.in_flight[b"d".ljust(16, b"\0")].entry, "tcp://w1", b"w1")]


def test_a_call_with_pending_arguments_holds_back_later_calls_from_the_same_caller():
    actor, _ = created()
    slow = Entry("slow")
    assert step(actor, "submit_call", slow) == []
    _, out = call(actor, "fast")
    assert out == []  # it waits for "slow", whose argument is not ready
    out = step(actor, "call_resolved", slow)
    assert pushed(out) == ["slow", "fast"]


def test_a_call_that_fails_while_waiting_for_arguments_unblocks_the_later_ones():
    actor, _ = created()
    doomed = Entry("doomed")
    step(actor, "submit_call", doomed)
    call(actor, "next")
    assert pushed(step(actor, "call_failed", doomed.task_id)) == ["next"]
    assert step(actor, "call_failed", doomed.task_id) == []  # told twice: no-op


# ---- restarts ---------------------------------------------------------------------------------------
def test_calls_in_flight_when_the_actor_died_rerun_first_in_order_and_numbers_continue():
    actor, creation = created(max_restarts=-1, max_task_retries=-1)
    for name in ("a", "b", "c"):
        call(actor, name, retries=-1)
    step(actor, "call_finished", Entry("a").task_id)
    out = step(actor, "worker_died", b"w1", "SIGKILL")
    assert out[:2] == [ReportToHead(RESTARTING, "SIGKILL"), ResolveCreation(creation, "SIGKILL")]
    assert actor.state == RESTARTING and not failed(out)
    _, out = call(actor, "d", retries=-1)  # submitted while it restarts
    assert out == []
    out = restart(actor, creation)
    assert pushed(out) == ["b", "c", "d"]
    assert [c.seq for c in actor.in_flight.values()] == [1, 2, 3]
    _, out = call(actor, "e", retries=-1)
    assert pushed(out) == ["e"] and actor.in_flight[Entry("e").task_id].seq == 4
    assert actor.restarts == 1 and actor.restarts_left == -1


def test_a_call_without_retries_left_fails_naming_the_reason_and_later_calls_reach_the_restart():
    actor, creation = created(max_restarts=1, max_task_retries=1)
    call(actor, "once", retries=1)
    step(actor, "worker_died", b"w1", "SIGKILL")
    restart(actor, creation)
    out = step(actor, "worker_died", None, "out of memory")  # "once" used its one retry
    # max_restarts=1 is used up by now: the actor dies for good
    assert actor.state == DEAD
    message = failed(out)["once"]
    assert "out of memory" in message and "max_restarts=1" in message


def test_exhausted_task_retries_fail_the_call_but_not_the_actor():
    actor, creation = created(max_restarts=-1, max_task_retries=0)
    call(actor, "running", retries=0)
    out = step(actor, "worker_died", b"w1", "SIGKILL")
    message = failed(out)["running"]
    assert "SIGKILL" in message and "max_task_retries=0" in message
    assert "Counter" in message and actor.state == RESTARTING
    restart(actor, creation)
    assert pushed(call(actor, "later")[1]) == ["later"]


def test_restarts_used_up_kill_the_actor_for_good_and_fail_later_calls():
    actor, creation = created(max_restarts=1)
    step(actor, "worker_died", b"w1", "SIGKILL")
    restart(actor, creation)
    call(actor, "queued")
    out = step(actor, "worker_died", b"w2", "SIGSEGV")
    assert actor.state == DEAD
    assert ReportToHead(DEAD, actor.dead_reason) in out
    assert ReleaseCreationArgs(creation) in out  # no restart will re-run the constructor
    assert "SIGSEGV" in failed(out)["queued"] and "max_restarts=1" in failed(out)["queued"]
    late = Entry("late")
    assert step(actor, "submit_call", late) == []
    assert "SIGSEGV" in failed(step(actor, "call_resolved", late))["late"]


def test_an_actor_that_exited_on_purpose_is_dead_for_good_despite_restarts_left():
    actor, _ = created(max_restarts=-1, max_task_retries=-1)
    leaving, _ = call(actor, "leave")
    out = step(actor, "worker_died", b"w1", f"{S.EXITED} (sys.exit() in Counter.leave)")
    assert actor.state == DEAD and not any(isinstance(i, RequestLease) for i in out)
    assert "exited" in failed(out)["leave"]  # the call in progress is not retried


def test_a_death_notice_for_another_worker_is_ignored():
    actor, _ = created(max_restarts=-1)
    assert step(actor, "worker_died", b"w9", "SIGKILL") == []
    assert actor.state == ALIVE


def test_a_restart_resolves_the_creation_again_before_it_asks_for_a_lease():
    actor, creation = created(max_restarts=-1, max_task_retries=-1)
    out = step(actor, "worker_died", b"w1", "node n1 died")
    assert ResolveCreation(creation, "node n1 died") in out
    assert not any(isinstance(i, RequestLease) for i in out) and actor.resolving
    assert step(actor, "lease_granted", b"w9", "tcp://w9", "n1", "tcp://d1") == [
        KillWorker(b"w9", "tcp://d1", "a second worker for an actor that has one")]  # none was asked for
    assert step(actor, "creation_submitted", creation) == [RequestLease(creation.resources)]
    assert not actor.resolving and actor.lease_outstanding


def test_a_constructor_that_could_not_fetch_an_argument_costs_no_restart_and_its_calls_wait():
    actor, creation = created(max_restarts=2, max_task_retries=-1)
    call(actor, "a", retries=-1)
    step(actor, "worker_died", b"w1", "connection lost")
    step(actor, "creation_submitted", creation)
    out = step(actor, "lease_granted", b"w2", "tcp://w2", "n2", "tcp://d2")
    assert pushed(out) == ["init"]
    call(actor, "b", retries=-1)
    out = step(actor, "creation_lost_argument")
    assert out == [KillWorker(b"w2", "tcp://d2", S.ARGUMENT_LOST)]
    assert actor.state == RESTARTING and actor.resolving
    assert actor.restarts == 1 and actor.restarts_left == 1
    assert step(actor, "worker_died", None, S.ARGUMENT_LOST) == []  # our kill: nothing to restart
    assert step(actor, "creation_lost_argument") == []  # told twice
    assert pushed(restart(actor, creation, b"w3")) == ["a", "b"]
    assert actor.restarts == 1 and not failed(out)


def test_a_first_constructor_that_could_not_fetch_an_argument_is_placed_again_unreported():
    actor = ActorSubmitter(ACTOR, "Counter", True)
    creation = Entry("init")
    step(actor, "creation_submitted", creation)
    step(actor, "lease_granted", b"w1", "tcp://w1", "n1", "tcp://d1")
    call(actor, "a")
    out = step(actor, "creation_lost_argument")
    assert out == [KillWorker(b"w1", "tcp://d1", S.ARGUMENT_LOST)] and actor.state == PENDING
    assert pushed(restart(actor, creation, b"w2")) == ["a"]


def test_calls_held_for_a_constructor_that_raised_go_to_its_worker_which_fails_them():
    actor = ActorSubmitter(ACTOR, "Counter", True, -1)
    creation = Entry("init")
    step(actor, "creation_submitted", creation)
    step(actor, "lease_granted", b"w1", "tcp://w1", "n1", "tcp://d1")
    call(actor, "a")
    # the reply carries the constructor's error (stored as the creation's result); the worker
    # answers the calls with "the actor's constructor raised ...", as for calls sent after it
    assert pushed(step(actor, "call_finished", creation.task_id)) == ["a"]
    assert actor.state == ALIVE


def test_a_kill_while_the_creation_resolves_again_releases_it_and_fails_the_calls():
    actor, creation = created(max_restarts=-1)
    step(actor, "worker_died", b"w1", "SIGKILL")
    call(actor, "a")
    out = step(actor, "kill", S.KILLED)
    assert ReleaseCreationArgs(creation) in out and "kill" in failed(out)["a"]
    assert not any(isinstance(i, KillWorker) for i in out)  # no worker to kill


# ---- the creator's lease and kill --------------------------------------------------------------------
def test_kill_before_the_lease_arrives_fails_queued_calls_and_kills_the_late_worker():
    actor = ActorSubmitter(ACTOR, "Counter", True, -1, -1)
    creation = Entry("init")
    step(actor, "creation_submitted", creation)
    call(actor, "a")
    out = step(actor, "kill", S.KILLED)
    assert not any(isinstance(i, KillWorker) for i in out)  # no worker yet
    assert set(failed(out)) == {"init", "a"} and "kill" in failed(out)["a"]
    out = step(actor, "lease_granted", b"w1", "tcp://w1", "n1", "tcp://d1")
    assert out == [KillWorker(b"w1", "tcp://d1", S.KILLED)]


def test_kill_of_a_running_actor_kills_its_worker_on_its_node_and_is_never_restarted():
    actor, _ = created(max_restarts=-1, max_task_retries=-1)
    call(actor, "running", retries=-1)
    out = step(actor, "kill", S.KILLED)
    assert out[0] == KillWorker(b"w1", "tcp://d1", S.KILLED)
    assert "kill" in failed(out)["running"]
    assert step(actor, "worker_died", b"w1", S.KILLED) == []


def test_an_infeasible_lease_fails_the_creation_and_the_calls_with_the_reason():
    actor = ActorSubmitter(ACTOR, "Counter", True)
    step(actor, "creation_submitted", Entry("init"))
    call(actor, "a")
    out = step(actor, "lease_failed", "no node has 8 GPUs")
    assert failed(out)["init"] == "actor Counter could not be created: no node has 8 GPUs"
    assert "no node has 8 GPUs" in failed(out)["a"]
    assert ReportToHead(DEAD, "no node has 8 GPUs") in out


def test_killed_before_the_constructor_arguments_resolve_fails_the_creation_when_they_do():
    actor = ActorSubmitter(ACTOR, "Counter", True)
    step(actor, "kill", S.KILLED)
    out = step(actor, "creation_submitted", Entry("init"))
    assert list(failed(out)) == ["init"]


def test_a_constructor_argument_error_fails_the_calls_waiting_for_the_actor():
    actor = ActorSubmitter(ACTOR, "Counter", True)
    call(actor, "a")
    reason = "an argument of its constructor failed: ValueError: bad"
    out = step(actor, "creation_failed", reason)
    assert reason in failed(out)["a"]
    assert ReportToHead(DEAD, reason) in out
    assert "init" not in failed(out)  # its error is stored already


# ---- handle scope ------------------------------------------------------------------------------------
def test_handles_out_of_scope_kill_the_actor_only_after_its_calls_finish():
    actor, _ = created()
    a, _ = call(actor, "a")
    slow = Entry("slow")
    step(actor, "submit_call", slow)  # still waiting for its arguments
    assert step(actor, "handles_out_of_scope") == []
    assert actor.state == ALIVE
    assert pushed(step(actor, "call_resolved", slow)) == ["slow"]
    assert step(actor, "call_finished", a.task_id) == []
    out = step(actor, "call_finished", slow.task_id)
    assert out[0] == KillWorker(b"w1", "tcp://d1", S.OUT_OF_SCOPE)
    assert actor.state == DEAD and actor.dead_reason == S.OUT_OF_SCOPE


def test_handles_out_of_scope_of_an_idle_actor_kill_it_at_once():
    actor, _ = created()
    out = step(actor, "handles_out_of_scope")
    assert out[0] == KillWorker(b"w1", "tcp://d1", S.OUT_OF_SCOPE)
    assert ReportToHead(DEAD, S.OUT_OF_SCOPE) in out


def test_handles_out_of_scope_while_the_last_call_fails_for_its_arguments():
    actor, _ = created()
    doomed = Entry("doomed")
    step(actor, "submit_call", doomed)
    step(actor, "handles_out_of_scope")
    out = step(actor, "call_failed", doomed.task_id)
    assert out[0] == KillWorker(b"w1", "tcp://d1", S.OUT_OF_SCOPE)


# ---- callers that are not the creator ----------------------------------------------------------------
def test_a_caller_looks_the_address_up_at_the_head_once_and_pushes_when_answered():
    actor = ActorSubmitter(ACTOR, "Counter", False, 0, 0)
    a = Entry("a")
    assert step(actor, "submit_call", a) == [LookUp(None)]
    assert step(actor, "call_resolved", a) == []
    assert call(actor, "b")[1] == []  # one lookup at a time
    out = step(actor, "lookup_answered", True, view(ALIVE, b"w1", "tcp://w1"))
    assert pushed(out) == ["a", "b"]


def test_a_caller_waits_for_the_restart_asking_the_head_for_another_worker():
    actor = ActorSubmitter(ACTOR, "Counter", False, -1, -1, "tcp://w1", b"w1")
    call(actor, "a", retries=-1)
    out = step(actor, "head_update", view(RESTARTING, b"w1", None, "SIGKILL"))
    assert out == [LookUp(b"w1")] and actor.state == RESTARTING
    # a stale answer naming the dead worker is ignored, and the head is asked again
    out = step(actor, "lookup_answered", True, view(ALIVE, b"w1", "tcp://w1"))
    assert out == [LookUp(b"w1")]
    out = step(actor, "lookup_answered", True, view(ALIVE, b"w2", "tcp://w2"))
    assert pushed(out) == ["a"] and out[0].address == "tcp://w2"


def test_a_caller_that_sees_the_actor_on_a_new_worker_treats_the_old_one_as_dead():
    actor = ActorSubmitter(ACTOR, "Counter", False, -1, 0, "tcp://w1", b"w1")
    call(actor, "lost")
    out = step(actor, "head_update", view(ALIVE, b"w2", "tcp://w2", "SIGKILL"))
    assert "max_task_retries=0" in failed(out)["lost"]
    assert actor.state == ALIVE and actor.address == "tcp://w2"
    assert pushed(call(actor, "next")[1]) == ["next"]


def test_a_caller_learns_of_the_death_from_the_head():
    actor = ActorSubmitter(ACTOR, "Counter", False, -1, -1, "tcp://w1", b"w1")
    call(actor, "a", retries=-1)
    out = step(actor, "head_update", view(DEAD, b"w1", None, "killed by engine.kill()"))
    assert "kill" in failed(out)["a"]
    assert not any(isinstance(i, ReportToHead) for i in out)  # only the creator reports


def test_an_actor_unknown_to_the_head_fails_the_callers_calls():
    actor = ActorSubmitter(ACTOR, "Counter", False)
    call(actor, "a")
    out = step(actor, "lookup_answered", True, None)
    assert S.NOT_KNOWN in failed(out)["a"]


def test_the_creator_ignores_the_heads_word_it_drives_restarts_itself():
    actor, _ = created(max_restarts=-1)
    assert step(actor, "head_update", view(RESTARTING, b"w1", None, "x")) == []
    assert actor.state == ALIVE


def test_a_handle_with_an_address_subscribes_without_naming_a_dead_worker():
    actor = ActorSubmitter(ACTOR, "Counter", False, 0, 0, "tcp://w1", b"w1")
    assert step(actor, "subscribe") == [LookUp(None)]
    assert step(actor, "subscribe") == []
    assert step(actor, "lookup_answered", True, view(ALIVE, b"w1", "tcp://w1")) == []


# ---- history -----------------------------------------------------------------------------------------
def test_history_tells_what_happened_to_the_actor_and_is_bounded():
    actor, creation = created(max_restarts=-1)
    step(actor, "worker_died", b"w1", "SIGKILL")
    events = [(event, state) for event, state, _ in actor.history()]
    assert events == [("creation_submitted", PENDING), ("lease_granted", ALIVE), ("constructed", ALIVE),
                      ("worker_died", RESTARTING)]
    for i in range(200):
        restart(actor, creation, b"w%d" % (i + 2))
        step(actor, "worker_died", None, "again")
    assert len(actor.history()) == S.HISTORY


# ---- random event sequences ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(150))
def test_random_events_keep_the_invariants_and_each_worker_sees_calls_in_order(seed):
    rng = random.Random(seed)
    creator = rng.random() < 0.5
    actor = ActorSubmitter(ACTOR, "Counter", creator, rng.choice([0, 1, 3, -1]), rng.choice([0, 1, -1]))
    seq_of, fails, last_seq_on, finished = {}, {}, {}, set()
    waiting, workers = [], iter(b"w%d" % i for i in range(10_000))

    def check(out):
        for i in out:
            if isinstance(i, PushTask) and i.entry.name != "init":
                assert i.entry.name not in fails, "pushed after it failed"
                seq = seq_of[i.entry.name]
                assert seq > last_seq_on.get(i.worker_id, -1), "a worker got calls out of order"
                last_seq_on[i.worker_id] = seq
            elif isinstance(i, FailTask):
                assert i.entry.name not in fails, "failed twice"
                fails[i.entry.name] = i.message
                if i.entry in waiting:  # the core worker drops a failed task: it never resolves
                    waiting.remove(i.entry)

    init = Entry("init")
    if creator:
        check(step(actor, "creation_submitted", init))
    for n in range(60):
        r = rng.random()
        if r < 0.35:
            entry = Entry(f"c{n}", rng.choice([0, 1, -1]))
            seq_of[entry.name] = actor.next_seq
            check(step(actor, "submit_call", entry))
            waiting.append(entry)
        elif r < 0.55 and waiting:
            check(step(actor, "call_resolved", waiting.pop(rng.randrange(len(waiting)))))
        elif r < 0.6 and waiting:
            gone = waiting.pop(rng.randrange(len(waiting)))
            finished.add(gone.name)  # failed by the core worker (its argument was an error)
            check(step(actor, "call_failed", gone.task_id))
        elif r < 0.66 and actor.starting:  # the constructor replies, or could not fetch an argument
            lost = rng.random() < 0.25
            check(step(actor, "creation_lost_argument") if lost else step(actor, "call_finished", init.task_id))
        elif r < 0.7 and creator and actor.resolving:  # the creation's arguments resolved again
            check(step(actor, "creation_submitted", init))
        elif r < 0.72 and actor.in_flight:
            done = next(iter(actor.in_flight.values())).entry
            finished.add(done.name)
            check(step(actor, "call_finished", done.task_id))
        elif r < 0.8:
            worker = next(workers)
            if creator:
                check(step(actor, "lease_granted", worker, "tcp://" + worker.decode(), "n1", "tcp://d1"))
            else:
                check(step(actor, "head_update", view(ALIVE, worker, "tcp://" + worker.decode())))
        elif r < 0.9:
            check(step(actor, "worker_died", None, "SIGKILL"))
        elif r < 0.93:
            check(step(actor, "handles_out_of_scope") if creator else step(actor, "kill", S.KILLED))
        elif r < 0.95:
            check(step(actor, "kill", S.KILLED))
        else:
            check(step(actor, "lookup_answered", True, view(RESTARTING, None)))
    for entry in list(waiting):  # the remaining arguments resolve; then the actor is killed
        check(step(actor, "call_resolved", entry))
    check(step(actor, "kill", S.KILLED))
    # every call submitted while the actor lived ended exactly once: replied, or failed
    calls_failed = set(fails) - {"init"}
    assert set(seq_of) == finished | calls_failed, set(seq_of) ^ (finished | calls_failed)
    assert not finished & calls_failed


# ---- the shell ---------------------------------------------------------------------------------------------
def test_a_handle_sent_while_the_constructor_runs_carries_no_address():
    from ownrun.engine.worker.actor_state import ActorState

    state = ActorState(ACTOR, None, "Counter", owned=True, max_restarts=-1)
    creation = Entry("init")
    state.machine.creation_submitted(creation)
    state.machine.lease_granted(b"w1", "tcp://w1", "n1", "tcp://d1")
    assert state.handle_address() == (None, None)  # the receiver asks the head instead
    state.machine.call_finished(creation.task_id)
    assert state.handle_address() == ("tcp://w1", b"w1")
