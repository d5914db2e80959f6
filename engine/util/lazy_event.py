"""`LazyEvent`: `threading.Event`'s interface for a wait that is mostly ended by the waiting
thread itself.

Owns one flag. A `get` that reads its own reply (worker/core_worker.py `wait_reading`) only
tests the flag between polls, so `set` and `is_set` are attribute operations, and the
`threading.Event` (a lock and a condition) is made only when a thread blocks in `wait`: a
`get` of a value another thread will store, or one left to the I/O thread.

Thread-safe under the GIL (attribute reads and writes are atomic and ordered): `set` writes
the flag before it looks for an event, and `wait` publishes its event before it reads the
flag again, so a `set` racing a `wait` either finds the event or is seen by the re-read.
One thread waits at a time (a waiter belongs to its get/wait caller); any thread may set.
Nothing here fails.
"""

from __future__ import annotations

import threading


class LazyEvent:
    __slots__ = ("_flag", "_event")

    def __init__(self) -> None:
        self._flag = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        event = self._event
        if event is not None:
            event.set()

    def clear(self) -> None:
        self._flag = False
        event = self._event
        if event is not None:
            event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        event = self._event
        if event is None:
            event = self._event = threading.Event()
            if self._flag:  # set before the event was there to be set
                return True
        if event.wait(timeout):
            return True
        return self._flag
