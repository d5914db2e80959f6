"""After `engine.shutdown()`: late finalizers and wake-ups touch no file descriptor the engine
closed (its number may belong to another file by then) and no store memory it freed (issue 11 §6).
"""

from __future__ import annotations

import gc
import os

import numpy as np
from ownrun import engine
from ownrun.engine.api import _core
from ownrun.engine.rpc.transport import Transport


def _pipes_reusing(fds: set[int], limit: int = 2048) -> list[tuple[int, int]]:
    """Opens pipes until every number in `fds` (closed now) names one of their ends."""
    pipes: list[tuple[int, int]] = []
    taken: set[int] = set()
    while not fds <= taken and len(pipes) < limit:
        r, w = os.pipe()
        os.set_blocking(r, False)
        pipes.append((r, w))
        taken |= {r, w}
    return pipes


def _written(pipes) -> list[int]:
    got = []
    for r, _w in pipes:
        try:
            if os.read(r, 64):
                got.append(r)
        except BlockingIOError:
            pass
    return got


def _close(pipes) -> None:
    for r, w in pipes:
        os.close(r)
        os.close(w)


def test_a_transport_woken_after_close_writes_to_no_reused_fd():
    transport = Transport("127.0.0.1")
    wake_fd = transport._wake.fd
    transport.close()
    pipes = _pipes_reusing({wake_fd})
    try:
        transport.wake()  # e.g. a late stop() or signal handler after shutdown
        assert _written(pipes) == []
    finally:
        _close(pipes)


def test_store_backed_arrays_outlive_shutdown_and_their_release_touches_no_closed_fd():
    engine.init(num_cpus=1)
    before = set(os.listdir("/proc/self/fd"))
    array = engine.get(engine.put(np.arange(1_000_000, dtype=np.int64)))  # in shared memory
    view = array[10:20]  # a derived view keeps the mapping too
    core = _core()
    opened = {int(fd) for fd in set(os.listdir("/proc/self/fd")) - before}
    engine.shutdown()
    closed = {fd for fd in opened | {core.transport._wake.fd} if fd >= 0 and not os.path.exists(f"/proc/self/fd/{fd}")}
    pipes = _pipes_reusing(closed)
    try:
        assert int(array.sum()) == 999_999 * 1_000_000 // 2  # the mapping outlives the daemon's store
        assert list(view) == list(range(10, 20))
        del array, view
        gc.collect()  # the release callbacks run now, after shutdown
        core.transport.wake()
        assert _written(pipes) == []
    finally:
        _close(pipes)
