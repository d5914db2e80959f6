"""The wake-up eventfd of a transport's I/O thread (both transports own one).

Owns: the eventfd another thread writes to interrupt the I/O thread's poll, and its life.
`wake` after `close` is a no-op, never a write to a number the kernel may have given to
another file since (under a lock, so `close` cannot free it between the check and the
write; re-entrant: a signal handler may wake from inside a wake). Thread-safe.
"""

from __future__ import annotations

import os
import threading


class WakeFd:
    def __init__(self):
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)  # poll it for reading
        self._lock = threading.RLock()

    def wake(self) -> None:
        with self._lock:
            if self.fd < 0:
                return
            try:
                os.eventfd_write(self.fd, 1)
            except (BlockingIOError, OSError):
                pass

    def drain(self) -> None:
        """Clears it (the I/O thread, once its poll returned with it readable)."""
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            pass

    def close(self) -> None:
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
