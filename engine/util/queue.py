"""`engine.util.queue.Queue`: a first-in first-out queue held by an actor, with Ray's names and
semantics (`ray.util.queue.Queue`), so tasks and actors anywhere in the cluster share it.

Owns nothing but the handle of its actor (`_QueueActor`, an async actor holding an
`asyncio.Queue`); a Queue is pickled with that handle, so passing it to a task lends the
task the same queue. Blocking `put`/`get` wait inside the actor (its event loop serves other
calls meanwhile), with `timeout` in seconds; `put` raises `Full` and `get` raises `Empty`
(subclasses of the standard library's `queue.Full`/`queue.Empty`) when they cannot finish:
at once without `block`, after `timeout` with it. `*_async` variants return the ObjectRef.

Thread-safe as far as the actor is (one event loop: every operation is atomic). Fails with
ActorDiedError once the actor is gone (`shutdown`, or its creator's handles out of scope).
"""

from __future__ import annotations

import asyncio
import queue as _stdlib_queue


class Empty(_stdlib_queue.Empty):
    pass


class Full(_stdlib_queue.Full):
    pass


class _QueueActor:
    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.queue = asyncio.Queue(maxsize)

    def qsize(self) -> int:
        return self.queue.qsize()

    def empty(self) -> bool:
        return self.queue.empty()

    def full(self) -> bool:
        return self.queue.full()

    async def put(self, item, timeout: float | None = None) -> None:
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except TimeoutError:
            raise Full from None

    async def get(self, timeout: float | None = None):
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            raise Empty from None

    def put_nowait(self, item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            raise Full from None

    def put_nowait_batch(self, items: list) -> None:
        if self.maxsize > 0 and len(items) + self.queue.qsize() > self.maxsize:
            raise Full(f"Cannot add {len(items)} items to queue of size {self.queue.qsize()} "
                       f"and maxsize {self.maxsize}.")
        for item in items:
            self.queue.put_nowait(item)

    def get_nowait(self):
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            raise Empty from None

    def get_nowait_batch(self, num_items: int) -> list:
        if num_items > self.queue.qsize():
            raise Empty(f"Cannot get {num_items} items from queue of size {self.queue.qsize()}.")
        return [self.queue.get_nowait() for _ in range(num_items)]


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class Queue:
    """`Queue(maxsize=0, actor_options=None)`: `maxsize <= 0` means unbounded; `actor_options`
    are `.options()` of the queue's actor (its name, resources, ...)."""

    def __init__(self, maxsize: int = 0, actor_options: dict | None = None):
        from .. import api

        self.maxsize = maxsize
        actor_class = api.remote(_QueueActor)
        self.actor = actor_class.options(**(actor_options or {})).remote(maxsize)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        return self._get(self.actor.qsize.remote())

    qsize = size

    def empty(self) -> bool:
        return self._get(self.actor.empty.remote())

    def full(self) -> bool:
        return self._get(self.actor.full.remote())

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:
        """Adds `item`; waits for room with `block` (up to `timeout` s), else raises Full."""
        if not block:
            return self._get(self.actor.put_nowait.remote(item))
        _check_timeout(timeout)
        return self._get(self.actor.put.remote(item, timeout))

    def put_async(self, item, block: bool = True, timeout: float | None = None):
        """As `put`, returning the ObjectRef of the actor's call (`get` it to see Full)."""
        if not block:
            return self.actor.put_nowait.remote(item)
        _check_timeout(timeout)
        return self.actor.put.remote(item, timeout)

    def get(self, block: bool = True, timeout: float | None = None):
        """Removes and returns the oldest item; waits for one with `block` (up to `timeout`
        s), else raises Empty."""
        if not block:
            return self._get(self.actor.get_nowait.remote())
        _check_timeout(timeout)
        return self._get(self.actor.get.remote(timeout))

    def get_async(self, block: bool = True, timeout: float | None = None):
        """As `get`, returning the ObjectRef of the actor's call."""
        if not block:
            return self.actor.get_nowait.remote()
        _check_timeout(timeout)
        return self.actor.get.remote(timeout)

    def put_nowait(self, item) -> None:
        return self.put(item, block=False)

    def put_nowait_batch(self, items) -> None:
        """Adds every item, or none (Full) if they do not all fit."""
        if not isinstance(items, list):
            raise TypeError("Argument 'items' must be a list")
        return self._get(self.actor.put_nowait_batch.remote(items))

    def get_nowait(self):
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> list:
        """Removes and returns `num_items` items, or none (Empty) if there are fewer."""
        if not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        return self._get(self.actor.get_nowait_batch.remote(num_items))

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """Ends the queue's actor (its items are lost). `force` and `grace_period_s` are
        accepted for Ray's signature: the actor is always killed at once."""
        from .. import api

        if self.actor is not None:
            api.kill(self.actor)
        self.actor = None

    @staticmethod
    def _get(ref):
        """The call's value; the actor's Empty/Full raised as themselves (not wrapped)."""
        from .. import api, errors

        try:
            return api.get(ref)
        except errors.TaskError as exc:
            if isinstance(exc.cause, (Empty, Full)):
                raise type(exc.cause)(*exc.cause.args) from None
            raise
