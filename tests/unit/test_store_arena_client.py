"""The client side of the store: writes into placements, read-only views, release tracking."""

from __future__ import annotations

import gc
import os
import pickle

import numpy as np
import pytest
from conftest import unit_store_name
from ownrun.engine.store.arena_client import ArenaClient
from ownrun.engine.store.object_store import ObjectStore

KIB = 1024
MIB = 1024 * KIB
WRITER = b"writer"


@pytest.fixture
def store(tmp_path):
    store = ObjectStore(unit_store_name(), MIB, str(tmp_path / "spill"))
    yield store
    store.validate_state()
    store.close()
    assert not os.path.exists(store.arena_path)


@pytest.fixture
def client():
    client = ArenaClient()
    yield client
    client.close()


def put(store, client, oid: bytes, chunks) -> None:
    size = sum(memoryview(c).nbytes for c in chunks)
    placement = store.create(oid, size, WRITER)
    client.write(placement, chunks)
    store.seal(oid, WRITER)


def mappings(path: str) -> int:
    """How many mappings of `path` this process has (the store maps its arena too)."""
    with open("/proc/self/maps") as f:
        return sum(line.rstrip().endswith(path) for line in f)


def mapped(path: str) -> bool:
    return mappings(path) > 0


def test_chunks_of_any_buffer_type_are_written_back_to_back(store, client):
    big = np.random.default_rng(0).integers(0, 255, 300 * KIB, np.uint8)  # numpy copy path
    matrix = np.arange(12, dtype=np.float64).reshape(3, 4)
    chunks = [b"head", bytearray(b"-"), memoryview(b"mid"), matrix, big]
    put(store, client, b"a", chunks)
    arr = client.view(store.get(b"a", b"r"))
    assert arr.tobytes() == b"".join(bytes(memoryview(c).cast("B")) for c in chunks)
    store.release(b"a", b"r")


def test_writes_at_an_offset_stream_into_the_placement(store, client):
    placement = store.create(b"a", 10, WRITER)
    client.write(placement, [b"01234"])
    client.write(placement, [b"567", b"89"], offset=5)
    with pytest.raises(ValueError):
        client.write(placement, [b"xx"], offset=9)
    store.seal(b"a", WRITER)
    assert client.view(store.get(b"a", b"r")).tobytes() == b"0123456789"
    store.release(b"a", b"r")


def test_views_are_read_only_down_to_derived_buffers(store, client):
    put(store, client, b"a", [bytes(range(64))])
    arr = client.view(store.get(b"a", b"r"))
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr.flags.writeable = True
    with pytest.raises(ValueError):
        arr[0] = 1
    assert memoryview(arr).readonly
    assert not np.frombuffer(arr[8:], np.uint32).flags.writeable
    del arr
    store.release(b"a", b"r")


def test_release_fires_only_after_a_derived_array_is_gone(store, client):
    values = np.linspace(0, 1, 100)
    put(store, client, b"a", [bytes(64), values])
    released = []
    arr = client.view_with_release(store.get(b"a", b"r"), lambda: released.append(True))
    derived = np.frombuffer(arr[64:], dtype=np.float64)
    view = memoryview(arr)[:8]
    del arr
    gc.collect()
    assert released == []
    np.testing.assert_array_equal(derived, values)
    del derived
    gc.collect()
    assert released == []
    view.release()
    assert released == [True]


def test_release_fires_only_after_an_unpickled_array_is_gone(store, client):
    value = {"weights": np.arange(1000, dtype=np.float32), "name": "w"}
    buffers = []
    header = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    raw = buffers[0].raw()
    put(store, client, b"a", [header, raw])
    released = []
    arr = client.view_with_release(store.get(b"a", b"r"), lambda: released.append(True))
    n = len(header)
    restored = pickle.loads(arr[:n], buffers=[arr[n : n + raw.nbytes]])
    weights = restored["weights"]
    assert np.shares_memory(weights, arr) and not weights.flags.writeable
    del arr, restored
    gc.collect()
    assert released == []
    np.testing.assert_array_equal(weights, value["weights"])
    del weights
    gc.collect()
    assert released == [True]


def test_file_placements_are_mapped_only_while_viewed(store, client):
    data = np.random.default_rng(1).integers(0, 255, 3 * MIB, np.uint8)
    put(store, client, b"big", [data])
    placement = store.get(b"big", b"r")
    assert placement.kind == "file"
    assert not mapped(placement.path)  # the write mapping is gone
    released = []
    arr = client.view_with_release(placement, lambda: released.append(True))
    assert mapped(placement.path)
    np.testing.assert_array_equal(arr, data)
    assert not arr.flags.writeable
    del arr
    gc.collect()
    assert released == [True] and not mapped(placement.path)
    store.release(b"big", b"r")


def test_spilled_object_reads_back_through_its_file(store, client):
    for i in range(3):
        put(store, client, bytes([i]), [bytes([i]) * 400 * KIB])
    store.get(bytes([1]), b"r")
    store.get(bytes([2]), b"r")
    placement = store.get(bytes([0]), b"r")  # spilled; 1 and 2 pin the arena
    assert placement.kind == "file"
    assert client.view(placement).tobytes() == bytes([0]) * 400 * KIB
    store.release_client(b"r")


def test_empty_objects_have_empty_read_only_views(store, client):
    put(store, client, b"a", [])
    released = []
    arr = client.view_with_release(store.get(b"a", b"r"), lambda: released.append(True))
    assert arr.size == 0 and not arr.flags.writeable
    del arr
    assert released == [True]
    store.release(b"a", b"r")


def test_close_with_live_views_leaves_their_maps_to_the_gc(store):
    by_store = mappings(store.arena_path)
    client = ArenaClient()
    put(store, client, b"a", [b"still readable"])
    arr = client.view(store.get(b"a", b"r"))
    assert mappings(store.arena_path) == by_store + 1
    client.close()
    assert arr.tobytes() == b"still readable"
    del arr
    gc.collect()
    assert mappings(store.arena_path) == by_store
    store.release(b"a", b"r")


def test_close_unmaps_the_arena_when_no_view_is_alive(store):
    by_store = mappings(store.arena_path)
    client = ArenaClient()
    put(store, client, b"a", [b"x"])
    client.view(store.get(b"a", b"r"))  # dropped at once
    assert mappings(store.arena_path) == by_store + 1
    client.close()
    assert mappings(store.arena_path) == by_store
    store.release(b"a", b"r")
