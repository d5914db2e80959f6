"""Memory an embedded cluster uses, to show the noise table is stored once per node.

`shm_bytes()`: resident bytes of this session's shared-memory store files in /dev/shm (one
copy of every object per node, however many processes map it; read in the driver).
`private_bytes(pids)`: private memory (USS) of some processes on this machine (a worker that
had copied the table would hold it here). Needs psutil (the test and bench extras); without
it `private_bytes` returns None. Thread-safe; reads /proc and /dev/shm.
"""

from __future__ import annotations

import contextlib
import glob
import os

from ownrun import engine


def shm_bytes() -> int:
    session = engine.session_dir()
    if not session:
        return 0
    total = 0
    for path in glob.glob(f"/dev/shm/ownrun-{os.path.basename(session)}-*"):
        with contextlib.suppress(OSError):
            total += os.stat(path).st_blocks * 512  # resident pages, not the sparse size
    return total


def private_bytes(pids: list[int]) -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_full_info().uss
    return total
