"""Where the user created each object this process owns, for `ownrun memory` and
`ownrun list objects --detail`, when `OWNRUN_RECORD_CALLSITES=1` (set before `engine.init()`
or `ownrun start`: the cluster's workers inherit it).

Owns `Callsites`, one per core worker: object id -> "file:line in function" of the first
frame outside `ownrun.engine` on the stack of the `put` or `.remote()` that created it. Off
by default; then the core worker never calls it (its cost is one module-level flag test per
`put` and per `.remote()`). Bounded: past `limit` entries, those whose object this process
no longer records are dropped, then the oldest.

Not thread-safe by itself: the core worker calls `record` and `get` with its state lock held.
"""

from __future__ import annotations

import os
import sys

ENABLED = os.environ.get("OWNRUN_RECORD_CALLSITES", "") not in ("", "0")
_ENGINE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
LIMIT = 100_000


def caller() -> str | None:
    """The first frame of the stack that is not ownrun.engine's: 'file:line in function'."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_ENGINE_DIR):
        frame = frame.f_back
    if frame is None:
        return None
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"


class Callsites:
    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self.sites: dict[bytes, str] = {}

    def record(self, oids, site: str | None, live: dict) -> None:
        """`oids` were created at `site`; `live`: the records this process keeps (for pruning)."""
        if site is None:
            return
        sites = self.sites
        for oid in oids:
            sites[oid] = site
        if len(sites) > self.limit:
            for oid in [o for o in sites if o not in live]:
                del sites[oid]
            while len(sites) > self.limit // 2:
                del sites[next(iter(sites))]

    def get(self, oid: bytes) -> str | None:
        return self.sites.get(oid)
