"""The layout of ownrun's ids, in one place.

* task id (16 bytes): an 8-byte random prefix per process + an 8-byte little-endian counter.
* object id (20 bytes): the id of the task that creates it + a 4-byte little-endian index:
  1..n for a task's returns, 0 for an object created by `put` (which takes a fresh task id).
* actor id, worker id: 16 random bytes.

Pure functions, plus `IdGenerator` (one per process, used under the core worker's lock or
from one thread: `itertools.count` is atomic in CPython). Thread-safe.
"""

from __future__ import annotations

import itertools
import os

TASK_ID_SIZE = 16
OBJECT_ID_SIZE = 20
PUT_INDEX = 0


def return_id(task_id: bytes, index: int) -> bytes:
    """The id of return `index` (1-based) of task `task_id`."""
    return task_id + index.to_bytes(4, "little")


_FIRST_RETURN = (1).to_bytes(4, "little")


def return_ids(task_id: bytes, n: int) -> list[bytes]:
    if n == 1:
        return [task_id + _FIRST_RETURN]
    return [task_id + i.to_bytes(4, "little") for i in range(1, n + 1)]


DYNAMIC_INDEX = 0xFFFFFFFF  # the one ref of a num_returns="dynamic" task (its items are 1, 2, ...)


def dynamic_id(task_id: bytes) -> bytes:
    """The id of the ref a `num_returns="dynamic"` task returns: its value lists the items."""
    return return_id(task_id, DYNAMIC_INDEX)


def put_id(task_id: bytes) -> bytes:
    return task_id + PUT_INDEX.to_bytes(4, "little")


def task_id_of(object_id: bytes) -> bytes:
    """The task that creates `object_id` (for a put object: the id taken for the put)."""
    return object_id[:TASK_ID_SIZE]


def new_actor_id() -> bytes:
    return os.urandom(16)


def new_worker_id() -> bytes:
    """A driver's or worker's id (16 random bytes)."""
    return os.urandom(16)


class IdGenerator:
    """Fresh task ids for one process."""

    __slots__ = ("_prefix", "_counter")

    def __init__(self):
        self._prefix = os.urandom(8)
        self._counter = itertools.count(1)

    def next_task_id(self) -> bytes:
        return self._prefix + next(self._counter).to_bytes(8, "little")
