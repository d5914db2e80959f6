"""Python's cyclic garbage collector in the engine's processes: fewer, cheaper collections.

Owns the one choice of settings and where they go: the head, the node daemons and the
zygote (`apply(freeze=True)` at start; the zygote also freezes right before each fork, so
every worker starts with its threshold and with the zygote's objects out of the
collector's way), and the driver (`apply()` in `engine.init`: the threshold only, and only
if the process still has Python's default — a program's own setting wins; nothing of the
user's is frozen).

Why: the collector runs whenever allocations of container objects exceed deallocations by
`threshold[0]` (700 by default), and an owner allocates many that outlive a collection —
argument lists, task entries, lineage and reference records, message headers. Measured on
2 cores, a task with 171 by-reference arguments submitted 4,000 times: 1,792 young, 163
middle and 14 full collections in the submitting process, 106 µs of its CPU per task (a
quarter of it; the full ones scan every object the process has, imported modules
included); with `THRESHOLD` 4.6 µs (62 and 5 collections, no full one), 2.9 µs with the
startup objects frozen. A young collection costs what survives it, not what was allocated
and freed since the last one, so fewer collections cost less in all.

What it costs: cyclic garbage waits up to 50,000 allocations instead of 700 before it is
found (reference counting still frees everything else at once), and a collection, when it
comes, pauses its process longer (~0.15 ms young, ~1.5 ms middle measured above). Frozen
objects are never collected: only what exists at start (modules, the process's fixed
state) is frozen. `OWNRUN_GC_THRESHOLD=a,b,c` (inherited by the cluster's processes) names
another threshold, e.g. Python's 700,10,10. Never raises.
"""

from __future__ import annotations

import gc
import os

PYTHON_DEFAULT = (700, 10, 10)
THRESHOLD = (50_000, 10, 10)
ENV_THRESHOLD = "OWNRUN_GC_THRESHOLD"  # "a,b,c": this threshold instead (e.g. Python's 700,10,10)


def threshold() -> tuple[int, int, int]:
    """`THRESHOLD`, or the one `OWNRUN_GC_THRESHOLD` names (if it names three integers)."""
    raw = os.environ.get(ENV_THRESHOLD, "")
    try:
        values = tuple(int(v) for v in raw.split(","))
    except ValueError:
        return THRESHOLD
    return values if len(values) == 3 and min(values) >= 0 else THRESHOLD


def apply(freeze: bool = False) -> None:
    """Raises the collector's threshold (if the process has Python's default) and, with
    `freeze`, moves every object alive now out of future collections."""
    try:
        if gc.get_threshold() == PYTHON_DEFAULT:
            gc.set_threshold(*threshold())
        if freeze:
            gc.freeze()
    except Exception:  # noqa: BLE001 - a tuning, never a reason to fail a start
        pass
