"""The client side of the node's object store: map placements, write and view object bytes.

Owns: this process's mappings of the arena (cached by path, read-write, for the process's
life) and of spill files (mapped per call, unmapped by the GC when the last view is gone).
Does not own: placement, pinning or releasing. The caller gets a `Placement` from the node
daemon, writes with `write` or reads with `view_with_release`, and sends `release` to the
daemon from the `on_release` callback.

Views are read-only numpy uint8 arrays made directly over the mapping (one new array per
call). Every buffer derived from such an array (slices, `np.frombuffer`, `memoryview`,
arrays rebuilt by `pickle.loads(..., buffers=...)`) keeps it alive, so a `weakref.finalize`
on it fires exactly when the last derived view is gone: that is when the pin may drop.

Thread-safety: safe to share between threads; the map cache is guarded by a lock. The
`on_release` callback runs in whichever thread drops the last reference (possibly inside
the GC): it must be quick and must not raise (it should enqueue the release).
Failure: OSError if a path cannot be opened or mapped; ValueError if a write would run past
the placement's end. `close` never raises: maps still exported by live views are left to
the GC, which unmaps them when those views die.
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref
from collections.abc import Callable, Iterable

import numpy as np
from ownrun.engine.store.object_store import Placement

# Below this a slice assignment is faster; above it numpy's copy releases the GIL, so a big
# write does not stall the process's other threads (its RPC loop).
_NUMPY_COPY_MIN = 256 << 10


class ArenaClient:
    """Maps the node's arena and spill files for one process. Thread-safe."""

    def __init__(self) -> None:
        self._arenas: dict[str, tuple[mmap.mmap, memoryview]] = {}  # path -> (map, read-only)
        self._lock = threading.Lock()

    def map(self, path: str) -> mmap.mmap:
        """The cached read-write mapping of the whole arena file at `path`."""
        return self._arena(path)[0]

    def _arena(self, path: str) -> tuple[mmap.mmap, memoryview]:
        arena = self._arenas.get(path)
        if arena is not None:
            return arena
        with self._lock:
            arena = self._arenas.get(path)
            if arena is None:
                mm = _map_file(path, 0, writable=True)
                arena = self._arenas[path] = (mm, memoryview(mm).toreadonly())
            return arena

    def write(self, placement: Placement, chunks: Iterable[bytes | memoryview],
              offset: int = 0) -> None:
        """Copy `chunks` back to back into the placement, starting `offset` bytes in."""
        if placement.kind == "shm":
            self._write_into(self.map(placement.path), placement, chunks, offset)
            return
        if placement.size == 0:
            self._write_into(None, placement, chunks, offset)
            return
        mm = _map_file(placement.path, placement.size, writable=True)
        try:
            self._write_into(mm, placement, chunks, offset)
        finally:
            mm.close()

    def view(self, placement: Placement) -> np.ndarray:
        """A new read-only uint8 array over the object's bytes (zero-copy)."""
        if placement.size == 0:
            arr = np.empty(0, np.uint8)
            arr.flags.writeable = False
            return arr
        if placement.kind == "shm":
            read_only = self._arena(placement.path)[1]
            return np.frombuffer(read_only, np.uint8, placement.size, placement.offset)
        mm = _map_file(placement.path, placement.size, writable=False)
        return np.frombuffer(mm, np.uint8)  # read-only; the mapping dies with its views

    def view_with_release(self, placement: Placement,
                          on_release: Callable[[], None]) -> np.ndarray:
        """`view`, calling `on_release()` once the array and every view derived from it die."""
        arr = self.view(placement)
        finalizer = weakref.finalize(arr, on_release)
        finalizer.atexit = False  # at exit the daemon drops a dead client's pins itself
        return arr

    def close(self) -> None:
        """Unmap the arenas. Maps still used by live views are left to the GC."""
        with self._lock:
            arenas, self._arenas = self._arenas, {}
        for mm, read_only in arenas.values():
            try:
                read_only.release()
                mm.close()
            except BufferError:
                pass  # exported to live views: unmapped when they are collected

    def _write_into(self, mm: mmap.mmap | None, placement: Placement,
                    chunks: Iterable[bytes | memoryview], offset: int) -> None:
        pos, end = placement.offset + offset, placement.offset + placement.size
        if offset < 0:
            raise ValueError(f"write offset must be >= 0, got {offset}")
        for chunk in chunks:
            src = memoryview(chunk)
            n = src.nbytes
            if pos + n > end:
                raise ValueError(f"writing {n} bytes at {pos - placement.offset} runs past the "
                                 f"end of a {placement.size}-byte object")
            if n == 0:
                continue
            if n < _NUMPY_COPY_MIN:
                mm[pos : pos + n] = src
            else:
                np.frombuffer(mm, np.uint8, n, pos)[...] = np.frombuffer(src, np.uint8)
            pos += n


def _map_file(path: str, size: int, *, writable: bool) -> mmap.mmap:
    """Map `size` bytes of the file at `path` (0: the whole file)."""
    fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
    try:
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        return mmap.mmap(fd, size, access=access)
    finally:
        os.close(fd)
