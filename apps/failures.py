"""What the apps' failure experiments share: the `--fail KIND@Ns` spec and waiting for a
killed role's replacement.

`FailurePlan.parse(text, kinds, example)` reads `KIND@Ns` (the `s` optional) with KIND one of
the app's kinds (video: decoder, owner, node; rl: worker, node, owner) and raises ValueError
with a one-line message otherwise. `await_replacement` polls an app's announcement of a role
(pid, ts) until another pid holds it. Neither imports the engine; thread-safe (immutable plan;
the wait only calls `read`).
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_SPEC = re.compile(r"^([a-z]+)@(\d+(?:\.\d+)?)s?$")


@dataclass(frozen=True)
class FailurePlan:
    """`--fail KIND@Ns`: what to kill, N seconds after the app's start mark."""

    kind: str
    at_s: float

    @classmethod
    def parse(cls, text: str, kinds: tuple[str, ...], example: str) -> FailurePlan:
        match = _SPEC.match(text.strip().lower())
        if not match or match.group(1) not in kinds:
            raise ValueError(f"--fail must look like KIND@Ns with KIND one of {', '.join(kinds)} "
                             f"(e.g. {example}), got {text!r}")
        return cls(match.group(1), float(match.group(2)))

    def __str__(self) -> str:
        return f"{self.kind}@{self.at_s:g}s"


def await_replacement(read: Callable[[], dict | None], pid: int, killed: float, cancelled: threading.Event,
                      timeout: float) -> dict:
    """Waits until `read()` announces a process other than `pid`; returns {replacement_pid,
    replaced_after_s} ({} on timeout or cancel)."""
    deadline = time.monotonic() + timeout
    while True:
        stop = cancelled.wait(0.02)
        info = read()  # also once more when cancelled: the run may end right after the restart
        if info is not None and int(info["pid"]) != pid:
            return {"replacement_pid": int(info["pid"]), "replaced_after_s": round(float(info["ts"]) - killed, 3)}
        if stop or time.monotonic() > deadline:
            return {}
