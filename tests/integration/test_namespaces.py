"""Namespaces with Ray's names (issue 12): `init(namespace=)`, `.options(namespace=)`,
`get_actor(name, namespace=)`; a job's tasks and actors inherit its namespace."""

from __future__ import annotations

import pytest
from ownrun import engine


@pytest.fixture(scope="module")
def in_namespace():
    info = engine.init(num_cpus=2, namespace="team-a")
    try:
        yield info
    finally:
        engine.shutdown()


@engine.remote
class Box:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value

    def lookup(self, name: str):
        return engine.get(engine.get_actor(name).get.remote())

    def namespace(self):
        return engine.get_runtime_context().namespace


@engine.remote
def lookup_from_a_task(name: str, namespace: str | None = None):
    found = engine.get_actor(name, namespace=namespace)
    return engine.get(found.get.remote()), engine.get_runtime_context().namespace


def test_one_name_lives_in_two_namespaces_and_get_actor_looks_in_the_jobs(in_namespace):
    mine = Box.options(name="shared-name").remote("in team-a")
    theirs = Box.options(name="shared-name", namespace="team-b").remote("in team-b")
    assert engine.get(engine.get_actor("shared-name").get.remote()) == "in team-a"
    assert engine.get(engine.get_actor("shared-name", namespace="team-b").get.remote()) == "in team-b"
    with pytest.raises(ValueError, match="team-c"):
        engine.get_actor("shared-name", namespace="team-c")
    assert engine.util.list_named_actors() == ["shared-name"]
    assert {"name": "shared-name", "namespace": "team-b"} in engine.util.list_named_actors(True)
    del mine, theirs


def test_tasks_and_actors_inherit_the_jobs_namespace(in_namespace):
    box = Box.options(name="inherited").remote(7)
    assert engine.get(lookup_from_a_task.remote("inherited"), timeout=60) == (7, "team-a")
    other = Box.options(name="elsewhere", namespace="team-b").remote(8)
    assert engine.get(lookup_from_a_task.remote("elsewhere", "team-b"), timeout=60) == (8, "team-a")
    assert engine.get(box.namespace.remote()) == "team-a"
    assert engine.get(other.namespace.remote()) == "team-b"  # an actor lives in its own namespace
    peer = Box.options(name="peer", namespace="team-b").remote(9)
    assert engine.get(other.lookup.remote("peer"), timeout=60) == 9  # found in team-b, not team-a
    del peer
    assert engine.get_runtime_context().namespace == "team-a"
