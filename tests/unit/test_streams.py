"""Streaming generator tasks in the task manager: items in order, the end, a failure as the
last item, a dropped generator, the worker's death. `validate_state()` after every step."""

from __future__ import annotations

import pytest
from owner_harness import Owner
from ownrun.engine.ownership.memory_store import ERROR, INLINE
from ownrun.engine.ownership.reference_counter import Release
from ownrun.engine.worker import serialization


@pytest.fixture
def owner():
    return Owner()


def streaming(owner: Owner):
    entry = owner.task("gen", num_returns=0, retries=0)
    entry.extra = {"streaming": True}
    owner.submit(entry)
    owner.grant()
    return entry


def item(owner: Owner, entry, index: int, value, worker: str = "tcp://w1") -> None:
    frames, _ = serialization.serialize(value)
    owner.step("generator_item", worker, entry.task_id, index, [INLINE, len(frames), None], [b"h", *frames])


def rid(entry, index: int) -> bytes:
    return entry.task_id + index.to_bytes(4, "little")


def end(owner: Owner, entry, returns=(), frames=()) -> None:
    owner.step("task_reply", "tcp://w1", entry.task_id, list(returns), None, b"tcp://w1", 0.01,
               [b"h", *frames], 1.0)


def test_items_are_stored_in_order_and_held_until_handed_out(owner):
    g = streaming(owner)
    item(owner, g, 1, "a")
    item(owner, g, 2, "b")
    item(owner, g, 2, "b again")  # a repeat is dropped
    stream = owner.tm.streams[g.task_id]
    assert stream.count == 2 and not stream.done
    assert owner.value_of(rid(g, 1)) == "a" and owner.value_of(rid(g, 2)) == "b"
    assert owner.tm.refs.refs[rid(g, 1)].local == 1  # the stream's count, for the generator
    end(owner, g)
    assert stream.done and g.task_id not in owner.tm.tasks


def test_a_waiting_generator_is_woken_by_the_next_item_and_by_the_end(owner):
    g = streaming(owner)
    waiter = object()
    owner.tm.streams[g.task_id].waiters.append(waiter)
    item(owner, g, 1, "a")
    assert owner.woken == [waiter]
    owner.tm.streams[g.task_id].waiters.append(waiter)
    end(owner, g)
    assert owner.woken == [waiter, waiter]


def test_a_failure_is_stored_as_the_item_after_the_last(owner):
    g = streaming(owner)
    item(owner, g, 1, "a")
    f, _ = serialization.serialize(ZeroDivisionError("late"))
    end(owner, g, returns=[[ERROR, len(f), None]], frames=f)
    stream = owner.tm.streams[g.task_id]
    assert stream.count == 2 and stream.done
    assert owner.tm.refs.refs[rid(g, 2)].value.kind == ERROR


def test_the_worker_dying_ends_the_stream_with_its_error(owner):
    g = streaming(owner)
    item(owner, g, 1, "a")
    owner.step("worker_died", b"tcp://w1", "tcp://w1", "killed")
    stream = owner.tm.streams[g.task_id]
    assert stream.done and stream.count == 2
    assert owner.tm.refs.refs[rid(g, 2)].value.kind == ERROR


def test_a_dropped_generator_frees_what_it_never_handed_out_and_later_items(owner):
    g = streaming(owner)
    for i in (1, 2, 3):
        item(owner, g, i, i)
    # the generator handed out item 1 (its ObjectRef took over that count) and was dropped
    owner.step("release_stream", g.task_id, 1)
    assert rid(g, 1) in owner.tm.refs.refs
    assert rid(g, 2) not in owner.tm.refs.refs and rid(g, 3) not in owner.tm.refs.refs
    item(owner, g, 4, 4)  # still running: freed on arrival
    assert rid(g, 4) not in owner.tm.refs.refs
    end(owner, g)
    assert g.task_id not in owner.tm.streams
    out = Release()
    owner.tm.refs.remove_local(rid(g, 1), out)  # the handed-out ref is dropped too
    owner.tm.release(out)
    owner.drain()
    owner.tm.validate_state()
    assert rid(g, 1) not in owner.tm.refs.refs


def dynamic(owner: Owner):
    from ownrun.engine import ids

    entry = owner.task("gen", num_returns=0, retries=0)
    entry.return_ids = [ids.dynamic_id(entry.task_id)]
    entry.extra = {"streaming": True, "dynamic": True}
    owner.submit(entry)
    owner.grant()
    return entry


def test_a_dynamic_task_asks_the_shell_to_list_its_items_under_its_one_ref(owner):
    from ownrun.engine.ownership import task_manager as tm

    g = dynamic(owner)
    item(owner, g, 1, "a")
    item(owner, g, 2, "b")
    owner.tm.task_reply("tcp://w1", g.task_id, [], None, b"tcp://w1", 0.01, [b"h"], 1.0)
    assert (tm.DYNAMIC_END, g.task_id, 2, g.return_ids[0]) in owner.tm.out
    owner.drain()


def test_a_dynamic_task_that_fails_stores_its_error_under_its_one_ref_and_frees_the_items(owner):
    g = dynamic(owner)
    item(owner, g, 1, "a")
    frames, _ = serialization.serialize(ValueError("boom"))
    end(owner, g, returns=[[ERROR, len(frames), None]], frames=frames)
    kind, exc = owner.value_of(g.return_ids[0])
    assert kind == "error" and "boom" in str(exc)
    assert rid(g, 1) not in owner.tm.refs.refs and g.task_id not in owner.tm.streams
