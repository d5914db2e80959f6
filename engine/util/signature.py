"""Argument checking at `.remote()`: bind a call's arguments against the callee's signature.

Owns the compact, msgpack-friendly form of a signature that travels with an actor's
description (to the head, and in pickled handles): a list of `[name, kind, has_default]`,
defaults replaced by a marker (they are never evaluated here). `check` raises TypeError
naming the function, as Ray does, so missing, extra or unknown-keyword arguments fail in the
caller instead of in a worker. Pure; thread-safe.
"""

from __future__ import annotations

import inspect

_DEFAULT = object()  # stands for a parameter's default value


def spec(fn, drop_first: bool = False) -> list | None:
    """The compact signature of `fn` (without its first parameter if `drop_first`), or None
    when it cannot be read (a builtin, say): then nothing is checked."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if drop_first:
        if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                                inspect.Parameter.POSITIONAL_OR_KEYWORD):
            return None  # `def f(*args)` takes self in *args: anything goes
        params = params[1:]
    return [[p.name, int(p.kind), p.default is not inspect.Parameter.empty] for p in params]


def from_spec(compact: list | None) -> inspect.Signature | None:
    if compact is None:
        return None
    return inspect.Signature([
        inspect.Parameter(name, inspect._ParameterKind(kind),
                          default=_DEFAULT if has_default else inspect.Parameter.empty)
        for name, kind, has_default in compact])


def method_spec(cls, name: str) -> list | None:
    """The compact signature of method `name` as called through an instance of `cls`."""
    raw = inspect.getattr_static(cls, name, None)
    if isinstance(raw, staticmethod):
        return spec(raw.__func__)
    if isinstance(raw, classmethod):
        return spec(raw.__func__, drop_first=True)
    return spec(getattr(cls, name), drop_first=True)


def check(signature: inspect.Signature | None, args: tuple, kwargs: dict, fn_name: str) -> None:
    """Raises TypeError naming `fn_name` if `args`/`kwargs` do not fit `signature`."""
    if signature is None:
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{fn_name}() {exc}") from None
