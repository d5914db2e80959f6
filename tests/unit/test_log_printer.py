"""Worker output is printed by a thread of its own: a blocked stderr never blocks the caller."""

from __future__ import annotations

import sys
import threading

from ownrun.engine.worker.log_printer import LogPrinter

from tests.conftest import wait_for


class BlockingStderr:
    def __init__(self):
        self.release = threading.Event()
        self.written: list[str] = []

    def write(self, text: str) -> None:
        self.release.wait(30)
        self.written.append(text)

    def flush(self) -> None:
        pass


def test_a_blocked_stderr_never_blocks_add_and_overflow_is_counted_then_reported(monkeypatch):
    stderr = BlockingStderr()
    monkeypatch.setattr(sys, "stderr", stderr)
    printer = LogPrinter(limit=100)
    printer.add("(w) first\n")  # the printer thread takes it and blocks in write()
    wait_for(lambda: printer._bytes == len("(w) first\n") and not printer._chunks, message="taken by the thread")
    for _ in range(50):
        printer.add("(w) 0123456789\n")  # returns at once although stderr is stuck
    assert printer.dropped > 0
    stderr.release.set()
    printer.flush(timeout=10)
    wait_for(lambda: any("dropped" in t for t in stderr.written), message="the drop is reported")
    text = "".join(stderr.written)
    assert text.startswith("(w) first\n") and "(w) 0123456789\n" in text
