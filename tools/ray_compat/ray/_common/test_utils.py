"""Test helpers Ray's test files import (`wait_for_condition`, `SignalActor`, `Semaphore`),
written here on the public API only. They are test scaffolding, not Ray behaviour: a test
that uses them is not counted as using Ray internals. Any other name is a marker
(UsesRayInternals)."""

import asyncio
import time

from ownrun import engine


def wait_for_condition(condition_predictor, timeout=10, retry_interval_ms=100, raise_exceptions=False,
                       **kwargs):
    """Polls `condition_predictor(**kwargs)` until true; RuntimeError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if condition_predictor(**kwargs):
                return
        except Exception as exc:
            if raise_exceptions:
                raise
            last = exc
        time.sleep(retry_interval_ms / 1000.0)
    raise RuntimeError(f"The condition wasn't met before the timeout expired (last error: {last!r})")


async def async_wait_for_condition(condition_predictor, timeout=10, retry_interval_ms=100, **kwargs):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = condition_predictor(**kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
        except Exception as exc:
            last = exc
        await asyncio.sleep(retry_interval_ms / 1000.0)
    raise RuntimeError(f"The condition wasn't met before the timeout expired (last error: {last!r})")


@engine.remote(num_cpus=0)
class SignalActor:
    """An event: `wait.remote()` returns once `send.remote()` was called."""

    def __init__(self):
        self.event = asyncio.Event()
        self.waiters = 0

    def send(self, clear=False):
        self.event.set()
        if clear:
            self.event.clear()

    async def wait(self, should_wait=True):
        if should_wait:
            self.waiters += 1
            try:
                await self.event.wait()
            finally:
                self.waiters -= 1

    def cur_num_waiters(self):
        return self.waiters


@engine.remote(num_cpus=0)
class Semaphore:
    def __init__(self, value=1):
        self.sem = asyncio.Semaphore(value=value)

    async def acquire(self):
        await self.sem.acquire()

    async def release(self):
        self.sem.release()

    async def locked(self):
        return self.sem.locked()


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray._internals import Marker, UsesRayInternals

    return Marker(f"{__name__}.{name}", UsesRayInternals)
