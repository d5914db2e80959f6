"""A task's arguments: plain values take the C pickler alone, anything else cloudpickle, and
the bytes and the refs reported are what cloudpickle gives in both cases."""

from __future__ import annotations

import pickle

import pytest
from ownrun.engine.errors import SerializationError
from ownrun.engine.object_ref import ObjectRef
from ownrun.engine.worker import serialization


@pytest.mark.parametrize("args, kwargs", [
    ([], {}),
    ([None, 1, -2.5, "text", b"bytes", True], {}),
    ([3], {"name": "x", "flag": False}),
])
def test_plain_arguments_pickle_to_the_bytes_cloudpickle_gives(args, kwargs):
    frames, nested = serialization.serialize_arguments(args, kwargs)
    assert (frames, nested) == serialization.serialize((args, kwargs))
    assert nested == [] and pickle.loads(frames[0]) == (args, kwargs)


def test_a_ref_inside_an_argument_is_still_reported_as_nested():
    ref = ObjectRef(b"r" * 20, "ipc:///owner")
    frames, nested = serialization.serialize_arguments([1, [ref]], {"k": "v"})
    assert nested == [[b"r" * 20, "ipc:///owner"]]
    args, kwargs = serialization.deserialize(frames, [])
    assert args[1][0].id == b"r" * 20 and kwargs == {"k": "v"}


def test_an_unpicklable_keyword_argument_still_raises_serialization_error():
    with pytest.raises(SerializationError):
        serialization.serialize_arguments([1], {"lock": __import__("threading").Lock()})
