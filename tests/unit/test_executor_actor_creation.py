"""The executor driven in-process with a recording core (no sockets): a method call that runs
while the actor's concurrency is being set up finds the instance; a task cancelled while queued
leaves its function for the next task of that function."""

from __future__ import annotations

import asyncio
import threading

from ownrun.engine.errors import TaskCancelledError
from ownrun.engine.ownership.task_manager import ACTOR_CREATION, ACTOR_METHOD, NORMAL
from ownrun.engine.rpc import protocol as P
from ownrun.engine.rpc.transport import unpack
from ownrun.engine.worker import executor as executor_module
from ownrun.engine.worker import serialization

CALLER = "ipc:///caller"


class _Refs:
    def register_borrower(self, oids, caller) -> None:
        pass

    def still_borrowed(self, received, caller):
        return None


class _Transport:
    def __init__(self):
        self.sent: list = []

    def send(self, address, frames) -> bool:
        self.sent.append((address, unpack(frames[0]), frames[1:]))
        return True


class RecordingCore:
    """What the executor uses of a core worker, recording what it sends."""

    def __init__(self):
        self.transport = _Transport()
        self.address = "ipc:///actor-worker"
        self.head_address = "ipc:///head"
        self.daemon_address = "ipc:///daemon"
        self.worker_id = b"w" * 16
        self.node_id = "node-1"
        self.inline_threshold = 100 * 1024
        self.lock = threading.Lock()
        self.refs = _Refs()
        self.handlers: dict = {}
        self.handler_errors = 0

    def add_handler(self, kind, handler) -> None:
        self.handlers[kind] = handler

    def _apply_ref_ops(self) -> None:
        pass

    def replies(self) -> dict:
        """task id -> the values (or errors) of its TASK_REPLY."""
        out = {}
        for _, header, frames in self.transport.sent:
            if header[0] == P.TASK_REPLY:
                meta = header[3][0]
                out[header[2]] = serialization.deserialize(list(frames[:meta[1]]))
        return out


def _header(task_id: bytes, name: str, kind: int, fn_id: str, fn_blob: bytes | None, extra=None) -> list:
    return [P.PUSH_TASK, CALLER, task_id, name, kind, fn_id, fn_blob, 1, 0, [], None, b"actor-1", extra]


class Greeter:
    def __init__(self):
        self.greeting = "hello"

    async def greet(self):
        return self.greeting


def test_a_call_running_while_the_actor_loop_is_set_up_finds_the_instance(monkeypatch):
    core = RecordingCore()
    ex = executor_module.Executor(core)
    call = _header(b"call-1", "Greeter.greet", ACTOR_METHOD, "greet", None)
    real_semaphore = asyncio.Semaphore

    def semaphore_running_a_call_first(limit):
        """The loop exists, the semaphore not yet: a call pushed now runs on the loop."""
        semaphore = real_semaphore(limit)
        ex.async_limit = semaphore
        ex.loop.run_until_complete(ex._execute_async(call, [b""]))
        return semaphore

    monkeypatch.setattr(executor_module.asyncio, "Semaphore", semaphore_running_a_call_first)
    creation = _header(b"create-1", "Greeter.__init__", ACTOR_CREATION, "cls-1",
                       serialization.dumps_function(Greeter), {"actor_id": b"actor-1", "name": "Greeter"})
    ex.execute(creation, [b""])
    replies = core.replies()
    assert replies[b"call-1"] == "hello", replies[b"call-1"]
    assert replies[b"create-1"] is None
    ex.loop.call_soon_threadsafe(ex.loop.stop)


def forty_two():
    return 42


def test_a_cancelled_queued_task_leaves_its_function_for_the_next_task_of_that_function():
    # The owner sends a function with the first task it pushes to a worker only: if that task
    # is cancelled while queued, the next one (sent without it) must still find it.
    core = RecordingCore()
    ex = executor_module.Executor(core)
    first = _header(b"task-1", "forty_two", NORMAL, "fn-1", serialization.dumps_function(forty_two))
    ex.on_push(first, [b""])
    ex.on_cancel([P.CANCEL_TASK, b"task-1", False, True], [])
    assert not ex.queue
    ex.execute(_header(b"task-2", "forty_two", NORMAL, "fn-1", None), [b""])
    replies = core.replies()
    assert isinstance(replies[b"task-1"], TaskCancelledError), replies[b"task-1"]
    assert replies[b"task-2"] == 42, replies[b"task-2"]
    assert ex.function_blobs == {}
