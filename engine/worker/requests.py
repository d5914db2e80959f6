"""Request/reply from a core worker to node daemons and the head (not the task path).

Owns the table of outstanding requests: `call` sends `[kind, call_id, my_address, *fields]`
and blocks until the matching `REPLY` (or a timeout) — or in two halves, `prepare` (whose
frames the caller sends) and `wait`; `call_async` runs a callback on the I/O thread instead.
Thread-safe: `itertools.count` and dict item operations are atomic; `on_reply` runs on the
I/O thread. Fails with `NodeUnreachableError` on timeout, or the
remote side's error type when it answers not-ok; once a peer is known dead
(`peer_died`), its pending calls and every later one fail at once with the given error.
"""

from __future__ import annotations

import itertools
import threading

from .. import errors
from ..rpc.transport import pack


class _Call:
    __slots__ = ("event", "ok", "result", "callback", "address", "kind", "call_id")

    def __init__(self, callback=None, address=None, kind=None, call_id=None):
        self.event = None if callback else threading.Event()
        self.callback = callback
        self.address = address
        self.kind, self.call_id = kind, call_id
        self.ok = None
        self.result = None


class Requests:
    def __init__(self, transport, address: str, default_timeout: float):
        self._transport = transport
        self._address = address
        self._default_timeout = default_timeout
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count(1)
        self._dead: dict[str, list] = {}  # peer address -> the error its calls fail with

    def call(self, address: str, kind: int, *fields, timeout: float | None = None):
        """Sends a request and waits for its REPLY. Not for the I/O thread."""
        slot, frames = self.prepare(address, kind, *fields)
        self._transport.send(address, frames)
        return self.wait(slot, timeout)

    def prepare(self, address: str, kind: int, *fields) -> tuple[_Call, list]:
        """The first half of a `call`: registers the request and returns it with its frames,
        which the caller sends (with other messages to that peer: `Transport.send_many`)."""
        if address in self._dead:
            raise remote_error(self._dead[address])
        call_id = next(self._ids)
        slot = _Call(address=address, kind=kind, call_id=call_id)
        self._calls[call_id] = slot
        if address in self._dead and self._calls.pop(call_id, None) is not None:
            raise remote_error(self._dead[address])  # it died while we registered the call
        return slot, [pack([kind, call_id, self._address, *fields])]

    def wait(self, slot: _Call, timeout: float | None = None):
        """The second half of a `call`: waits for the REPLY to a request `prepare` made (and
        the caller sent). Not for the I/O thread."""
        limit = self._default_timeout if timeout is None else timeout
        if not slot.event.wait(limit):
            self._calls.pop(slot.call_id, None)
            raise errors.NodeUnreachableError(f"no answer from {slot.address} to request type "
                                              f"{slot.kind} within {limit:.0f}s")
        if not slot.ok:
            raise remote_error(slot.result)
        return slot.result

    def call_async(self, address: str, kind: int, *fields, callback) -> None:
        """Sends a request; `callback(ok, result)` runs on the I/O thread (with the core
        worker's lock held). A peer known dead raises its error here, as `call` does."""
        if address in self._dead:
            raise remote_error(self._dead[address])
        call_id = next(self._ids)
        self._calls[call_id] = _Call(callback, address)
        self._transport.send(address, [pack([kind, call_id, self._address, *fields])])

    def peer_died(self, address: str, error: list) -> None:
        """`address` will never answer: its pending calls fail now with `error` ([type name,
        message]), later ones at once. I/O thread."""
        self._dead[address] = error
        for call_id, slot in list(self._calls.items()):
            if slot.address == address and self._calls.pop(call_id, None) is not None:
                self._finish(slot, False, error)

    def fail_pending(self, error: list) -> None:
        """Every pending call fails now with `error` (shutdown; our node died). Later calls
        are sent as usual."""
        for call_id in list(self._calls):
            slot = self._calls.pop(call_id, None)
            if slot is not None:
                self._finish(slot, False, error)

    def _finish(self, slot: _Call, ok: bool, result) -> None:
        slot.ok, slot.result = ok, result
        if slot.callback is not None:
            slot.callback(ok, result)
        else:
            slot.event.set()

    def on_reply(self, h, frames) -> None:
        _, call_id, ok, result = h
        slot = self._calls.pop(call_id, None)
        if slot is None:
            return
        self._finish(slot, ok, result)


def remote_error(result) -> Exception:
    if isinstance(result, list) and len(result) == 2:
        name, message = result
        cls = getattr(errors, name, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            return cls(message)
        return errors.EngineError(f"{name}: {message}")
    return errors.EngineError(str(result))
