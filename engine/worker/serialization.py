"""Turning values into frames and back (DESIGN.md §6).

Owns the wire and shared-memory formats of values: cloudpickle with pickle protocol 5,
numpy and other buffer-backed data carried out-of-band, so a large array is copied once
into shared memory and read back as a zero-copy, read-only view.

* frames: `[inband_pickle, buffer0, buffer1, ...]` — sent as zmq frames for inline values.
* plain data — None, bool, numbers, str, bytes, numpy arrays (not of objects) and numpy
  scalars, in tuples, lists and dicts of at most `_PLAIN_ITEMS` items, `_PLAIN_DEPTH` deep,
  and instances of importable classes whose attributes are plain data (`_reduces_to_dict`: a
  dataclass of a module, say) — goes through the C pickler alone: it pickles those exactly
  as cloudpickle does, without cloudpickle's per-object Python hook (a tuple of two small
  arrays: 33 -> 13 us; a 320x240 frame 23 -> 10 us; a dataclass holding an array 21 -> 8 us,
  measured in one process). Anything else (classes, functions, `__main__` objects, refs)
  goes through cloudpickle.
* shared-memory layout: `u32 nframes, u32 pad, u64 len[n]`, then each frame at a 64-byte
  aligned offset.

Failures: `SerializationError` (a TypeError) naming what could not be pickled.
Thread-safe: the per-thread ref collectors of object_ref, and numpy's scalar types added
once to the plain ones (a set update under the GIL; a racing reader at worst takes cloudpickle).
"""

from __future__ import annotations

import copyreg
import pickle
import struct
import sys

import cloudpickle

from ..errors import SerializationError
from ..object_ref import collect_contained, collect_received

ALIGN = 64
_FAST_TYPES = frozenset({type(None), bool, int, float, str, bytes})
_PLAIN_SCALARS = set(_FAST_TYPES | {complex})  # numpy's scalar types join once numpy is loaded
_PLAIN_ITEMS = 64
_PLAIN_DEPTH = 4
_numpy_array_type: type | None = None
_by_reference_classes: dict[type, bool] = {}  # importable class -> instances pickle as (class, __dict__)
_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement, not a built-in


def _load_numpy_types() -> type | None:
    """numpy's array type, and its scalar types added to the plain ones, if numpy is loaded
    (a value holding an array means it is)."""
    global _numpy_array_type
    numpy = sys.modules.get("numpy")
    if numpy is None or not hasattr(numpy, "ndarray"):
        return None
    _PLAIN_SCALARS.update(t for t in set(numpy.sctypeDict.values())
                          if t not in (numpy.object_, numpy.void))
    _numpy_array_type = numpy.ndarray
    return _numpy_array_type


def _importable(kind: type) -> bool:
    """Whether another process finds `kind` again by module and qualified name (not a class
    of `__main__` or made inside a function), as cloudpickle's pickling by reference needs."""
    if kind.__module__ in (None, "__main__"):
        return False
    found = sys.modules.get(kind.__module__)
    for part in kind.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is kind


def _reduces_to_dict(kind: type) -> bool:
    """Whether the C pickler writes an instance of (importable) `kind` as cloudpickle does:
    the class by reference and the instance's `__dict__` as its state (object's own reduce
    and state methods, no `__slots__`, no copyreg entry, and no built-in base but object: a
    dict or tuple subclass pickles its items too)."""
    if type(kind) is not type or copyreg.dispatch_table.get(kind):
        return False
    if not all(base.__flags__ & _HEAP_TYPE for base in kind.__mro__[:-1]):
        return False
    return not (kind.__reduce_ex__ is not object.__reduce_ex__ or kind.__reduce__ is not object.__reduce__
                or kind.__getstate__ is not object.__getstate__ or hasattr(kind, "__setstate__")
                or hasattr(kind, "__getnewargs_ex__") or hasattr(kind, "__getnewargs__")
                or any("__slots__" in vars(base) for base in kind.__mro__[:-1]))


def _registered_by_value(kind: type) -> bool:
    """Whether `kind`'s module (or a package above it) is to be pickled by value."""
    registry = cloudpickle.list_registry_pickle_by_value()
    if not registry:
        return False
    name = kind.__module__
    while True:
        if name in registry:
            return True
        if "." not in name:
            return False
        name = name.rsplit(".", 1)[0]


def _plain(value, depth: int = 0) -> bool:
    """Whether `value` is plain data (see the module's docstring)."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if kind is tuple or kind is list:
        if depth >= _PLAIN_DEPTH or len(value) > _PLAIN_ITEMS:
            return False
        depth += 1
        for item in value:
            if not _plain(item, depth):
                return False
        return True
    if kind is dict:
        if depth >= _PLAIN_DEPTH or len(value) > _PLAIN_ITEMS:
            return False
        depth += 1
        for key, item in value.items():
            if type(key) not in _FAST_TYPES or not _plain(item, depth):
                return False
        return True
    if _numpy_array_type is None and kind.__module__ == "numpy" and _load_numpy_types() \
            and kind in _PLAIN_SCALARS:
        return True  # the first numpy scalar seen: its type has just joined the plain ones
    if kind is _numpy_array_type:
        return not value.dtype.hasobject
    by_reference = _by_reference_classes.get(kind)
    if by_reference is None:
        if not _importable(kind):  # made at run time, perhaps one of many: not remembered
            return False
        by_reference = _by_reference_classes[kind] = _reduces_to_dict(kind)
    if not by_reference:
        return False
    state = getattr(value, "__dict__", None)
    return type(state) is dict and _plain(state, depth) and not _registered_by_value(kind)


def serialize(value) -> tuple[list, list]:
    """Returns (frames, contained refs as [[oid, owner], ...])."""
    if type(value) in _FAST_TYPES:
        return [pickle.dumps(value, 5)], []
    buffers: list = []
    if _plain(value):
        inband, contained = pickle.dumps(value, 5, buffer_callback=buffers.append), []
    else:
        with collect_contained() as contained:
            try:
                inband = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
            except Exception as exc:  # noqa: BLE001 - re-raised typed, with the cause
                raise SerializationError(f"cannot serialize {_describe(value)}: {exc}") from exc
    if buffers:
        return [inband, *[b.raw() for b in buffers]], contained
    return [inband], contained


def serialize_arguments(args: list, kwargs: dict) -> tuple[list, list]:
    """`serialize((args, kwargs))` of a task's arguments: plain ones (see `_plain`) go
    through the C pickler alone, without cloudpickle's."""
    return serialize((args, kwargs))


def deserialize(frames: list, received: list | None = None):
    """Rebuilds a value from frames; refs found inside are appended to `received`."""
    if received is None:
        if len(frames) == 1:
            return pickle.loads(frames[0])
        return pickle.loads(frames[0], buffers=frames[1:])
    with collect_received() as got:
        value = pickle.loads(frames[0], buffers=frames[1:]) if len(frames) > 1 else pickle.loads(frames[0])
    received.extend(got)
    return value


def frames_size(frames: list) -> int:
    if len(frames) == 1 and type(frames[0]) is bytes:  # a small value: one pickle, no buffers
        return len(frames[0])
    return sum(len(f) if isinstance(f, bytes) else f.nbytes for f in frames)


def shm_layout(frames: list) -> tuple[int, list]:
    """Returns (total size, chunks to write back to back) for the shared-memory format."""
    lengths = [len(f) if isinstance(f, bytes) else f.nbytes for f in frames]
    header = struct.pack(f"<II{len(lengths)}Q", len(lengths), 0, *lengths)
    chunks = [header]
    pos = len(header)
    for frame, length in zip(frames, lengths, strict=True):
        pad = -pos % ALIGN
        if pad:
            chunks.append(bytes(pad))
            pos += pad
        chunks.append(frame)
        pos += length
    return pos, chunks


def frames_from_shm(view) -> list:
    """Slices the frames back out of a shared-memory view (no copies)."""
    (count,) = struct.unpack_from("<I", view, 0)
    lengths = struct.unpack_from(f"<{count}Q", view, 8)
    pos = 8 + 8 * count
    frames = []
    for length in lengths:
        pos += -pos % ALIGN
        frames.append(view[pos : pos + length])
        pos += length
    return frames


def _describe(value) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def dumps_function(fn) -> bytes:
    try:
        return cloudpickle.dumps(fn, protocol=5)
    except Exception as exc:  # noqa: BLE001
        raise SerializationError(f"cannot serialize function {getattr(fn, '__name__', fn)!r}: {exc}") from exc
