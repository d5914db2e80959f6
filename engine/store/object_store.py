"""The node's shared-memory object store: the object table, the arena and spill I/O.

Owns: one arena file `/dev/shm/<arena_name>` (sparse, mapped read-write), the table of
objects stored on this node, who pins each of them, their LRU order, and the files in
`spill_dir` (spilled objects and objects larger than the whole arena). Does not own: the
bytes' meaning, transfers between nodes, or who owns an object (the owner calls `free`).
Clients (workers, the driver) map the arena with `ArenaClient` and read/write the bytes
themselves; this module only says where (a `Placement`).

Life of an object:
1. `create` reserves space (arena block, or a file when it exceeds the capacity) and pins it
   for the creating client, which writes the bytes and calls `seal` (dropping that pin).
   `create` of an id that is already sealed (a re-executed task) returns its placement with
   `exists=True`: the client must skip the write, but still calls `seal` (or is released
   as dead) to drop the pin `create` took, so the create -> seal protocol never changes.
   `create(..., ahead=True)`: a client creates the object of its next `put` before it has
   the value, so that `put` needs no round trip. Such a create takes only free arena room
   (it never evicts, spills or falls back to a file: ObjectStoreFullError instead), and the
   object is not counted in `num_objects` until it is sealed (`stats()["num_ahead"]`); the
   client seals it, or `abort`s it when its next value differs in size.
2. `get` pins the object for a client (counted per client) and says where it is;
   `release` drops one such pin. Pinned objects are never moved or deleted.
3. When the arena has no room for a `create` (or a restore):
   a. evict unpinned sealed secondary copies (`primary=False`), least recently used first;
   b. then spill unpinned sealed primary copies, LRU first, to files in `spill_dir`;
   c. if the request could not fit even after a. and b. (the space is held by pins), nothing
      is evicted; a primary copy (a `put`, a task's return) is placed in a file in
      `spill_dir` instead — Ray's fallback allocation: readers map it like a spilled object,
      and `get` moves it into the arena once room is free — while a secondary copy (a pull)
      raises ObjectStoreFullError, as does a primary whose file cannot be made (disk full).
4. `get` of a spilled object restores it into the arena if room can be made (spilling
   others, never pinned ones); otherwise it returns the spill file, which readers map.
5. `free` (the owner dropped it) deletes the object once its last pin is gone; until then
   `get` returns None for it. `release_client` drops a dead client's pins and aborts the
   objects it created but never sealed.
Evicted secondary ids are queued for the daemon (`take_evicted`) to update the directory.

Thread-safety: not thread-safe; the node daemon calls it from one thread.
Failure: ObjectStoreFullError (one line: sizes in MiB) when pins hold the room (secondary
copies) or the disk refuses the fallback file (primary copies); ValueError
for misuse (negative size, sealing twice, creating an id another client is writing);
KeyError for `seal`/`read` of an unknown id. Disk errors while spilling or restoring
propagate as OSError with the table unchanged (the object stays where it was).
Cleanup: `close()` unmaps, unlinks the arena and removes spill files; a finalizer does the
same at garbage collection or interpreter exit. A killed process leaves its files behind:
whoever starts the next daemon of the session must sweep `/dev/shm/<arena_name>`.
"""

from __future__ import annotations

import mmap
import os
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from contextlib import suppress
from dataclasses import dataclass
from itertools import count
from typing import NamedTuple

from ownrun.engine.errors import ObjectStoreFullError
from ownrun.engine.store.allocator import Allocator

SHM_DIR = "/dev/shm"
_IO_CHUNK = 8 << 20  # bytes per pwrite/preadv call when spilling or restoring
_MIB = float(1 << 20)


class Placement(NamedTuple):
    """Where an object's bytes live: `size` bytes at `offset` of the file at `path`.

    kind "shm": `path` is the arena. kind "file": a file of exactly `size` bytes, offset 0.
    `exists` is True when `create` found the object already sealed: do not write, just seal.
    """

    kind: str
    offset: int
    size: int
    path: str
    exists: bool = False


@dataclass(slots=True, eq=False)
class _Entry:
    """One object of the table. Exactly one of `offset` (arena) and `path` (disk) is set."""

    oid: bytes
    size: int
    primary: bool
    creator: Hashable
    offset: int | None = None
    path: str | None = None
    sealed: bool = False
    freed: bool = False  # the owner freed it; delete when the last pin drops
    pins: int = 0
    ahead: bool = False  # created ahead of its value (not counted as an object until sealed)

    @property
    def readable(self) -> bool:
        return self.sealed and not self.freed

    @property
    def movable(self) -> bool:
        """May be evicted (secondary) or spilled (primary) to make room."""
        return self.sealed and self.pins == 0 and self.offset is not None

    @property
    def should_delete(self) -> bool:
        return self.freed and self.pins == 0


class ObjectStore:
    """The object table of one node over one arena. Not thread-safe."""

    def __init__(self, arena_name: str, capacity: int, spill_dir: str, *, alignment: int = 64):
        if not arena_name or "/" in arena_name:
            raise ValueError(f"arena_name must be a plain file name, got {arena_name!r}")
        self._alloc = Allocator(capacity, alignment)
        if self._alloc.usable_capacity == 0:
            raise ValueError(f"capacity must be at least {alignment} bytes, got {capacity}")
        self.arena_path = os.path.join(SHM_DIR, arena_name)
        self.spill_dir = spill_dir
        self._entries: dict[bytes, _Entry] = {}
        self._lru: OrderedDict[bytes, None] = OrderedDict()  # sealed objects in the arena
        self._pins: dict[Hashable, dict[bytes, int]] = {}  # client -> oid -> pin count
        self._files: set[str] = set()  # spill and large-object files that exist now
        self._evicted: list[bytes] = []
        self._file_seq = count()
        self._closed = False

        fd = os.open(self.arena_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, capacity)  # sparse: pages are allocated when first written
            self._mm = mmap.mmap(fd, capacity)
            made_spill_dir = not os.path.isdir(spill_dir)
            os.makedirs(spill_dir, exist_ok=True)
        except BaseException:
            os.unlink(self.arena_path)
            raise
        finally:
            os.close(fd)
        self._mv = memoryview(self._mm)
        self._finalizer = weakref.finalize(self, _remove_files, os.getpid(), self.arena_path,
                                           self._files, spill_dir if made_spill_dir else None)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the protocol --------------------------------------------------------------------

    def create(self, oid: bytes, size: int, client: Hashable, *, primary: bool = True,
               ahead: bool = False) -> Placement:
        """Reserve `size` bytes for a new object, pinned for `client` until `seal`. `ahead`:
        the client has no value yet (see the module docstring): free arena room only."""
        if size < 0:
            raise ValueError(f"object size must be >= 0, got {size}")
        entry = self._entries.get(oid)
        if entry is not None:
            if ahead:
                raise ValueError(f"object {oid.hex()} exists: it cannot be created ahead")
            return self._recreate(entry, client, primary)
        entry = _Entry(oid, size, primary, client, ahead=ahead)
        if ahead:
            entry.offset = self._alloc.allocate(size)
            if entry.offset is None:
                raise ObjectStoreFullError(f"no free room for a {size / _MIB:.2f} MiB object "
                                           f"created ahead ({self._alloc.used / _MIB:.2f} of "
                                           f"{self._alloc.capacity / _MIB:.2f} MiB in use)")
        elif self._alloc.fits_ever(size):
            entry.offset = self._make_room(size)
            if entry.offset is None and not primary:
                raise ObjectStoreFullError(self._full_message(size))
            if entry.offset is None:  # pins hold the room: fall back to a file (3c)
                entry.path = self._fallback_file(oid, size)
        else:
            entry.path = self._new_file(oid, size)
        self._entries[oid] = entry
        self._pin(entry, client)
        return self._placement(entry)

    def seal(self, oid: bytes, client: Hashable) -> None:
        """The creator finished writing: the object becomes readable; its pin is dropped."""
        entry = self._entries.get(oid)
        if entry is None:
            raise KeyError(f"cannot seal unknown object {oid.hex()}")
        if entry.sealed:  # the client's create found it sealed (exists=True) and pinned it
            if not self._pins.get(client, {}).get(oid):
                raise ValueError(f"object {oid.hex()} is already sealed")
            self._unpin(entry, client)
            return
        if entry.creator != client:
            raise ValueError(f"object {oid.hex()} is being created by another client")
        entry.sealed = True
        entry.ahead = False
        if entry.offset is not None:
            self._lru[oid] = None
        self._unpin(entry, client)

    def abort(self, oid: bytes, client: Hashable) -> None:
        """The creator gave up writing: delete the unsealed object. No-op if it is gone."""
        entry = self._entries.get(oid)
        if entry is None:
            return
        if entry.sealed or entry.creator != client:
            raise ValueError(f"object {oid.hex()} is not being created by this client")
        self._unpin(entry, client, delete=False)
        self._delete(entry)

    def get(self, oid: bytes, client: Hashable) -> Placement | None:
        """Pin the object for `client` and say where to read it; None if unknown/unsealed."""
        entry = self._entries.get(oid)
        if entry is None or not entry.readable:
            return None
        if entry.offset is None and self._alloc.fits_ever(entry.size):
            self._restore(entry)
        self._pin(entry, client)
        if entry.offset is not None:
            self._lru.move_to_end(oid)
        return self._placement(entry)

    def release(self, oid: bytes, client: Hashable) -> None:
        """Drop one pin `client` holds on the object. No error if it has none or is gone."""
        entry = self._entries.get(oid)
        if entry is not None and entry.sealed and self._pins.get(client, {}).get(oid):
            self._unpin(entry, client)

    def free(self, oid: bytes) -> None:
        """The owner released the object: delete it now, or when its last pin drops."""
        entry = self._entries.get(oid)
        if entry is None:
            return
        entry.freed = True
        if entry.should_delete:
            self._delete(entry)

    def release_client(self, client: Hashable) -> None:
        """`client` died: drop all its pins and abort the objects it was writing."""
        for oid, n in self._pins.pop(client, {}).items():
            entry = self._entries[oid]
            entry.pins -= n
            if (not entry.sealed and entry.creator == client) or entry.should_delete:
                self._delete(entry)

    def being_written(self, oid: bytes) -> bool:
        """Created, not sealed yet and not freed: its writer may still seal it."""
        entry = self._entries.get(oid)
        return entry is not None and not entry.sealed and not entry.freed

    def contains(self, oid: bytes) -> bool:
        """Whether the object is sealed here and not freed."""
        entry = self._entries.get(oid)
        return entry is not None and entry.readable

    def read(self, oid: bytes) -> memoryview:
        """Read-only view of a sealed object's bytes (for transfers; pin it first)."""
        entry = self._entries.get(oid)
        if entry is None or not entry.sealed:
            raise KeyError(f"object {oid.hex()} is not sealed in this store")
        if entry.offset is not None:
            return self._mv[entry.offset : entry.offset + entry.size].toreadonly()
        if entry.size == 0:
            return memoryview(b"")
        with open(entry.path, "rb") as f:
            return memoryview(mmap.mmap(f.fileno(), entry.size, access=mmap.ACCESS_READ))

    def take_evicted(self) -> list[bytes]:
        """Ids of secondary copies evicted since the last call (for the object directory)."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def stats(self) -> dict[str, int]:
        """Capacity and usage. "spilled" counts every object on disk, large ones included."""
        entries = self._entries.values()
        on_disk = [e.size for e in entries if e.path is not None]
        num_ahead = sum(e.ahead for e in entries)
        return {
            "capacity": self._alloc.capacity,
            "used": self._alloc.used,
            "largest_free_block": self._alloc.largest_free_block,
            "num_objects": len(self._entries) - num_ahead,
            "num_ahead": num_ahead,
            "pinned_bytes": sum(e.size for e in entries if e.pins),
            "spilled_bytes": sum(on_disk),
            "num_spilled": len(on_disk),
        }

    def close(self) -> None:
        """Unmap and unlink the arena, remove spill files (and spill_dir if it made it)."""
        if self._closed:
            return
        self._closed = True
        self._mv.release()
        with suppress(BufferError):  # read() views still exported: the GC unmaps later
            self._mm.close()
        self._finalizer()
        self._entries.clear()
        self._lru.clear()
        self._pins.clear()

    # -- validation ----------------------------------------------------------------------

    def validate_state(self) -> None:
        """Raise AssertionError if the table, pins, LRU, files and allocator disagree."""
        self._alloc.check_invariants()
        pins: dict[bytes, int] = {}
        for held in self._pins.values():
            for oid, n in held.items():
                _check(n > 0, f"non-positive pin count on {oid.hex()}")
                pins[oid] = pins.get(oid, 0) + n
        in_arena = 0
        for oid, e in self._entries.items():
            _check((e.offset is None) != (e.path is None), f"{oid.hex()} must be in one place")
            _check(e.pins == pins.get(oid, 0), f"{oid.hex()} pin total drifted")
            _check(not e.should_delete, f"{oid.hex()} freed and unpinned but not deleted")
            _check(e.sealed or e.pins >= 1, f"unsealed {oid.hex()} lost its creator pin")
            _check((oid in self._lru) == (e.sealed and e.offset is not None), f"LRU {oid.hex()}")
            _check(not e.ahead or (not e.sealed and e.offset is not None),
                   f"{oid.hex()} created ahead must be unsealed, in the arena")
            if e.offset is not None:
                in_arena += 1
                _check(self._alloc.block_size(e.offset) == self._alloc.round_size(e.size),
                       f"{oid.hex()} block size")
        _check(in_arena == self._alloc.num_blocks, "allocator holds blocks of no object")
        _check(set(pins) <= set(self._entries), "pins on objects not in the table")
        paths = {e.path for e in self._entries.values() if e.path is not None}
        _check(paths == self._files, "spill files and table disagree")

    # -- placement and room --------------------------------------------------------------

    def _placement(self, entry: _Entry) -> Placement:
        if entry.offset is not None:
            return Placement("shm", entry.offset, entry.size, self.arena_path)
        return Placement("file", 0, entry.size, entry.path)

    def _recreate(self, entry: _Entry, client: Hashable, primary: bool) -> Placement:
        if not entry.sealed:
            raise ValueError(f"object {entry.oid.hex()} is already being created")
        entry.freed = False  # re-created by its (new) owner: same id, same bytes
        entry.primary = entry.primary or primary
        self._pin(entry, client)  # dropped by the client's seal, like a fresh create's
        if entry.offset is not None:
            self._lru.move_to_end(entry.oid)
        return self._placement(entry)._replace(exists=True)

    def _make_room(self, size: int) -> int | None:
        """An arena offset for `size` bytes, evicting then spilling LRU objects if needed."""
        offset = self._alloc.allocate(size)
        if offset is not None or not self._fits_after_moving(size):
            return offset
        for spill in (False, True):
            victims = [self._entries[oid] for oid in self._lru]
            for e in victims:
                if not e.movable or e.primary != spill:
                    continue
                if spill:
                    self._spill(e)
                else:
                    self._evict(e)
                offset = self._alloc.allocate(size)
                if offset is not None:
                    return offset
        return None  # unreachable while _fits_after_moving is right

    def _fits_after_moving(self, size: int) -> bool:
        """Whether a block of `size` fits between the blocks that cannot move (pinned)."""
        need = self._alloc.round_size(size)
        fixed = sorted(e.offset for e in self._entries.values()
                       if e.offset is not None and not e.movable)
        pos = 0
        for offset in fixed:
            if offset - pos >= need:
                return True
            pos = offset + self._alloc.block_size(offset)
        return self._alloc.usable_capacity - pos >= need

    def _fallback_file(self, oid: bytes, size: int) -> str:
        try:
            return self._new_file(oid, size)
        except OSError as exc:
            raise ObjectStoreFullError(f"{self._full_message(size)}; no file in {self.spill_dir} "
                                       f"either: {exc.strerror or exc}") from None

    def _full_message(self, size: int) -> str:
        pinned = sum(self._alloc.block_size(e.offset) for e in self._entries.values()
                     if e.offset is not None and not e.movable)
        return (f"object store full: cannot place a {size / _MIB:.2f} MiB object in the "
                f"{self._alloc.capacity / _MIB:.2f} MiB arena; {pinned / _MIB:.2f} MiB is pinned "
                f"by readers or writers and {self._alloc.used / _MIB:.2f} MiB is in use")

    # -- moving bytes --------------------------------------------------------------------

    def _evict(self, entry: _Entry) -> None:
        self._delete(entry)
        self._evicted.append(entry.oid)

    def _spill(self, entry: _Entry) -> None:
        path = self._new_file(entry.oid, entry.size)
        try:
            _copy_file(path, self._mv[entry.offset : entry.offset + entry.size], to_file=True)
        except BaseException:
            self._remove_file(path)
            raise
        self._alloc.free(entry.offset)
        del self._lru[entry.oid]
        entry.offset, entry.path = None, path

    def _restore(self, entry: _Entry) -> bool:
        """Copy a spilled object back into the arena if room can be made; False if not."""
        offset = self._make_room(entry.size)
        if offset is None:
            return False
        try:
            _copy_file(entry.path, self._mv[offset : offset + entry.size], to_file=False)
        except BaseException:
            self._alloc.free(offset)
            raise
        self._remove_file(entry.path)  # readers that mapped it keep their (unlinked) pages
        entry.offset, entry.path = offset, None
        self._lru[entry.oid] = None
        return True

    def _new_file(self, oid: bytes, size: int) -> str:
        """A new file of `size` bytes with disk space reserved (no SIGBUS for writers)."""
        # The sequence number keeps paths unique, so a client's cached map of an old file
        # can never alias a new incarnation of the same id.
        path = os.path.join(self.spill_dir, f"{oid.hex()}.{next(self._file_seq)}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._files.add(path)
        try:
            if size:
                os.posix_fallocate(fd, 0, size)
        except BaseException:
            self._remove_file(path)
            raise
        finally:
            os.close(fd)
        return path

    def _remove_file(self, path: str) -> None:
        self._files.discard(path)
        with suppress(FileNotFoundError):
            os.unlink(path)

    # -- table bookkeeping ---------------------------------------------------------------

    def _pin(self, entry: _Entry, client: Hashable) -> None:
        held = self._pins.setdefault(client, {})
        held[entry.oid] = held.get(entry.oid, 0) + 1
        entry.pins += 1

    def _unpin(self, entry: _Entry, client: Hashable, *, delete: bool = True) -> None:
        held = self._pins[client]
        n = held[entry.oid] - 1
        if n:
            held[entry.oid] = n
        else:
            del held[entry.oid]
            if not held:
                del self._pins[client]
        entry.pins -= 1
        if delete and entry.should_delete:
            self._delete(entry)

    def _delete(self, entry: _Entry) -> None:
        """Remove an object whose pins are gone (or an aborted one) and free its space."""
        del self._entries[entry.oid]
        if entry.offset is not None:
            self._alloc.free(entry.offset)
            self._lru.pop(entry.oid, None)
        if entry.path is not None:
            self._remove_file(entry.path)


def _copy_file(path: str, arena: memoryview, *, to_file: bool) -> None:
    """Copy the arena slice into the file at `path` or back, in chunks, no temporaries."""
    fd = os.open(path, os.O_WRONLY if to_file else os.O_RDONLY)
    try:
        pos = 0
        while pos < len(arena):
            chunk = arena[pos : pos + _IO_CHUNK]
            n = os.pwrite(fd, chunk, pos) if to_file else os.preadv(fd, [chunk], pos)
            if n == 0:
                raise OSError(f"spill file {path} is shorter than its object")
            pos += n
    finally:
        os.close(fd)


def _remove_files(pid: int, arena_path: str, files: set[str], made_dir: str | None) -> None:
    if os.getpid() != pid:
        return  # a forked child exiting: the files belong to the parent
    for path in [arena_path, *files]:
        with suppress(FileNotFoundError):
            os.unlink(path)
    files.clear()
    if made_dir is not None:
        with suppress(OSError):  # not empty: someone else put files there
            os.rmdir(made_dir)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)
