"""What `ownrun video` shows while it runs: a live view on a terminal, plain lines elsewhere.

Owns `LiveView`, a Rich renderable of the run's progress that fits the console it is drawn
on: a header (video time, frames, current latency above the floor) and one cell per video
(`v07 ██████···· 12ms`) when the grid fits; beyond that, latency bands over all videos and
the slowest videos in the rows that are left. Owns `plain_line`, the one-line form of the
same state for non-terminal output (cli/console.py `Heartbeat` paces it).

Times shown are never negative: before frame 0 the header counts down to it, and a latency
above the floor below zero (a frame delivered as its window closed) shows as 0.
Pure presentation: `update` takes the Sinks' progress dicts, nothing here talks to the
engine. Not thread-safe (the driver's wait loop owns it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

BAR = 10  # characters of a cell's progress bar
LATENCY_W = 7  # "12345ms"
PAD = 2  # spaces between grid columns
NAME_MAX = 16  # longer video names are cut (with an ellipsis)
BANDS = ((0.050, "<50 ms"), (0.200, "50-200 ms"), (1.0, "0.2-1 s"), (float("inf"), ">1 s"))


class LiveView:
    """The run's progress as a renderable sized to the console (width and height)."""

    def __init__(self, jobs: Sequence, start_ts: float, clock: Callable[[], float] = time.time):
        self.jobs = list(jobs)
        self.start_ts = start_ts
        self.clock = clock
        self.progress: dict = {}  # video -> (frames delivered, latest latency s, duplicates)
        self.failed: set[str] = set()
        self.length = max((j.phase_s + j.frames / j.fps for j in self.jobs), default=0.0)

    def update(self, parts: Sequence[dict]) -> None:
        for part in parts:
            self.progress.update(part)

    # ---- state -------------------------------------------------------------------------
    def delivered(self, job) -> int:
        return int(self.progress.get(job.video, (0, None, 0))[0])

    def latency(self, job) -> float | None:
        """Latest latency above the floor in seconds, clamped at 0; None before any frame."""
        if self.clock() < self.start_ts:
            return None
        latency = self.progress.get(job.video, (0, None, 0))[1]
        if latency is None:
            return None
        return max(0.0, latency - job.radius / job.fps)

    def status(self) -> str:
        clock = self.clock() - self.start_ts
        if clock < 0:
            return f"{len(self.jobs)} videos, starting: frame 0 in {-clock:.1f} s"
        finishing = ", finishing" if clock > self.length else ""
        return f"{len(self.jobs)} videos, video time {min(clock, self.length):.1f} s of {self.length:.1f} s{finishing}"

    def totals(self) -> str:
        done = sum(self.delivered(j) for j in self.jobs)
        total = sum(j.frames for j in self.jobs)
        finished = sum(1 for j in self.jobs if self.delivered(j) >= j.frames)
        lat = sorted(x for x in (self.latency(j) for j in self.jobs) if x is not None)
        text = f"frames {done}/{total} ({100 * done // max(1, total)}%), {finished} done"
        if self.failed:
            text += f", {len(self.failed)} failed"
        if lat:
            text += f"; above floor: median {_ms(lat[len(lat) // 2])}, max {_ms(lat[-1])}"
        return text

    def bands(self) -> str:
        counts = [0] * len(BANDS)
        waiting = 0
        for job in self.jobs:
            latency = self.latency(job)
            if latency is None:
                waiting += 1
                continue
            counts[next(k for k, (upper, _) in enumerate(BANDS) if latency < upper)] += 1
        parts = [f"{label} {n}" for (_, label), n in zip(BANDS, counts, strict=True)]
        return "latency: " + " | ".join(parts) + f" | none yet {waiting}"

    # ---- rendering -----------------------------------------------------------------------
    def name_width(self) -> int:
        return min(NAME_MAX, max((len(j.video) for j in self.jobs), default=1))

    def cell(self, job, name_w: int) -> str:
        name = job.video if len(job.video) <= name_w else job.video[: name_w - 1] + "…"
        filled = min(BAR, BAR * self.delivered(job) // max(1, job.frames))
        bar = "█" * filled + "·" * (BAR - filled)
        if job.video in self.failed:
            lat = "failed"
        else:
            latency = self.latency(job)
            lat = "-" if latency is None else _ms(latency, compact=True)
        return f"{name:<{name_w}} {bar} {lat:>{LATENCY_W}}"

    def lines(self, width: int, height: int) -> list[str]:
        """The view as lines of at most `width` characters, at most `height - 1` of them."""
        name_w = self.name_width()
        cell_w = name_w + 1 + BAR + 1 + LATENCY_W
        columns = max(1, (width + PAD) // (cell_w + PAD))
        head = [f"ownrun video: {self.status()}", self.totals()]
        rows = max(1, height - 1 - len(head))
        if len(self.jobs) <= columns * rows:
            shown, head_extra = self.jobs, []
        else:
            rows = max(1, rows - 2)
            order = sorted(self.jobs, key=self._slowness, reverse=True)
            shown = order[: columns * rows]
            head_extra = [self.bands(), f"slowest {len(shown)} of {len(self.jobs)} videos:"]
        rows = -(-len(shown) // columns)
        grid = []
        for r in range(rows):
            cells = [self.cell(shown[c * rows + r], name_w) for c in range(columns) if c * rows + r < len(shown)]
            grid.append((" " * PAD).join(c.ljust(cell_w) for c in cells).rstrip())
        return [line if len(line) <= width else line[: max(0, width - 1)] + "…"
                for line in head + head_extra + grid]

    def _slowness(self, job) -> tuple:
        latency = self.latency(job)
        return (job.video in self.failed, -1.0 if latency is None else latency,
                -self.delivered(job) / max(1, job.frames))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or options.size.height or console.height
        for line in self.lines(options.max_width, height):
            yield Text(line, no_wrap=True, overflow="ellipsis")


def plain_line(view: LiveView) -> str:
    """The view in one line, for output that is not a terminal."""
    return f"progress: {view.status()}; {view.totals()}"


def _ms(seconds: float, compact: bool = False) -> str:
    ms = max(0.0, seconds) * 1e3
    if ms >= 99_999.5:
        return f"{ms / 1e3:.0f}s" if compact else f"{ms / 1e3:.0f} s"
    return f"{ms:.0f}ms" if compact else f"{ms:.0f} ms"
