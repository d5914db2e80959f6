"""First-fit allocator of byte ranges inside the node's shared-memory arena.

Owns: the map of which aligned ranges of [0, capacity) are allocated and which are free.
Does not own: any memory. It hands out offsets; the object store maps the arena and decides
what to evict or spill when `allocate` returns None.

The rule: every block starts at a multiple of `alignment` and spans a multiple of it (a
request of 0 bytes still reserves one `alignment` unit, so every object has a distinct
offset). `allocate` takes the free block with the LOWEST address that is large enough, so
freed memory is reused first and its pages stay warm in the page cache; `free` merges the
block with free neighbours, so the free list never holds two adjacent blocks.

Data structure: the free blocks as two parallel lists sorted by offset (starts, sizes), and
a dict offset -> size of allocated blocks. `free` is a bisect plus a list insert; `allocate`
scans the sizes for the first fit in C (`itertools.compress`), so thousands of blocks cost
microseconds.

Thread-safety: not thread-safe; the node daemon calls it from one thread.
Failure: `allocate` returns None when no free block is large enough (the caller decides
what to evict); `free` of an offset that is not allocated raises KeyError; bad construction
arguments raise ValueError. `check_invariants` raises AssertionError (for tests).
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import compress, count


class Allocator:
    """First-fit allocator with coalescing over [0, capacity). Not thread-safe."""

    __slots__ = ("_capacity", "_alignment", "_limit", "_starts", "_sizes", "_blocks", "_used")

    def __init__(self, capacity: int, alignment: int = 64):
        if alignment <= 0 or alignment & (alignment - 1):
            raise ValueError(f"alignment must be a power of two, got {alignment}")
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        self._alignment = alignment
        self._limit = capacity - capacity % alignment  # usable bytes: whole alignment units
        self._starts: list[int] = [0] if self._limit else []
        self._sizes: list[int] = [self._limit] if self._limit else []
        self._blocks: dict[int, int] = {}
        self._used = 0

    # -- queries -------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """The capacity given at construction."""
        return self._capacity

    @property
    def usable_capacity(self) -> int:
        """Capacity rounded down to the alignment: the largest block that can ever exist."""
        return self._limit

    @property
    def alignment(self) -> int:
        return self._alignment

    @property
    def used(self) -> int:
        """Bytes in allocated blocks, alignment padding included."""
        return self._used

    @property
    def free_bytes(self) -> int:
        return self._limit - self._used

    @property
    def largest_free_block(self) -> int:
        return max(self._sizes, default=0)

    @property
    def num_blocks(self) -> int:
        return len(self._blocks)

    def block_size(self, offset: int) -> int:
        """Size of the allocated block at `offset` (padding included); KeyError if none."""
        return self._blocks[offset]

    def round_size(self, size: int) -> int:
        """The block size a request of `size` bytes occupies."""
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        mask = self._alignment - 1
        return max(self._alignment, (size + mask) & ~mask)

    def fits_ever(self, size: int) -> bool:
        """Whether `size` could be allocated in an empty arena."""
        return self.round_size(size) <= self._limit

    # -- mutation ------------------------------------------------------------------------

    def allocate(self, size: int) -> int | None:
        """Offset of a new block of at least `size` bytes, or None if no free block fits."""
        need = self.round_size(size)
        sizes = self._sizes
        i = next(compress(count(), map(need.__le__, sizes)), None)
        if i is None:
            return None
        start = self._starts[i]
        if sizes[i] == need:
            del self._starts[i]
            del sizes[i]
        else:
            self._starts[i] = start + need
            sizes[i] -= need
        self._blocks[start] = need
        self._used += need
        return start

    def free(self, offset: int) -> None:
        """Return the block at `offset` to the free list, merging it with free neighbours."""
        try:
            size = self._blocks.pop(offset)
        except KeyError:
            raise KeyError(f"no block is allocated at offset {offset}") from None
        self._used -= size
        starts, sizes = self._starts, self._sizes
        i = bisect_left(starts, offset)
        merge_prev = i > 0 and starts[i - 1] + sizes[i - 1] == offset
        merge_next = i < len(starts) and starts[i] == offset + size
        if merge_prev and merge_next:
            sizes[i - 1] += size + sizes[i]
            del starts[i]
            del sizes[i]
        elif merge_prev:
            sizes[i - 1] += size
        elif merge_next:
            starts[i] = offset
            sizes[i] += size
        else:
            starts.insert(i, offset)
            sizes.insert(i, size)

    # -- validation ----------------------------------------------------------------------

    def free_blocks(self) -> list[tuple[int, int]]:
        """The free blocks as (offset, size), lowest offset first (a copy)."""
        return list(zip(self._starts, self._sizes, strict=True))

    def check_invariants(self) -> None:
        """Raise AssertionError unless free and allocated blocks tile [0, usable) exactly."""
        spans = sorted([(o, s, "used") for o, s in self._blocks.items()]
                       + [(o, s, "free") for o, s in zip(self._starts, self._sizes, strict=True)])
        pos, prev_kind = 0, None
        for offset, size, kind in spans:
            _check(offset == pos, f"gap or overlap at {pos}: next block starts at {offset}")
            _check(size > 0 and size % self._alignment == 0, f"bad block size {size} at {offset}")
            _check(not (kind == prev_kind == "free"), f"adjacent free blocks at {offset}")
            pos, prev_kind = offset + size, kind
        _check(pos == self._limit, f"blocks end at {pos}, usable capacity is {self._limit}")
        _check(self._starts == sorted(self._starts), "free list not sorted")
        _check(self._used == sum(self._blocks.values()), "used counter drifted")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)
