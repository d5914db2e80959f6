"""`engine.kv`: the head's key-value store, for application checkpoints (§5).

    engine.kv.put("video/42/checkpoint", blob)
    blob = engine.kv.get("video/42/checkpoint")

Owns the client side only: argument checks, one head request per call, and riding out a
head restart. Keys are `str` (stored utf-8 encoded) or `bytes`; values are `bytes`. The
head commits a put before it answers, so an acknowledged put survives a head crash.

Thread-safe: any thread of a driver or a task may call these (each call is one request).
Failures: `TypeError` naming the bad type; `RuntimeNotInitializedError` before `init`;
`NodeUnreachableError` naming the head's address when the head did not answer for
`RETRY_FOR` seconds (requests are re-sent meanwhile, so a head being restarted is waited
for). Re-sending makes every operation at-least-once; all are idempotent except
`put(..., overwrite=False)`, whose answer after a re-send is checked against the stored
value (if the stored value is ours, the put is reported as done).
"""

from __future__ import annotations

import builtins
import time

from . import errors
from .api import _core
from .rpc import protocol as P

RETRY_FOR = 10.0  # seconds to keep re-sending a request to an unreachable head
ATTEMPT_TIMEOUT = 2.0  # seconds to wait for one answer before re-sending


def put(key: str | bytes, value: bytes, overwrite: bool = True) -> bool:
    """Stores `value` under `key`. Returns False, changing nothing, if `key` exists and not `overwrite`."""
    key = _key(key)
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"kv.put value must be bytes, not {type(value).__name__}")
    value = bytes(value)
    stored, resent = _request("put", P.KV_PUT, key, value, bool(overwrite))
    if not stored and resent and not overwrite:
        return get(key) == value  # an earlier copy of this request may have stored it
    return bool(stored)


def get(key: str | bytes) -> bytes | None:
    """The value stored under `key`, or None."""
    return _request("get", P.KV_GET, _key(key))[0]


def delete(key: str | bytes) -> bool:
    """Removes `key`. Returns whether it existed."""
    return bool(_request("delete", P.KV_DELETE, _key(key))[0])


def list(prefix: str | bytes = "") -> builtins.list[bytes]:  # shadows the builtin on purpose (Ray's name)
    """The keys starting with `prefix`, sorted bytewise."""
    return builtins.list(_request("list", P.KV_LIST, _key(prefix))[0])


def _key(key) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"kv keys must be str or bytes, not {type(key).__name__}")


def _request(op: str, kind: int, *fields) -> tuple[object, bool]:
    """Sends one head request, re-sending while the head does not answer.

    Returns (result, whether the request was sent more than once)."""
    core = _core()
    deadline = time.monotonic() + RETRY_FOR
    attempts = 0
    while True:
        attempts += 1
        wait = max(0.05, min(ATTEMPT_TIMEOUT, deadline - time.monotonic()))
        try:
            return core.call(core.head_address, kind, *fields, timeout=wait), attempts > 1
        except errors.NodeUnreachableError:
            if time.monotonic() >= deadline:
                raise errors.NodeUnreachableError(
                    f"kv.{op}: the head at {core.head_address} did not answer for "
                    f"{RETRY_FOR:g}s") from None
