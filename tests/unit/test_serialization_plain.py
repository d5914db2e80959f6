"""Plain data (numbers, strings, numpy arrays and scalars in small tuples, lists and dicts,
instances of importable classes holding plain data) goes through the C pickler alone and
comes back equal, with out-of-band array buffers as before; anything that needs cloudpickle
(a class or function made at run time, an object array, a ref inside, a numpy subclass,
too deep or too long a container, a class with its own reduce, a dict subclass, a class of
a module pickled by value) still gets it."""

from __future__ import annotations

import sys

import cloudpickle
import numpy as np
import pytest
from ownrun.engine.object_ref import ObjectRef
from ownrun.engine.worker import serialization
from plain_classes import Empty, Items, Point, Reduces


def _cloudpickle_frames(value) -> list:
    buffers: list = []
    inband = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return [inband, *[bytes(b.raw()) for b in buffers]]


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


PLAIN = [
    Point(1.5, ("a", 2)),
    (0.5, [Point(2.0), Empty()]),
    (1.5, -2.0, 0.25),
    ((0.1, 0.2, 0.3), np.arange(128, dtype=np.float32).reshape(64, 1, 2)),
    np.zeros((240, 320), np.uint8),
    [np.float32(1.5), np.int64(7), np.bool_(True), 3 + 4j],
    {"a": 1, 2: [None, b"x", "y"], 3.5: {"deep": (1, 2)}},
    (),
]


@pytest.mark.parametrize("value", PLAIN, ids=range(len(PLAIN)))
def test_plain_data_takes_the_c_pickler_and_round_trips(value, monkeypatch):
    assert serialization._plain(value)
    calls = []
    monkeypatch.setattr(cloudpickle, "dumps", lambda *a, **k: calls.append(a) or b"")
    frames, contained = serialization.serialize(value)
    assert calls == [] and contained == []
    back = serialization.deserialize([bytes(f) if not isinstance(f, bytes) else f for f in frames])
    assert _same(back, value)


def test_an_array_travels_out_of_band_as_with_cloudpickle():
    frame = np.arange(240 * 320, dtype=np.uint32).reshape(240, 320)
    frames, _ = serialization.serialize(frame)
    assert len(frames) == 2 and bytes(frames[1]) == frame.tobytes()
    assert [bytes(f) for f in frames[1:]] == _cloudpickle_frames(frame)[1:]
    assert np.array_equal(serialization.deserialize(frames), frame)


class _Made:  # a class of this test module (shipped by value, see conftest): not plain
    pass


def _local_instance():
    class Local:
        pass
    return Local()


NOT_PLAIN = [
    (lambda: 1,),
    [_Made()],
    Point(lambda: 2),
    _local_instance(),
    Reduces(),
    Items(f=lambda: 3),
    np.array([object(), 1], dtype=object),
    np.ma.array([1, 2]),
    {("tuple", "key"): 1},
    tuple(range(serialization._PLAIN_ITEMS + 1)),
    [[[[[1]]]]],
]


@pytest.mark.parametrize("value", NOT_PLAIN, ids=range(len(NOT_PLAIN)))
def test_anything_else_still_goes_through_cloudpickle(value):
    assert not serialization._plain(value)
    frames, _ = serialization.serialize(value)
    assert [bytes(f) for f in frames] == _cloudpickle_frames(value)


def test_an_instance_of_an_importable_class_pickles_as_with_cloudpickle():
    for value in (Point(1.5, ("a", 2)), Point(np.arange(6, dtype=np.float32)), Empty()):
        frames, _ = serialization.serialize(value)
        assert [bytes(f) for f in frames] == _cloudpickle_frames(value)


def test_classes_made_at_run_time_are_not_remembered():
    """Only importable classes are remembered (a bounded set): a class made inside a function
    may be one of many, and remembering it would keep it alive."""
    before = len(serialization._by_reference_classes)
    for _ in range(3):
        value = _local_instance()
        assert not serialization._plain(value)
        assert type(value) not in serialization._by_reference_classes
    assert len(serialization._by_reference_classes) == before
    assert serialization._plain(Point(1.0)) and serialization._by_reference_classes[Point] is True


def test_a_class_of_a_module_registered_to_pickle_by_value_goes_through_cloudpickle():
    module = sys.modules[Point.__module__]
    assert serialization._plain(Point(1.0))
    cloudpickle.register_pickle_by_value(module)
    try:
        assert not serialization._plain(Point(1.0))
        frames, _ = serialization.serialize(Point(1.0))
        assert [bytes(f) for f in frames] == _cloudpickle_frames(Point(1.0))
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert serialization._plain(Point(1.0))


def test_a_ref_inside_a_tuple_is_still_reported():
    ref = ObjectRef(b"q" * 20, "ipc:///owner")
    assert not serialization._plain((1.0, ref))
    frames, contained = serialization.serialize((1.0, ref))
    assert contained == [[b"q" * 20, "ipc:///owner"]]
    received: list = []
    value = serialization.deserialize(frames, received)
    assert value[1].id == b"q" * 20 and received and received[0][0] == b"q" * 20


def test_the_first_numpy_scalar_seen_is_plain_as_the_ones_after_it(monkeypatch):
    """numpy's types join the plain ones when the first numpy value comes by (a process that
    has not met numpy yet): that value is judged with them."""
    monkeypatch.setattr(serialization, "_numpy_array_type", None)
    monkeypatch.setattr(serialization, "_PLAIN_SCALARS", set(serialization._FAST_TYPES | {complex}))
    assert serialization._plain(np.float32(1.5))
    assert serialization._plain(np.zeros(3)) and not serialization._plain(np.array([None]))
