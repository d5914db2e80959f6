"""Classes of an importable module (not a test module, which conftest ships by value), for
test_serialization_plain: their instances pickle by reference to the class."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Point:  # a dataclass holding plain data
    x: object
    tags: tuple = ()


class Empty:  # a class with no attributes
    def __eq__(self, other) -> bool:
        return type(other) is Empty

    __hash__ = object.__hash__


class Reduces:  # its own reduce: cloudpickle calls it
    def __reduce__(self):
        return (Reduces, ())


class Items(dict):  # a dict subclass pickles its items too, which the check does not look at
    pass
