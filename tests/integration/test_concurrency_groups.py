"""Actor concurrency groups with Ray's API (issue 12): `concurrency_groups={name: n}` on the
actor, `@method(concurrency_group=)` or `.options(concurrency_group=)` on a call; each group
runs its calls on its own threads (or, for an async actor, under its own limit)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from ownrun import engine


@pytest.fixture(scope="module", autouse=True)
def cluster():
    engine.init(num_cpus=2)
    yield
    engine.shutdown()


@engine.remote(concurrency_groups={"io": 2, "compute": 1})
class Threaded:
    def __init__(self):
        self.gate = threading.Event()

    @engine.method(concurrency_group="io")
    def wait_for_gate(self):
        return self.gate.wait(60)

    @engine.method(concurrency_group="io")
    def io_thread(self):
        return threading.current_thread().name

    def open_gate(self):  # the default group: the actor's main thread
        self.gate.set()
        return threading.current_thread().name

    def thread(self):
        return threading.current_thread().name


def test_a_blocked_group_does_not_block_the_default_group_or_the_groups_other_threads():
    actor = Threaded.remote()
    blocked = actor.wait_for_gate.remote()  # holds one of io's two threads
    assert engine.get(actor.io_thread.remote(), timeout=60).startswith("ownrun-io")
    assert engine.get(actor.thread.options(concurrency_group="compute").remote(), timeout=60) \
        .startswith("ownrun-compute")
    assert not engine.get(actor.open_gate.remote(), timeout=60).startswith("ownrun-")
    assert engine.get(blocked, timeout=60) is True


def test_an_unknown_group_is_refused_at_definition_and_at_call():
    with pytest.raises(ValueError, match="does not define"):
        @engine.remote(concurrency_groups={"io": 1})
        class Bad:
            @engine.method(concurrency_group="nope")
            def f(self):
                return 1
    with pytest.raises(ValueError, match="positive int"):
        Threaded.options(concurrency_groups={"io": 0})
    actor = Threaded.remote()
    with pytest.raises(ValueError, match="no concurrency group 'nope'"):
        engine.get(actor.thread.options(concurrency_group="nope").remote(), timeout=60)


@engine.remote(concurrency_groups={"slow": 1})
class Async:
    def __init__(self):
        self.running = 0
        self.most = 0

    @engine.method(concurrency_group="slow")
    async def one_at_a_time(self):
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        return self.most

    async def ping(self):
        return "pong"


def test_an_async_actors_group_limits_its_own_coroutines_only():
    actor = Async.remote()
    slow = [actor.one_at_a_time.remote() for _ in range(4)]
    assert engine.get(actor.ping.remote(), timeout=60) == "pong"
    assert max(engine.get(slow, timeout=60)) == 1
