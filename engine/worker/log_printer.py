"""Printing worker output lines in the driver, off the I/O thread.

Owns a bounded queue of text chunks (LOG_LINES from the node daemon, already formatted as
`(prefix) line`) and one daemon thread writing them to `sys.stderr`. `add` is called on the
I/O thread with the core worker's state lock held: it only appends, so a slow or blocked
stderr (a full pipe, a paused terminal) never stalls message handling or the lock.

Failures: when more than `limit` bytes wait, new chunks are dropped and counted; the next
write says how many were lost. Write errors (a closed stderr) are ignored. Thread-safe.
"""

from __future__ import annotations

import collections
import sys
import threading


class LogPrinter:
    def __init__(self, limit: int = 8 * 2**20):
        self.limit = limit
        self._chunks: collections.deque = collections.deque()
        self._bytes = 0
        self.dropped = 0  # chunks dropped because stderr did not keep up
        self._cv = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def add(self, text: str) -> None:
        """Queues `text` for stderr; never blocks on the write."""
        with self._cv:
            if self._bytes + len(text) > self.limit:
                self.dropped += 1
                return
            self._chunks.append(text)
            self._bytes += len(text)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ownrun-log-printer", daemon=True)
                self._thread.start()
            self._cv.notify()

    def flush(self, timeout: float = 1.0) -> None:
        """Waits (up to `timeout` s) until what is queued has been written."""
        with self._cv:
            self._cv.wait_for(lambda: not self._chunks and self._bytes == 0, timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._chunks)
                chunks, self._chunks = self._chunks, collections.deque()
                dropped, self.dropped = self.dropped, 0
            text = "".join(chunks)
            if dropped:
                text += f"(ownrun) {dropped} chunk(s) of worker output dropped: stderr did not keep up\n"
            try:
                sys.stderr.write(text)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            with self._cv:
                self._bytes -= sum(len(c) for c in chunks)
                self._cv.notify_all()
