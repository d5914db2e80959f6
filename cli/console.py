"""The one Rich console every `ownrun` command writes through (no bare `print`), and the
CLI's convention for progress.

Rich resolves `sys.stdout` at print time, so test runners that swap stdout capture it.

Progress convention (every long command): on a terminal, a Rich live view or status spinner;
when stdout is not a terminal (a pipe, a file, CI), Rich shows nothing live, so the command
prints a plain line at least every `PLAIN_PERIOD_S` through a `Heartbeat` instead. Apps that
are handed this console (ownrun video, rl, run) use `is_live(console)` to pick one.
`step(console, text)` covers a step that has no loop to beat in (generating inputs, starting a
cluster): a spinner on a terminal; otherwise the text, then `text (N s)` every period from a
daemon thread until the step ends. Not thread-safe: one heartbeat per loop.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from rich.console import Console

console = Console(highlight=False)

PLAIN_PERIOD_S = 10.0  # at most this long between two plain progress lines


def is_live(console: Console | None) -> bool:
    """Whether `console` can show a live view (it is a terminal, not a pipe or a file)."""
    return console is not None and console.is_terminal and not console.is_dumb_terminal


class Heartbeat:
    """Plain progress lines for a non-terminal console: the first `beat` prints, then one
    per `period` seconds; `line` makes the text only when it is printed."""

    def __init__(self, console: Console | None, period: float = PLAIN_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.period = period
        self.clock = clock
        self.last: float | None = None

    def due(self) -> bool:
        """Whether the next `beat` prints (so callers fetch fresh state only then)."""
        return self.console is not None and (self.last is None or self.clock() - self.last >= self.period)

    def beat(self, line: Callable[[], str], force: bool = False) -> bool:
        """Prints `line()` if due (or `force`); returns whether it printed."""
        if self.console is None or not (force or self.due()):
            return False
        self.last = self.clock()
        self.console.print(line(), soft_wrap=True, markup=False, highlight=False)
        return True


@contextlib.contextmanager
def step(console: Console | None, text: str | None, period: float = PLAIN_PERIOD_S) -> Iterator[None]:
    """A step of a long command: a spinner on a terminal, plain lines every `period` otherwise."""
    if console is None or text is None:
        yield
        return
    if is_live(console):
        with console.status(text):
            yield
        return
    started, stop = time.monotonic(), threading.Event()

    def tick() -> None:
        while not stop.wait(period):
            console.print(f"{text} ({time.monotonic() - started:.0f} s)", soft_wrap=True, markup=False)

    console.print(f"{text} ...", soft_wrap=True, markup=False)
    ticker = threading.Thread(target=tick, name="ownrun-step", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
