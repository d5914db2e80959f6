"""Small Ray API gaps found by running Ray's own core tests through tools/ray_compat:
`ObjectRef[T]` in annotations, and `get_actor` of a missing or blank name."""

from __future__ import annotations

import typing

import pytest
from ownrun import engine


def test_object_ref_is_subscriptable_for_type_annotations():
    def f(ref: engine.ObjectRef[int]) -> engine.ObjectRef[str]:
        return ref

    hints = typing.get_type_hints(f)
    assert typing.get_origin(hints["ref"]) is engine.ObjectRef
    assert typing.get_args(hints["ref"]) == (int,)


@pytest.mark.parametrize("name", [None, "", "   ", 3])
def test_get_actor_of_a_missing_or_blank_name_raises_value_error(cluster, name):
    with pytest.raises(ValueError, match="non-empty string"):
        engine.get_actor(name)
    assert engine.get(engine.put(1)) == 1  # the head is unharmed (no malformed request sent)
