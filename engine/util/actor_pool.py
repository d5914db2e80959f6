"""`engine.util.ActorPool`: a fixed set of actors fed work one call per actor, with Ray's names
and semantics (`ray.util.ActorPool`).

Owns which actors are idle, the calls in flight (each ref -> its submission index and actor),
and the values submitted while every actor was busy. `fn(actor, value)` makes one call and
returns its ObjectRef; an actor gets its next value when its result is taken (`get_next*`),
so at most one call per actor is in flight.

Results come back in submission order (`get_next`, `map`) or as they finish
(`get_next_unordered`, `map_unordered`); the two orders cannot be mixed while results are
pending (ValueError, as in Ray). A timed-out `get_next(timeout=...)` raises TimeoutError and
keeps the result pending, unless `ignore_if_timedout=True` (the result is then dropped).

Not thread-safe: one thread uses a pool (as in Ray). A call that raises is raised by the
`get_next*` that takes its result; the actor is idle again either way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class ActorPool:
    def __init__(self, actors: list):
        self._idle = list(actors)
        self._in_flight: dict = {}  # ref -> (submission index, actor)
        self._by_index: dict[int, Any] = {}  # submission index -> ref
        self._next_index = 0  # of the next submission
        self._next_result = 0  # index get_next returns next
        self._waiting: deque = deque()  # (fn, value) submitted while no actor was idle

    # ---- submitting ------------------------------------------------------------------------
    def submit(self, fn: Callable, value) -> None:
        """Calls `fn(actor, value)` on an idle actor now, or once one is idle."""
        if not self._idle:
            self._waiting.append((fn, value))
            return
        actor = self._idle.pop()
        ref = fn(actor, value)
        self._in_flight[ref] = (self._next_index, actor)
        self._by_index[self._next_index] = ref
        self._next_index += 1

    def map(self, fn: Callable, values: Iterable) -> Iterator:
        """Results of `fn(actor, v)` for every value, in the order of `values`."""
        self._drop_pending()
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next)

    def map_unordered(self, fn: Callable, values: Iterable) -> Iterator:
        """Results of `fn(actor, v)` for every value, as they finish."""
        self._drop_pending()
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next_unordered)

    def _results(self, take: Callable) -> Iterator:
        while self.has_next():
            yield take()

    def _drop_pending(self) -> None:
        """A new map starts clean: results nobody took are dropped, unsubmitted values too
        (an actor still running a dropped call runs the new one after it)."""
        self._waiting.clear()
        self._idle.extend(actor for _, actor in self._in_flight.values())
        self._in_flight.clear()
        self._by_index.clear()
        self._next_result = self._next_index

    # ---- taking results ----------------------------------------------------------------------
    def has_next(self) -> bool:
        """A submitted call's result is still to be taken."""
        return bool(self._in_flight) or bool(self._waiting)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False):
        """The next result in submission order (raises what its call raised)."""
        from .. import api

        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_result not in self._by_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        ref = self._by_index[self._next_result]
        timed_out = False
        if timeout is not None:
            ready, _ = api.wait([ref], timeout=timeout)
            if not ready:
                if not ignore_if_timedout:
                    raise TimeoutError("Timed out waiting for result")
                timed_out = True
        del self._by_index[self._next_result]
        self._next_result += 1
        _, actor = self._in_flight.pop(ref)
        self._return_actor(actor)
        if timed_out:
            raise TimeoutError(f"Timed out waiting for result. The task {ref} has been ignored.")
        return api.get(ref)

    def get_next_unordered(self, timeout: float | None = None, ignore_if_timedout: bool = False):
        """The result of any finished call (waits for one)."""
        from .. import api

        if not self.has_next():
            raise StopIteration("No more results to get")
        ready, _ = api.wait(list(self._in_flight), num_returns=1, timeout=timeout)
        if not ready:  # nothing finished: nothing to ignore either
            raise TimeoutError("Timed out waiting for result")
        ref = ready[0]
        index, actor = self._in_flight.pop(ref)
        del self._by_index[index]
        self._next_result = index + 1  # get_next may not follow: results are out of order now
        self._return_actor(actor)
        return api.get(ref)

    # ---- the actors -------------------------------------------------------------------------------
    def _return_actor(self, actor) -> None:
        self._idle.append(actor)
        if self._waiting:
            self.submit(*self._waiting.popleft())

    def has_free(self) -> bool:
        """An actor is idle and no submission waits for one."""
        return bool(self._idle) and not self._waiting

    def pop_idle(self):
        """Removes an idle actor from the pool and returns it (None if none is idle)."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor) -> None:
        """Adds an actor to the pool (ValueError if it is in it already)."""
        busy = [a for _, a in self._in_flight.values()]
        if actor in self._idle or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)
