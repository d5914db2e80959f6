"""The arena allocator: first fit at the lowest address, coalescing, fragmentation."""

from __future__ import annotations

import sys

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from ownrun.engine.store import allocator as allocator_module
from ownrun.engine.store.allocator import Allocator

KIB = 1024


def test_allocations_are_aligned_and_padded():
    alloc = Allocator(4 * KIB, alignment=64)
    a = alloc.allocate(1)
    b = alloc.allocate(100)
    assert (a, b) == (0, 64)
    assert alloc.block_size(b) == 128
    assert alloc.used == 64 + 128
    alloc.check_invariants()


def test_zero_size_reserves_one_alignment_unit_with_a_distinct_offset():
    alloc = Allocator(4 * KIB, alignment=64)
    offsets = {alloc.allocate(0) for _ in range(3)}
    assert offsets == {0, 64, 128}
    assert alloc.used == 3 * 64


def test_lowest_freed_block_is_reused_first():
    alloc = Allocator(64 * KIB)
    offsets = [alloc.allocate(KIB) for _ in range(8)]
    alloc.free(offsets[5])
    alloc.free(offsets[2])
    alloc.free(offsets[6])
    assert alloc.allocate(KIB) == offsets[2]
    assert alloc.allocate(KIB) == offsets[5]
    assert alloc.allocate(KIB) == offsets[6]
    alloc.check_invariants()


def test_first_fit_skips_holes_that_are_too_small():
    alloc = Allocator(64 * KIB)
    a, _, c, _ = (alloc.allocate(KIB) for _ in range(4))
    alloc.free(a)
    alloc.free(c)
    assert alloc.allocate(2 * KIB) == 4 * KIB  # neither 1 KiB hole fits
    assert alloc.allocate(KIB) == a


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (0, 2, 1), (1, 0, 2)])
def test_freed_neighbours_coalesce_into_one_block(order):
    alloc = Allocator(3 * KIB)
    offsets = [alloc.allocate(KIB) for _ in range(3)]
    assert alloc.largest_free_block == 0
    for i in order:
        alloc.free(offsets[i])
        alloc.check_invariants()
    assert alloc.free_blocks() == [(0, 3 * KIB)]
    assert alloc.allocate(3 * KIB) == 0


def test_fragmentation_limits_the_largest_block_not_the_free_bytes():
    alloc = Allocator(8 * KIB)
    offsets = [alloc.allocate(KIB) for _ in range(8)]
    for offset in offsets[::2]:
        alloc.free(offset)
    assert alloc.free_bytes == 4 * KIB
    assert alloc.largest_free_block == KIB
    assert alloc.allocate(2 * KIB) is None
    alloc.free(offsets[1])
    assert alloc.largest_free_block == 3 * KIB
    assert alloc.allocate(2 * KIB) == 0


def test_allocation_fails_cleanly_when_full():
    alloc = Allocator(1000, alignment=64)  # usable: 960
    assert alloc.usable_capacity == 960
    assert alloc.allocate(961) is None
    assert alloc.allocate(960) == 0
    assert alloc.allocate(0) is None
    assert alloc.used == 960


def test_free_of_an_unknown_offset_raises_key_error():
    alloc = Allocator(4 * KIB)
    offset = alloc.allocate(10)
    with pytest.raises(KeyError):
        alloc.free(offset + 64)
    alloc.free(offset)
    with pytest.raises(KeyError):
        alloc.free(offset)


def test_bad_alignment_is_rejected():
    with pytest.raises(ValueError):
        Allocator(4 * KIB, alignment=48)


def _fragmented(holes: int) -> Allocator:
    """An allocator with `holes` free 4 KiB holes below its free tail."""
    alloc = Allocator(1 << 30)
    offsets = [alloc.allocate(4 * KIB) for _ in range(2 * holes + 1)]
    for offset in offsets[:-1:2]:
        alloc.free(offset)
    assert len(alloc.free_blocks()) == holes + 1
    return alloc


def _allocator_lines_run(call) -> int:
    """How many lines of Python in the allocator module `call()` executes."""
    target = allocator_module.__file__
    lines = 0

    def local(frame, event, arg):
        nonlocal lines
        if event == "line":
            lines += 1
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code.co_filename == target else None

    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(None)
    return lines


def test_thousands_of_fragmented_blocks_stay_fast():
    # What keeps it fast: the first-fit scan runs in C, so the Python work of an allocation does
    # not grow with the number of holes it must skip (no timing: counted in executed lines).
    def churn(alloc):
        def run():
            for _ in range(100):
                offset = alloc.allocate(64 * KIB)  # only the tail fits: every hole is skipped
                assert offset == alloc.free_blocks()[-1][0] - 64 * KIB
                alloc.free(offset)
        return run

    few, many = _fragmented(10), _fragmented(10_000)
    assert _allocator_lines_run(churn(many)) == _allocator_lines_run(churn(few))
    few.check_invariants()
    many.check_invariants()


class AllocatorVsModel(RuleBasedStateMachine):
    """Compares the allocator with a model that derives first fit from the allocated set."""

    ALIGN = 64
    CAPACITY = 64 * 40 + 17

    def __init__(self):
        super().__init__()
        self.alloc = Allocator(self.CAPACITY, self.ALIGN)
        self.blocks: dict[int, int] = {}  # the model: offset -> rounded size

    def gaps(self) -> list[tuple[int, int]]:
        limit = self.CAPACITY - self.CAPACITY % self.ALIGN
        gaps, pos = [], 0
        for offset in sorted(self.blocks):
            if offset > pos:
                gaps.append((pos, offset - pos))
            pos = offset + self.blocks[offset]
        if limit > pos:
            gaps.append((pos, limit - pos))
        return gaps

    @rule(size=st.integers(0, 700))
    def allocate(self, size):
        need = max(self.ALIGN, -(-size // self.ALIGN) * self.ALIGN)
        expected = next((start for start, length in self.gaps() if length >= need), None)
        assert self.alloc.allocate(size) == expected
        if expected is not None:
            self.blocks[expected] = need

    @precondition(lambda self: self.blocks)
    @rule(data=st.data())
    def free(self, data):
        offset = data.draw(st.sampled_from(sorted(self.blocks)))
        self.alloc.free(offset)
        del self.blocks[offset]

    @rule(offset=st.integers(0, CAPACITY))
    def free_unknown(self, offset):
        if offset not in self.blocks:
            with pytest.raises(KeyError):
                self.alloc.free(offset)

    @invariant()
    def agrees_with_model(self):
        self.alloc.check_invariants()
        assert self.alloc.used == sum(self.blocks.values())
        assert self.alloc.largest_free_block == max((n for _, n in self.gaps()), default=0)
        assert self.alloc.free_blocks() == self.gaps()


AllocatorVsModel.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, database=None)
test_allocator_matches_model = AllocatorVsModel.TestCase
