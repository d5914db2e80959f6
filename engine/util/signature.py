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


class CallCheck:
    """A signature to bind calls against, with the answer for the common call precomputed:
    positional arguments only, whose count alone decides (`Signature.bind` costs microseconds
    on every `.remote()`; a count comparison costs nothing)."""

    __slots__ = ("signature", "fewest", "most")

    def __init__(self, signature: inspect.Signature):
        self.signature = signature
        self.fewest, self.most = _positional_counts(signature)

    def bind(self, args: tuple, kwargs: dict) -> None:
        if not kwargs and self.fewest is not None and self.fewest <= len(args) and \
                (self.most is None or len(args) <= self.most):
            return
        self.signature.bind(*args, **kwargs)


def _positional_counts(signature: inspect.Signature) -> tuple[int | None, int | None]:
    """(fewest, most) positional arguments a call without keywords may pass (most None: any
    number); fewest None when such a call can never bind (a keyword-only parameter without a
    default), so the full bind decides."""
    fewest, most = 0, 0
    for p in signature.parameters.values():
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            most = None if most is None else most + 1
            if p.default is inspect.Parameter.empty:
                fewest += 1
        elif p.kind == inspect.Parameter.VAR_POSITIONAL:
            most = None
        elif p.kind == inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty:
            return None, None
    return fewest, most


def from_spec(compact: list | None) -> CallCheck | None:
    if compact is None:
        return None
    return CallCheck(inspect.Signature([
        inspect.Parameter(name, inspect._ParameterKind(kind),
                          default=_DEFAULT if has_default else inspect.Parameter.empty)
        for name, kind, has_default in compact]))


def method_spec(cls, name: str) -> list | None:
    """The compact signature of method `name` as called through an instance of `cls`."""
    raw = inspect.getattr_static(cls, name, None)
    if isinstance(raw, staticmethod):
        return spec(raw.__func__)
    if isinstance(raw, classmethod):
        return spec(raw.__func__, drop_first=True)
    return spec(getattr(cls, name), drop_first=True)


def check(signature: CallCheck | None, args: tuple, kwargs: dict, fn_name: str) -> None:
    """Raises TypeError naming `fn_name` if `args`/`kwargs` do not fit `signature`."""
    if signature is None or (not kwargs and signature.fewest is not None and signature.fewest <= len(args)
                             and (signature.most is None or len(args) <= signature.most)):
        return  # the common call, decided by the count of positional arguments (see CallCheck)
    try:
        signature.bind(args, kwargs)
    except TypeError as exc:
        raise TypeError(f"{fn_name}() {exc}") from None
