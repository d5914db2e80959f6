"""The shape of every message header, and the check each service runs before a handler.

Owns `SHAPES` (per message type: the msgpack type of each field, fixed and optional ones)
and `Inbox`, the validation step every dispatch point runs (head loop, daemon loop, core
worker I/O loop — which also serves the executor's handlers): `Inbox.header(frames)`
returns the decoded header, or None for a malformed message (undecodable, not a list, an
unknown type, the wrong number of fields or a field of the wrong type), which is then
dropped, counted in `malformed` (shown in each service's stats beside `handler_errors`) and
logged at most once per type per `LOG_INTERVAL` seconds. A malformed message is never fatal.
A well-formed message its sender had no right to send (notices.py) is dropped the same way by
its handler (`refuse`), counted in `unauthorized` under its own log mark.

Checks are type and count checks (what a handler needs in order not to raise before
it reaches its own error handling), plus, for the few messages whose handlers walk a nested
payload without their own error handling (`NESTED`: WARM_MODULES' module names, VALUE_REPLY's
value metadata and the refs it contains), a check of that payload's shape; values (is this worker ours, is this address the
daemon's) are checked by the handlers of the control messages that stop things
(EXIT_WORKER, SHUTDOWN_NODE, KILL_WORKER). Each type's check is one generated boolean
expression (a length test and one `isinstance` per field). The two task-path messages
(PUSH_TASK, TASK_REPLY) get a leaner check (`HOT`: the length and the fields used before
their handlers' own error handling); their other fields are the handlers' to refuse.

Pure apart from logging; `Inbox` is used by one thread (its service's I/O thread).
"""

from __future__ import annotations

import logging
import time

from ..util.handler_errors import MALFORMED_MARK, UNAUTHORIZED_MARK
from . import notices
from . import protocol as P
from .transport import unpack

# Field types (msgpack decodes to these). A tuple means any of them.
INT = int  # bool is an int too; a flag that arrives as 0/1 works the same
NUM = (int, float)
BYTES = bytes
STR = str
LIST = list
DICT = dict
BOOL = (bool, int)
ANY = object
NONE = type(None)


class _Addr:
    """A peer address: tcp://HOST:PORT or ipc://PATH (what `transport.validate_address` accepts)."""


ADDR = _Addr


def is_address(value) -> bool:
    if type(value) is not str:
        return False
    if value.startswith("tcp://"):
        host, _, port = value[6:].rpartition(":")
        return bool(host) and port.isdigit()
    return value.startswith("ipc://")


def _opt_address(value) -> bool:
    return value is None or is_address(value)


KEY = (str, bytes)


_OPT_ADDR = (_Addr, NONE)


def opt(t) -> tuple:
    """`t` or None."""
    if t is ADDR:
        return _OPT_ADDR
    return (*t, NONE) if isinstance(t, tuple) else (t, NONE)


def _request(*fields) -> tuple:
    """A request: [kind, req_id, reply_addr, *fields]."""
    return (INT, ADDR, *fields)


# kind -> (fixed field types, optional trailing field types). Fields after the type.
SHAPES: dict[int, tuple[tuple, tuple]] = {
    P.REPLY: ((INT, BOOL, ANY), ()),
    # ---- the task path
    P.PUSH_TASK: ((ADDR, BYTES, STR, INT, STR, opt(BYTES), INT, INT, opt(LIST), opt(LIST), opt(BYTES),
                   opt(DICT)), ()),
    P.TASK_REPLY: ((ADDR, BYTES, LIST, opt(LIST), BYTES, opt(NUM)), ()),
    P.GENERATOR_ITEM: ((ADDR, BYTES, INT, LIST), ()),
    P.GET_VALUE: ((ADDR, BYTES), ()),
    P.VALUE_REPLY: ((BYTES, LIST, ADDR), ()),
    P.VALUE_PENDING: ((BYTES,), ()),
    P.REF_REMOVED: ((ADDR, LIST), ()),
    P.CANCEL_TASK: ((BYTES, BOOL), (BOOL,)),
    P.CANCEL_REQUEST: ((BYTES, BOOL, BOOL), ()),
    P.OBJ_COPIED: ((BYTES, ADDR, STR), ()),
    P.STATE_QUERY: (_request(LIST), ()),
    # ---- core worker -> node daemon
    P.REGISTER_CLIENT: (_request(BYTES, INT, STR), (opt(BYTES),)),  # + the client's notice token
    P.WORKER_READY: ((BYTES, ADDR, INT), (opt(BYTES),)),  # + the worker's notice token
    P.LEASE_REQUEST: ((ADDR, BYTES, INT, DICT, BOOL, INT), (DICT,)),
    P.LEASE_RETURN: ((BYTES, BOOL), ()),
    P.LEASE_CANCEL: ((ADDR, INT), ()),
    P.WORKER_BLOCKED: ((BYTES,), ()),
    P.WORKER_UNBLOCKED: ((BYTES,), ()),
    P.OBJ_CREATE: (_request(BYTES, INT, ADDR, BYTES), (BOOL,)),
    P.OBJ_SEAL: ((BYTES, BYTES, BOOL), ()),
    P.OBJ_ABORT: ((BYTES, BYTES), ()),
    P.OBJ_GET: (_request(BYTES, BYTES, opt(ADDR)), ()),
    P.OBJ_RELEASE: ((BYTES, LIST), ()),
    P.OBJ_FREE: ((LIST,), ()),
    P.KILL_WORKER: ((BYTES, STR, ADDR), ()),
    P.LOG_LINES: ((STR, STR), ()),
    P.NODE_STATS: (_request(), (LIST,)),
    P.SHUTDOWN_NODE: ((STR,), ()),
    P.WARM_MODULES: ((LIST,), ()),
    P.OBJ_PIN: ((BYTES, ADDR), ()),
    P.UNREGISTER_CLIENT: (_request(), ()),
    P.REAP_ANSWER: ((BYTES, BOOL), ()),
    # ---- node daemon <-> node daemon
    P.OBJ_PULL: ((ADDR, BYTES, INT, INT), ()),
    P.OBJ_CHUNK: ((BYTES, INT, INT), ()),
    # ---- node daemon / head -> core worker
    P.LEASE_GRANTED: ((INT, opt(BYTES), opt(STR), STR, ADDR, opt(ADDR)), ()),
    P.WORKER_DIED: ((BYTES, ADDR, STR), ()),
    P.RECALL_LEASES: ((), ()),
    P.EXIT_WORKER: ((ADDR,), ()),
    P.REAP_QUERY: ((), ()),
    P.ACTOR_STATE: ((BYTES, DICT), (opt(BYTES),)),  # notices end with the receiver's token (notices.py)
    P.NODE_DIED: ((STR, ADDR, LIST, STR), (opt(BYTES),)),
    # ---- anyone -> head
    P.REGISTER_NODE: (_request(STR, DICT), ()),
    P.ACTOR_REGISTER: (_request(BYTES, opt(STR), DICT), ()),
    P.ACTOR_UPDATE: ((BYTES, STR, opt(ADDR), opt(STR), opt(BYTES)), (opt(BYTES),)),  # + the actor's key
    P.ACTOR_LOOKUP: (_request(KEY), (opt(BYTES), opt(STR), opt(BYTES))),  # + the asker's notice token
    P.KV_PUT: (_request(KEY, KEY, BOOL), ()),
    P.KV_GET: (_request(KEY), ()),
    P.KV_DELETE: (_request(KEY), ()),
    P.KV_LIST: (_request(KEY), ()),
    P.HEAD_STATS: (_request(), ()),
    P.ACTOR_NAMES: (_request(), ()),
    P.HEARTBEAT: ((STR, ADDR, DICT, DICT, DICT), (opt(BYTES),)),  # + the daemon's notice token
    P.NODE_CLIENTS: ((STR, LIST, LIST), (DICT, opt(BYTES))),  # + {added address: its token}, the node's token
    P.TASK_META_SUBMIT: (_request(BYTES, BYTES, LIST), ()),
    P.TASK_META_DONE: ((BYTES, LIST), ()),
    P.NODE_LIST: (_request(), ()),
    P.PG_CREATE: (_request(BYTES, LIST, STR, STR, STR, BOOL), ()),
    P.PG_REMOVE: (_request(BYTES), ()),
    P.PG_TABLE: (_request(opt(KEY), STR), ()),
    P.WORKER_DIED_REMOTE: ((STR, BYTES, ADDR, STR), (opt(BYTES),)),  # + the node's notice token
    P.CLUSTER_VIEW: ((DICT,), (opt(BYTES),)),
    P.NODE_FENCED: ((STR, STR), (opt(BYTES),)),
}


# Value ranges checked beside the types (a count that sizes a list must be sane).
RANGES = {
    P.PUSH_TASK: "0 <= h[7] <= 65536 and 0 <= h[8] <= 1000000",
    P.OBJ_CREATE: "h[4] >= 0",
    P.GENERATOR_ITEM: "1 <= h[3] < 2**32",
    P.OBJ_PULL: "h[3] >= 0 and h[4] >= 0",
}


# The task path: a length test and the few fields its handlers use outside their own error
# handling (the executor replies with an error for anything else wrong in a PUSH_TASK).
HOT = {
    P.PUSH_TASK: ("len(h) == 13 and type(h[1]) is str and type(h[2]) is bytes and type(h[7]) is int "
                  "and type(h[8]) is int and 0 <= h[7] <= 65536 and 0 <= h[8] <= 1000000"),
    P.TASK_REPLY: "len(h) == 7 and type(h[2]) is bytes and type(h[3]) is list",
}


# Nested payloads: kind -> check(header, frames). Run after the type check, on the few
# messages whose handlers walk nested content outside their own error handling.
MAX_MODULES = 500  # names in one WARM_MODULES (the worker sends at most this many)


def _warm_modules_ok(h, frames) -> bool:
    names = h[1]
    return len(names) <= MAX_MODULES and all(type(n) is str and 0 < len(n) <= 200 for n in names)


def _contains_ok(contains) -> bool:
    """None, or [[oid bytes, owner address], ...] (the refs a value holds)."""
    if contains is None:
        return True
    if type(contains) is not list:
        return False
    for item in contains:
        if type(item) is not list or len(item) != 2 or type(item[0]) is not bytes or not is_address(item[1]):
            return False
    return True


def value_meta_ok(meta, payload_frames: int) -> bool:
    """A value's wire metadata (`memory_store.Value.to_meta`) whose inline frames are there."""
    if not meta or type(meta[0]) is not int:
        return False
    kind = meta[0]
    if kind == P.VALUE_SHM:
        return (len(meta) == 5 and type(meta[1]) in (str, type(None)) and type(meta[2]) is int and meta[2] >= 0
                and _contains_ok(meta[3]) and is_address(meta[4]))
    if kind in (P.VALUE_INLINE, P.VALUE_ERROR):
        return (len(meta) == 3 and type(meta[1]) is int and 0 <= meta[1] <= payload_frames
                and _contains_ok(meta[2]))
    return False


def _value_reply_ok(h, frames) -> bool:
    return value_meta_ok(h[2], len(frames) - 1)


NESTED = {
    P.WARM_MODULES: _warm_modules_ok,
    P.VALUE_REPLY: _value_reply_ok,
}


def _field_ok(t, value) -> bool:
    if t is ADDR:
        return is_address(value)
    if t is _OPT_ADDR:
        return _opt_address(value)
    return isinstance(value, t)


def _compile(kind: int, fixed: tuple, optional: tuple):
    """One boolean expression for `kind`: a length test and an isinstance per typed field."""
    lo, hi = 1 + len(fixed), 1 + len(fixed) + len(optional)
    names: dict = {"is_address": is_address, "opt_address": _opt_address}
    terms = [f"len(h) == {lo}" if lo == hi else f"{lo} <= len(h) <= {hi}"]
    for i, t in enumerate(fixed + optional, start=1):
        if t is ANY:
            continue
        if t is ADDR:
            term = f"is_address(h[{i}])"
        elif t is _OPT_ADDR:
            term = f"opt_address(h[{i}])"
        else:
            name = f"t{i}"
            names[name] = t
            term = f"isinstance(h[{i}], {name})"
        terms.append(term if i < lo else f"(len(h) <= {i} or {term})")
    if kind in RANGES:
        terms.append(f"({RANGES[kind]})")
    if kind in HOT:
        terms = [HOT[kind]]
    source = (f"def check_{kind}(h):\n    try:\n        return {' and '.join(terms)}\n"
              f"    except Exception:\n        return False\n")  # a check never raises
    scope = dict(names)
    exec(source, scope)  # noqa: S102 - generated from the table above, no outside input
    return scope[f"check_{kind}"]


CHECKS = {kind: _compile(kind, fixed, optional) for kind, (fixed, optional) in SHAPES.items()}


def check(header) -> bool:
    """True when `header` (a decoded header) has its type's shape."""
    if type(header) is not list or not header or type(header[0]) is not int:
        return False
    fn = CHECKS.get(header[0])
    return fn is not None and fn(header)


def nested_ok(header, frames) -> bool:
    """True when the nested payload of `header` (already `check`ed) has its shape."""
    fn = NESTED.get(header[0])
    try:
        return fn is None or bool(fn(header, frames))
    except Exception:  # noqa: BLE001 - a check never raises
        return False


def why(header) -> str:
    """What is wrong with a header `check` refused (for the log line)."""
    if type(header) is not list or not header:
        return f"not a non-empty list: {type(header).__name__}"
    kind = header[0]
    if type(kind) is not int or kind not in SHAPES:
        return f"unknown message type {kind!r:.40}"
    fixed, optional = SHAPES[kind]
    lo, hi = 1 + len(fixed), 1 + len(fixed) + len(optional)
    if not lo <= len(header) <= hi:
        return f"{len(header)} fields, expected {lo}" + (f"..{hi}" if hi > lo else "")
    for i, t in enumerate(fixed + optional, start=1):
        if i < len(header) and t is not ANY and not _field_ok(t, header[i]):
            return f"field {i} is a {type(header[i]).__name__}" + (" (not an address)" if t in (ADDR, _OPT_ADDR) else "")
    return "a value out of range" if kind in RANGES else "refused"


LOG_INTERVAL = 10.0  # seconds between log lines about malformed messages of one type


class Inbox:
    """Decodes and checks each incoming message of one service; counts and logs the rest."""

    def __init__(self, log: logging.Logger, service: str, accepted=None):
        self.log = log
        self.service = service
        self.accepted = CHECKS if accepted is None else accepted  # the types this service handles
        self.malformed = 0
        self.unauthorized = 0  # well-formed notices whose sender could not prove its right (refuse)
        self.unauthorized_by_kind: dict = {}
        self.by_kind: dict = {}  # message type (or "undecodable") -> malformed count
        self.last_dropped: tuple = (None, "")  # (header or None, reason) of the last drop
        self._logged: dict = {}  # message type -> (last log time, count at that time)

    def header(self, frames: list) -> list | None:
        """The checked header of `frames`, or None (dropped, counted, logged) if malformed."""
        try:
            header = unpack(frames[0])
            kind = header[0]
            if type(kind) is int and type(header) is list and kind in self.accepted and CHECKS[kind](header):
                if kind not in NESTED or nested_ok(header, frames):
                    return header
                self.last_dropped = (header, "malformed nested content")
                self.drop(kind, "malformed nested content")
                return None
        except Exception:  # noqa: BLE001 - junk bytes, an empty or unhashable first field
            try:
                header = unpack(frames[0])
            except Exception:  # noqa: BLE001
                self.last_dropped = (None, "not msgpack")
                self.drop("undecodable", "not msgpack")
                return None
        try:
            reason = "not handled here" if check(header) else why(header)
        except Exception as exc:  # noqa: BLE001 - never fatal
            reason = f"unexplained ({type(exc).__name__})"
        self.last_dropped = (header, reason)
        self.drop(header[0] if type(header) is list and header and type(header[0]) is int else "other", reason)
        return None

    def reply_address(self, requests) -> tuple | None:
        """(req_id, reply address, reason) of the last dropped message if it was one of
        `requests` ([kind, req_id, addr, ...]) with a usable id and address: its sender can be
        answered with an error instead of waiting for its timeout."""
        header, reason = self.last_dropped
        if (type(header) is list and len(header) >= 3 and type(header[0]) is int and header[0] in requests
                and type(header[1]) is int and is_address(header[2])):
            return header[1], header[2], reason
        return None

    def proven(self, header: list, at: int, expected: bytes | None, reason: str) -> bool:
        """True when field `at` of `header` (absent: none) is the secret `expected`
        (notices.genuine); else the message is refused (`refuse`, with `reason`)."""
        if notices.genuine(header[at] if len(header) > at else None, expected):
            return True
        self.refuse(header[0], reason)
        return False

    def refuse(self, kind: int, reason: str) -> None:
        """Drops a well-formed message its sender had no right to send (a notice without the
        receiver's token, an actor report without the actor's key: notices.py); counted in
        `unauthorized`, logged at most once per type per `LOG_INTERVAL` seconds. Never fatal."""
        self.unauthorized += 1
        count = self.unauthorized_by_kind[kind] = self.unauthorized_by_kind.get(kind, 0) + 1
        self._warn(("unauthorized", kind), count, f"{UNAUTHORIZED_MARK} {self.service} ignored a message of "
                                                  f"type {kind}: {reason}")

    def drop(self, kind, reason: str) -> None:
        self.malformed += 1
        count = self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        self._warn(kind, count, f"{MALFORMED_MARK} {self.service} dropped a malformed message of type {kind}: "
                                f"{reason}")

    def _warn(self, key, count: int, line: str) -> None:
        """Logs `line` unless a line of `key` went out less than `LOG_INTERVAL` s ago; the next
        line says how many of that kind came in between (`count`: how many so far)."""
        now = time.monotonic()
        last = self._logged.get(key)
        if last is None or now - last[0] >= LOG_INTERVAL:
            since = count - (last[1] if last else 0) - 1
            more = f" ({since} more of this type since the last line)" if since > 0 else ""
            self.log.warning("%s%s", line, more)
            self._logged[key] = (now, count)
