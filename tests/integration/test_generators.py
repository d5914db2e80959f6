"""Streaming generator tasks (`num_returns="streaming"`): items reach the caller as they are
yielded, in order; an error after some items; the worker killed mid-stream; a dropped
generator's items are freed; large items through shared memory; what is rejected."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest
from conftest import returns_within, wait_for
from ownrun import engine


@engine.remote(num_cpus=0)
class Gate:
    """Opened by the test; a task waits for it (async actor: wait and open run concurrently)."""

    def __init__(self):
        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()

    async def open(self):
        self.event.set()


@engine.remote(num_returns="streaming")
def count(n: int, gate=None):
    for i in range(n):
        yield i * 10
        if gate is not None and i == 0:
            engine.get(gate.wait.remote())  # item 0 is out; hold the rest until the test opens


@engine.remote(num_returns="streaming")
def fail_after(n: int):
    yield from range(n)
    raise ZeroDivisionError("after the items")


def test_streaming_items_come_in_order(cluster):
    gen = count.remote(5)
    assert isinstance(gen, engine.ObjectRefGenerator)
    assert engine.get(list(gen), timeout=60) == [0, 10, 20, 30, 40]


def test_streaming_item_arrives_before_the_task_ends(cluster):
    gate = Gate.remote()
    gen = count.remote(3, gate)
    first = returns_within(lambda: engine.get(next(gen), timeout=60))  # the task is still blocked
    assert first == 0
    engine.get(gate.open.remote(), timeout=60)
    assert engine.get(list(gen), timeout=60) == [10, 20]


def test_streaming_error_is_the_next_item_then_iteration_stops(cluster):
    gen = fail_after.remote(2)
    refs = list(gen)
    assert len(refs) == 3
    assert engine.get(refs[:2], timeout=60) == [0, 1]
    with pytest.raises(ZeroDivisionError, match="after the items"):
        engine.get(refs[2], timeout=60)


def test_streaming_worker_killed_mid_stream_ends_with_an_error_not_a_hang(cluster):
    @engine.remote(num_returns="streaming")
    def pid_then_wait(gate):
        yield os.getpid()
        engine.get(gate.wait.remote())
        yield "never"

    gate = Gate.remote()
    gen = pid_then_wait.remote(gate)
    pid = engine.get(next(gen), timeout=60)
    os.kill(pid, signal.SIGKILL)
    last = returns_within(lambda: next(gen))
    with pytest.raises(engine.EngineError):
        engine.get(last, timeout=60)
    with pytest.raises(StopIteration):
        next(gen)


def test_streaming_dropped_generator_frees_its_items(cluster):
    core = engine.api._core()
    before = len(core.tm.refs.refs)
    gen = count.remote(50)
    engine.get(next(gen), timeout=60)
    del gen
    wait_for(lambda: not core.tm.streams, timeout=60, message="the released stream is forgotten")
    wait_for(lambda: len(core.tm.refs.refs) <= before, timeout=60, message="the items are freed")


def test_streaming_large_items_go_through_shared_memory(cluster):
    @engine.remote(num_returns="streaming")
    def arrays():
        for i in range(3):
            yield np.full(400_000, i, dtype=np.int64)  # 3.2 MB: above the inline threshold

    values = engine.get(list(arrays.remote()), timeout=60)
    assert [int(v[0]) for v in values] == [0, 1, 2] and all(v.shape == (400_000,) for v in values)


def test_streaming_rejects_what_it_does_not_support(cluster):
    with pytest.raises(ValueError, match="not retried"):
        count.options(max_retries=2)

    @engine.remote
    class A:
        def f(self):
            yield 1

    with pytest.raises(ValueError, match="streaming"):
        A.remote().f.options(num_returns="streaming")

    @engine.remote(num_returns="streaming")
    def not_a_generator():
        return 5

    with pytest.raises(TypeError, match="not a generator"):
        engine.get(next(not_a_generator.remote()), timeout=60)
    with pytest.raises(TypeError, match="cannot be passed"):
        import pickle

        pickle.dumps(count.remote(1))
