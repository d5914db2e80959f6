"""The node's object store: placement, pins, LRU eviction, spilling and restore, freeing."""

from __future__ import annotations

import errno
import os
import random

import pytest
from conftest import unit_store_name
from ownrun.engine.errors import ObjectStoreFullError
from ownrun.engine.store.object_store import SHM_DIR, ObjectStore, Placement

KIB = 1024
MIB = 1024 * KIB
WRITER = b"writer"
READER = b"reader"


@pytest.fixture
def spill_dir(tmp_path):
    return str(tmp_path / "spill")


@pytest.fixture
def make_store(spill_dir):
    stores = []

    def make(capacity=MIB):
        store = ObjectStore(unit_store_name(), capacity, spill_dir)
        stores.append(store)
        return store

    yield make
    for store in stores:
        if not store.closed:
            store.validate_state()
        store.close()
        assert not os.path.exists(store.arena_path)
        assert not os.path.exists(spill_dir)  # the store made it, so it removes it


@pytest.fixture
def store(make_store):
    return make_store()


def oid(i: int) -> bytes:
    return i.to_bytes(4, "big") * 5


def write(placement: Placement, data: bytes) -> None:
    fd = os.open(placement.path, os.O_RDWR)
    try:
        os.pwrite(fd, data, placement.offset)
    finally:
        os.close(fd)


def put(store: ObjectStore, i: int, data: bytes, *, primary: bool = True) -> Placement:
    placement = store.create(oid(i), len(data), WRITER, primary=primary)
    write(placement, data)
    store.seal(oid(i), WRITER)
    store.validate_state()
    return placement


def contents(store: ObjectStore, i: int) -> bytes:
    view = store.read(oid(i))
    try:
        return bytes(view)
    finally:
        view.release()


def payload(i: int, size: int) -> bytes:
    return random.Random(i).randbytes(size)


def test_created_object_is_readable_after_seal(store):
    data = payload(1, 1000)
    placement = store.create(oid(1), len(data), WRITER)
    assert placement.kind == "shm" and placement.path == store.arena_path
    assert placement.path.startswith(SHM_DIR)
    assert store.get(oid(1), READER) is None  # unsealed: not visible yet
    write(placement, data)
    store.seal(oid(1), WRITER)
    assert store.contains(oid(1))
    assert store.get(oid(1), READER) == placement
    assert contents(store, 1) == data
    assert store.stats()["pinned_bytes"] == 1000
    store.release(oid(1), READER)
    assert store.stats()["pinned_bytes"] == 0


def test_unknown_object_is_absent(store):
    assert store.get(oid(9), READER) is None
    assert not store.contains(oid(9))
    store.release(oid(9), READER)  # no error
    store.free(oid(9))  # no error
    with pytest.raises(KeyError):
        store.seal(oid(9), WRITER)


def test_empty_object_round_trips(store):
    put(store, 1, b"")
    placement = store.get(oid(1), READER)
    assert placement.size == 0 and placement.kind == "shm"
    assert contents(store, 1) == b""


def test_object_larger_than_the_arena_is_file_backed(store, spill_dir):
    data = payload(1, 3 * MIB)
    placement = put(store, 1, data)
    assert placement.kind == "file" and placement.offset == 0
    assert os.path.dirname(placement.path) == spill_dir
    assert os.path.getsize(placement.path) == 3 * MIB
    assert store.get(oid(1), READER) == placement
    assert contents(store, 1) == data
    assert store.stats()["used"] == 0
    store.release(oid(1), READER)
    store.free(oid(1))
    assert not os.path.exists(placement.path)


def test_secondary_copies_are_evicted_least_recently_used_first(store):
    for i in range(4):
        put(store, i, payload(i, 256 * KIB), primary=False)
    store.get(oid(0), READER)  # touch 0: now 1 is the least recently used
    store.release(oid(0), READER)
    put(store, 10, payload(10, 256 * KIB))
    assert store.take_evicted() == [oid(1)]
    assert store.take_evicted() == []
    assert not store.contains(oid(1))
    assert [store.contains(oid(i)) for i in (0, 2, 3, 10)] == [True] * 4
    assert store.stats()["num_spilled"] == 0


def test_secondary_copies_go_before_any_primary_is_spilled(store):
    put(store, 1, payload(1, 300 * KIB))  # primary, least recently used
    put(store, 2, payload(2, 300 * KIB), primary=False)
    put(store, 3, payload(3, 300 * KIB), primary=False)
    put(store, 4, payload(4, 500 * KIB))
    assert store.take_evicted() == [oid(2), oid(3)]
    assert store.stats()["num_spilled"] == 0
    assert contents(store, 1) == payload(1, 300 * KIB)


def test_full_arena_spills_primaries_and_get_restores_them_byte_exact(store):
    for i in range(4):
        put(store, i, payload(i, 400 * KIB))
    stats = store.stats()
    assert (stats["num_spilled"], stats["spilled_bytes"]) == (2, 800 * KIB)
    assert store.take_evicted() == []  # primaries are spilled, never dropped
    for i in range(4):
        placement = store.get(oid(i), READER)
        assert placement.kind == "shm"  # restored, spilling the least recently used
        assert contents(store, i) == payload(i, 400 * KIB)
        store.release(oid(i), READER)
    assert store.stats()["num_spilled"] == 2


def test_pinned_objects_are_never_spilled(store):
    put(store, 1, payload(1, 400 * KIB))
    put(store, 2, payload(2, 400 * KIB))
    pinned = store.get(oid(1), READER)  # 1 is older but pinned
    store.get(oid(2), READER)
    store.release(oid(2), READER)
    put(store, 3, payload(3, 400 * KIB))
    assert store.get(oid(1), READER) == pinned
    store.get(oid(3), READER)
    assert store.get(oid(2), READER).kind == "file"  # cannot come back: 1 and 3 are pinned


def test_pins_are_counted_per_client(store):
    put(store, 1, payload(1, 600 * KIB))
    store.get(oid(1), READER)
    store.get(oid(1), READER)
    store.get(oid(1), b"other")
    for client in (READER, b"other"):
        store.release(oid(1), client)
    with pytest.raises(ObjectStoreFullError):
        store.create(oid(2), 600 * KIB, WRITER, primary=False)  # READER still holds one pin
    store.release(oid(1), READER)
    store.release(oid(1), READER)  # one too many: ignored
    put(store, 2, payload(2, 600 * KIB))
    assert store.stats()["num_spilled"] == 1


def test_store_full_error_names_sizes_and_moves_nothing(store):
    put(store, 1, payload(1, 400 * KIB))
    store.get(oid(1), READER)  # pinned by a reader
    put(store, 2, payload(2, 100 * KIB))  # spillable, but spilling it would not help
    store.create(oid(3), 400 * KIB, WRITER)  # pinned by its writer
    with pytest.raises(ObjectStoreFullError) as info:
        store.create(oid(4), 400 * KIB, WRITER, primary=False)
    message = str(info.value)
    assert "\n" not in message
    for part in ("0.39 MiB object", "1.00 MiB arena", "0.78 MiB is pinned", "0.88 MiB is in use"):
        assert part in message
    assert store.stats()["num_spilled"] == 0 and store.contains(oid(2))
    assert not store.contains(oid(4))


def test_a_primary_copy_goes_to_a_fallback_file_when_pins_hold_the_arena(store):
    put(store, 1, payload(1, 600 * KIB))
    store.get(oid(1), READER)  # pinned by a reader: neither evictable nor spillable
    placement = put(store, 2, payload(2, 600 * KIB))  # Ray's fallback allocation, no error
    assert placement.kind == "file"
    store.validate_state()
    assert contents(store, 2) == payload(2, 600 * KIB)
    store.release(oid(1), READER)
    assert store.get(oid(2), READER).kind == "shm"  # moved into the arena once room was free
    assert contents(store, 1) == payload(1, 600 * KIB) and contents(store, 2) == payload(2, 600 * KIB)
    store.validate_state()


def test_a_primary_copy_raises_store_full_when_no_fallback_file_can_be_made(store, monkeypatch):
    put(store, 1, payload(1, 600 * KIB))
    store.get(oid(1), READER)

    def disk_full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", disk_full)
    with pytest.raises(ObjectStoreFullError, match="No space left on device"):
        store.create(oid(2), 600 * KIB, WRITER)
    monkeypatch.undo()
    assert not store.contains(oid(2))
    store.validate_state()


def test_restore_falls_back_to_the_spill_file_when_pins_hold_the_arena(store):
    put(store, 1, payload(1, 400 * KIB))
    put(store, 2, payload(2, 400 * KIB))
    put(store, 3, payload(3, 400 * KIB))  # spills 1
    store.get(oid(2), READER)
    store.get(oid(3), READER)
    placement = store.get(oid(1), READER)
    assert placement.kind == "file" and placement.size == 400 * KIB
    with open(placement.path, "rb") as f:
        assert f.read() == payload(1, 400 * KIB)
    for i in (1, 2, 3):
        store.release(oid(i), READER)
    assert store.get(oid(1), READER).kind == "shm"  # room can be made now
    assert not os.path.exists(placement.path)
    assert contents(store, 1) == payload(1, 400 * KIB)


def test_free_with_outstanding_pins_is_deferred_to_the_last_release(store):
    put(store, 1, payload(1, 1000))
    store.get(oid(1), READER)
    store.free(oid(1))
    assert not store.contains(oid(1))
    assert store.get(oid(1), b"late") is None
    assert store.stats()["num_objects"] == 1
    store.release(oid(1), READER)
    assert store.stats()["num_objects"] == 0 and store.stats()["used"] == 0


def test_free_of_a_spilled_object_removes_its_file(store, spill_dir):
    for i in range(3):
        put(store, i, payload(i, 400 * KIB))
    assert len(os.listdir(spill_dir)) == 1
    store.free(oid(0))
    assert os.listdir(spill_dir) == []


def test_free_while_being_written_deletes_at_seal(store):
    placement = store.create(oid(1), 1000, WRITER)
    store.free(oid(1))
    write(placement, payload(1, 1000))
    store.seal(oid(1), WRITER)
    assert store.stats()["num_objects"] == 0


def test_release_client_aborts_a_dead_writers_objects_and_drops_its_pins(store):
    put(store, 1, payload(1, 1000))
    store.get(oid(1), WRITER)
    store.get(oid(1), WRITER)
    store.free(oid(1))  # deferred: the writer still pins it
    put(store, 2, payload(2, 1000))
    store.get(oid(2), WRITER)
    store.get(oid(2), READER)
    store.create(oid(3), 5000, WRITER)  # never sealed
    store.create(oid(4), 2 * MIB, WRITER)  # never sealed, file-backed
    store.release_client(WRITER)
    store.validate_state()
    assert [store.contains(oid(i)) for i in (1, 2, 3, 4)] == [False, True, False, False]
    assert store.stats()["num_spilled"] == 0
    assert store.stats()["pinned_bytes"] == 1000  # only READER's pin on 2 is left
    store.release_client(READER)
    assert store.stats()["pinned_bytes"] == 0
    store.create(oid(3), 10, b"new writer")  # the aborted id can be created again


def test_an_object_created_ahead_is_not_counted_until_it_is_sealed(store):
    placement = store.create(oid(1), 1000, WRITER, ahead=True)
    assert placement.kind == "shm" and not placement.exists
    assert (store.stats()["num_objects"], store.stats()["num_ahead"]) == (0, 1)
    assert not store.contains(oid(1)) and store.being_written(oid(1))
    store.validate_state()
    write(placement, payload(1, 1000))
    store.seal(oid(1), WRITER)
    store.validate_state()
    assert (store.stats()["num_objects"], store.stats()["num_ahead"]) == (1, 0)
    assert contents(store, 1) == payload(1, 1000)


def test_an_object_created_ahead_takes_only_free_room(store):
    for i in range(4):  # fill the arena with unpinned sealed objects that could be evicted
        put(store, i, payload(i, 256 * KIB), primary=False)
    with pytest.raises(ObjectStoreFullError, match="created ahead"):
        store.create(oid(9), 100 * KIB, WRITER, ahead=True)
    assert [store.contains(oid(i)) for i in range(4)] == [True] * 4  # nothing evicted for it
    assert store.take_evicted() == [] and store.stats()["num_ahead"] == 0
    with pytest.raises(ObjectStoreFullError, match="created ahead"):  # never a fallback file
        store.create(oid(9), 2 * MIB, WRITER, ahead=True)
    assert store.stats()["num_spilled"] == 0


def test_an_object_created_ahead_is_aborted_by_its_writer_or_with_it(store):
    store.create(oid(1), 1000, WRITER, ahead=True)
    with pytest.raises(ValueError):
        store.abort(oid(1), READER)  # only its writer may
    store.abort(oid(1), WRITER)
    stats = store.stats()
    assert (stats["num_ahead"], stats["num_objects"], stats["used"]) == (0, 0, 0)
    store.create(oid(2), 1000, WRITER, ahead=True)
    store.release_client(WRITER)  # the writer died
    store.validate_state()
    assert (store.stats()["num_ahead"], store.stats()["used"]) == (0, 0)


def test_an_existing_id_cannot_be_created_ahead(store):
    put(store, 1, payload(1, 1000))
    with pytest.raises(ValueError, match="exists"):
        store.create(oid(1), 1000, WRITER, ahead=True)
    assert store.stats()["num_ahead"] == 0


def test_create_of_a_sealed_id_reports_it_exists_and_seal_unpins_it(store):
    placement = put(store, 1, payload(1, 1000), primary=False)
    again = store.create(oid(1), 1000, b"re-executor")
    assert again == placement._replace(exists=True)
    assert store.stats()["pinned_bytes"] == 1000  # pinned until the re-executor seals
    store.seal(oid(1), b"re-executor")  # writes nothing, seals as usual
    assert store.stats()["pinned_bytes"] == 0
    with pytest.raises(ValueError):
        store.seal(oid(1), b"re-executor")  # its create pin is gone
    put(store, 2, payload(2, 1000 * KIB))  # the copy became primary: spilled, not evicted
    assert store.take_evicted() == []
    assert contents(store, 1) == payload(1, 1000)


def test_create_of_an_id_being_written_is_refused(store):
    store.create(oid(1), 1000, WRITER)
    with pytest.raises(ValueError):
        store.create(oid(1), 1000, b"other")
    with pytest.raises(ValueError):
        store.seal(oid(1), b"other")
    store.abort(oid(1), WRITER)
    assert store.stats()["num_objects"] == 0


def test_create_of_a_freed_but_pinned_id_revives_it(store):
    put(store, 1, payload(1, 1000))
    store.get(oid(1), READER)
    store.free(oid(1))
    assert store.create(oid(1), 1000, WRITER).exists
    assert store.contains(oid(1))
    store.release(oid(1), READER)
    store.release_client(WRITER)  # the re-executor died before sealing: only its pin goes
    assert contents(store, 1) == payload(1, 1000)


def test_sealing_twice_is_an_error(store):
    put(store, 1, b"x")
    with pytest.raises(ValueError):
        store.seal(oid(1), WRITER)


def test_close_is_idempotent_and_leaves_no_files(make_store, spill_dir):
    store = make_store()
    for i in range(3):
        put(store, i, payload(i, 400 * KIB))
    put(store, 9, payload(9, 2 * MIB))
    view = store.read(oid(2))  # an exported view must not make close fail
    store.close()
    store.close()
    assert not os.path.exists(store.arena_path)
    assert not os.path.exists(spill_dir)
    del view


def test_a_forked_child_closing_its_copy_leaves_the_parents_files(store, spill_dir):
    put(store, 1, payload(1, 2 * MIB))
    pid = os.fork()
    if pid == 0:  # the child: close (and exit) without touching the files
        store.close()
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert os.path.exists(store.arena_path) and len(os.listdir(spill_dir)) == 1
    assert contents(store, 1) == payload(1, 2 * MIB)


def test_arena_name_collision_is_refused(make_store, spill_dir):
    store = make_store()
    with pytest.raises(FileExistsError):
        ObjectStore(os.path.basename(store.arena_path), MIB, spill_dir)
    assert os.path.exists(store.arena_path)


def test_random_workload_keeps_contents_and_invariants(make_store):
    rng = random.Random(1234)
    store = make_store(capacity=MIB)
    live: dict[int, int] = {}  # id -> size of sealed, unfreed objects
    pins: list[tuple[int, bytes]] = []
    for step in range(400):
        op = rng.random()
        if op < 0.45:
            size = rng.choice([0, 100, 30 * KIB, 200 * KIB, 2 * MIB])
            try:
                put(store, step, payload(step, size), primary=rng.random() < 0.7)
                live[step] = size
            except ObjectStoreFullError:
                store.release_client(WRITER)
        elif op < 0.7 and live:
            i = rng.choice(list(live))
            client = rng.choice([READER, b"r2"])
            if store.get(oid(i), client) is None:
                del live[i]  # an evicted secondary copy
            else:
                assert contents(store, i) == payload(i, live[i])
                pins.append((i, client))
        elif op < 0.85 and pins:
            store.release(*pins.pop(rng.randrange(len(pins))))
        elif live:
            i = rng.choice(list(live))
            store.free(oid(i))
            del live[i]
        store.validate_state()
    evicted = set(store.take_evicted())
    for i, size in live.items():
        if oid(i) not in evicted:
            assert store.get(oid(i), READER) is not None
            assert contents(store, i) == payload(i, size)
