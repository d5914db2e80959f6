"""The executor's argument decoding, in-process (no sockets): small pickles packed into the
push's last frame land in their places among unpacked values; a push whose packed lengths or
frames do not match its metadata fails the task with an explained error."""

from __future__ import annotations

import pickle

import pytest
from ownrun.engine import errors
from ownrun.engine.ownership.task_manager import NORMAL
from ownrun.engine.rpc import protocol as P
from ownrun.engine.worker import executor as executor_module
from ownrun.engine.worker import serialization
from test_executor_actor_creation import CALLER, RecordingCore


def _decode(positions: list, dep_meta: list, frames: list):
    """The arguments a push decodes to: the refs at `positions` (ints: positional, strings:
    keywords) have values `dep_meta` and `frames` describe."""
    placeholders = [None] * sum(1 for p in positions if type(p) is int)
    arg_frames, _ = serialization.serialize_arguments(placeholders, {p: None for p in positions if type(p) is str})
    h = [P.PUSH_TASK, CALLER, b"t" * 20, "f", NORMAL, "fn", None, 1, len(arg_frames), positions, dep_meta,
         None, None]
    return executor_module.Executor(RecordingCore())._arguments(h, [b"header", *arg_frames, *frames], [])


def test_packed_values_land_in_their_places_among_unpacked_ones():
    small = [pickle.dumps(v, 5) for v in (1, "two", (3.0, 4))]
    big = serialization.serialize(b"x" * 10_000)[0]
    meta = [len(small[0]), [P.VALUE_INLINE, len(big), None, b"o" * 20], len(small[1]), len(small[2])]
    args, kwargs = _decode([1, 0, "k", 2], meta, [*big, b"".join(small)])
    assert args == [b"x" * 10_000, 1, (3.0, 4)] and kwargs == {"k": "two"}


def test_packed_lengths_beyond_the_last_frame_fail_the_task():
    one = pickle.dumps(1, 5)
    with pytest.raises(errors.EngineError, match="shorter than their metadata"):
        _decode([0, 1], [len(one), 100], [one])


def test_frames_not_matching_the_metadata_fail_the_task():
    one = pickle.dumps(1, 5)
    with pytest.raises(errors.EngineError, match="do not match their metadata"):
        _decode([0], [len(one)], [one + one])  # bytes left over in the packed frame
    with pytest.raises(errors.EngineError, match="do not match their metadata"):
        _decode([0], [len(one)], [b"stray frame", one])


def test_a_push_of_refs_only_has_no_pickled_arguments():
    """`f.remote(*refs)` pickles nothing: the executor makes the positional slots itself."""
    small = [pickle.dumps(v, 5) for v in ("a", "b")]
    ex = executor_module.Executor(RecordingCore())
    h = [P.PUSH_TASK, CALLER, b"t" * 20, "f", NORMAL, "fn", None, 1, 0, [0, 1], [len(s) for s in small],
         None, None]
    assert ex._arguments(h, [b"header", b"".join(small)], []) == (["a", "b"], {})
