"""One-shot requests to a head from a process that is not (yet) part of its cluster.

Owns `OneShotClient`: a temporary transport that sends requests to one peer and waits for
the REPLYs, watching its connection to the peer (a zmq socket monitor) so that when no
answer comes it says why, within the timeout, instead of hanging: nothing listens there
(connection refused), the host is unreachable, the peer wants a cluster key we lack or
rejects ours, the peer is not an ownrun process, or it accepted the connection but never
answered. Used by `engine.init(address=...)`, `ownrun status/start/stop/kill-node`, the
state API from outside a cluster (`ownrun list/summary/memory/timeline`: one inbox for the
head and every peer it asks, `peer()`), and a daemon's start-up check of its head.

Addresses are reused: a client binds one of `SLOTS` fixed addresses (a unix socket name in
the cluster's socket directory, or the TCP port the slot used last), the one whose lock
file (`flock`) no live client holds. Each peer keeps one connection per address it replied
to, so repeated queries (200 `ownrun status` in a row) leave the head, the daemons and the
workers with at most `SLOTS` such connections, not one more per query. Request ids start
at a random number, so a late reply meant for an earlier client on the same address is
never taken for an answer. With every slot taken, a client binds a fresh address.

Not thread-safe: one thread uses a client, then closes it. Failures: `PeerError` (with
`reason` one of the constants below and a one-line message naming the address);
`RequestFailed` when the peer answered with an error.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import time

import zmq

from . import addresses
from . import auth as A
from .cluster_key import CurveKeys
from .protocol import REPLY
from .transport import AnyTransport, Transport, pack, unpack

REFUSED = "refused"
UNREACHABLE = "unreachable"
NO_ANSWER = "no answer"
KEY_REQUIRED, KEY_REJECTED, KEY_UNEXPECTED, NOT_OURS = (A.KEY_REQUIRED, A.KEY_REJECTED,
                                                        A.KEY_UNEXPECTED, A.NOT_OURS)
REFUSED_GRACE = 1.0  # seconds of refused connections before concluding that nothing listens
SLOTS = 8  # reusable client addresses per socket directory / bind host


class PeerError(Exception):
    """No answer from a peer; `reason` says what the connection to it saw."""

    def __init__(self, address: str, reason: str, message: str):
        super().__init__(message)
        self.address = address
        self.reason = reason


class RequestFailed(Exception):
    """The peer answered the request with an error."""


_MESSAGES = {
    REFUSED: "nothing is listening at {a} (connection refused): is the ownrun head running?",
    UNREACHABLE: "cannot connect to {a} within {t:g}s (host unreachable or filtered)",
    NO_ANSWER: "{a} accepted the connection but did not answer within {t:g}s: is it an ownrun head?",
    KEY_REQUIRED: "could not authenticate with the head at {a}: this cluster requires its cluster key "
                  "(pass cluster_key=... or set OWNRUN_CLUSTER_KEY)",
    KEY_REJECTED: "could not authenticate with the head at {a}: the cluster key given is not this "
                  "cluster's",
    KEY_UNEXPECTED: "the head at {a} uses no cluster key, but one was given "
                    "(drop cluster_key= / OWNRUN_CLUSTER_KEY)",
    NOT_OURS: "{a} does not speak ownrun's protocol: is it an ownrun head?",
}


class OneShotClient:
    """Requests to one peer over a temporary transport bound where the peer can reach it."""

    def __init__(self, address: str, curve: CurveKeys | None, bind_host: str | None = None,
                 _shared: OneShotClient | None = None):
        self.curve = curve
        if addresses.is_ipc(address):  # a unix socket: bind ours in the same private directory
            self.address = address
            bind_host = bind_host or address[:address.rfind("/")]
        else:
            host, port = addresses.parse(address)
            self.address = addresses.tcp(host, port)
        if _shared is not None:  # another peer, asked through the same inbox (`peer`)
            self.transport, self._ids, self._slot, self._owner = _shared.transport, _shared._ids, None, False
        else:
            if bind_host is None:
                bind_host = addresses.source_ip_toward(host)
                if bind_host is None:
                    raise PeerError(self.address, UNREACHABLE,
                                    f"cannot connect to {addresses.plain(self.address)}: no route to {host}")
            self.transport, self._slot = _bind(bind_host, curve)
            self._ids = itertools.count(int.from_bytes(os.urandom(4), "little") + 1)
            self._owner = True
        self._monitor = self.transport.monitor_peer(self.address)
        self._connected = self._handshake_ok = False
        self._first_refusal: float | None = None
        self._failures: list[tuple[int, int, float]] = []  # failed handshakes: event, value, when

    def call(self, kind: int, *fields, timeout: float = 5.0):
        """Sends `[kind, req_id, our_address, *fields]`; returns the REPLY's result."""
        req_id = next(self._ids)
        self.transport.send(self.address, [pack([kind, req_id, self.transport.address, *fields])])
        deadline = time.monotonic() + timeout
        while True:
            messages, _ = self.transport.poll(50)
            for frames in messages:
                header = unpack(frames[0])
                if header[0] == REPLY and header[1] == req_id:
                    if not header[2]:
                        raise RequestFailed(_error_text(header[3]))
                    return header[3]
            self._read_monitor()
            reason = self._verdict(time.monotonic() >= deadline)
            if reason is not None:
                raise PeerError(self.address, reason,
                                _MESSAGES[reason].format(a=addresses.plain(self.address), t=timeout))

    def _read_monitor(self) -> None:
        for kind, value in self._monitor.events():
            if kind == zmq.EVENT_CONNECTED:
                self._connected = True
            elif kind == zmq.EVENT_CONNECT_RETRIED and not self._connected:
                self._first_refusal = self._first_refusal or time.monotonic()
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_ok = True
            elif kind & A.HANDSHAKE_FAILED:
                self._failures.append((kind, value, time.monotonic()))

    def _verdict(self, timed_out: bool) -> str | None:
        """Why the request cannot succeed, or None to keep waiting."""
        if self._failures and not self._handshake_ok:
            # A peer that closes during the handshake is reported without detail; the
            # retries (every 100 ms) usually say why. Decide on the first detailed failure.
            detailed = [f for f in self._failures if f[0] != zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL]
            if detailed or timed_out or time.monotonic() - self._failures[0][2] >= REFUSED_GRACE:
                kind, value, _ = (detailed or self._failures)[0]
                return A.describe_client_failure(kind, value, have_key=self.curve is not None)
        if self._first_refusal is not None and not self._connected and \
                time.monotonic() - self._first_refusal >= REFUSED_GRACE:
            return REFUSED
        if not timed_out:
            return None
        if self._handshake_ok:
            return NO_ANSWER
        return NOT_OURS if self._connected else UNREACHABLE

    def peer(self, address: str) -> OneShotClient:
        """A client for another peer that shares this one's inbox (closed with this one)."""
        return OneShotClient(address, self.curve, _shared=self)

    def close(self) -> None:
        if not self._owner:
            self.transport.disconnect(self.address)
            return
        self.transport.close()
        if self._slot is not None:
            os.close(self._slot)  # releases the slot's lock
            self._slot = None

    def __enter__(self) -> OneShotClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _bind(bind_host: str, curve: CurveKeys | None) -> tuple[AnyTransport, int | None]:
    """A transport bound at a free slot's address (see the module docstring), with the slot's
    locked file descriptor; or at a fresh address (and None) when every slot is taken."""
    if addresses.is_ipc(bind_host):
        directory, prefix = bind_host[len(addresses.IPC):], "oneshot-"
    else:
        from ..cluster.paths import session_root  # the user's private directory

        directory, prefix = session_root(), f"oneshot-{bind_host.strip('[]').replace(':', '_')}-"
    for n in range(SLOTS):
        try:
            fd = os.open(os.path.join(directory, f"{prefix}{n}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            break  # no such directory, or not ours: no slots
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live client holds it
        try:
            if addresses.is_ipc(bind_host):
                return Transport(bind_host, port=f"{prefix}{n}", curve=curve), fd
            return _bind_tcp_slot(bind_host, curve, fd), fd
        except BaseException:
            os.close(fd)
            raise
    return Transport(bind_host, curve=curve), None


def _bind_tcp_slot(bind_host: str, curve: CurveKeys | None, fd: int) -> AnyTransport:
    """Binds the port this slot used last (kept in its lock file), else a new one (recorded)."""
    recorded = os.pread(fd, 16, 0).decode(errors="replace").strip()
    if recorded.isdigit():
        try:
            return Transport(bind_host, port=int(recorded), curve=curve)
        except OSError:
            pass  # taken by something else since: take a new port
    transport = Transport(bind_host, curve=curve)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(addresses.parse(transport.address)[1]).encode(), 0)
    return transport


def _error_text(result) -> str:
    if isinstance(result, (list, tuple)) and len(result) == 2:
        return f"{result[0]}: {result[1]}"
    return str(result)


def request(address: str, kind: int, *fields, curve: CurveKeys | None = None, timeout: float = 5.0):
    """One request, one answer (see `OneShotClient.call`)."""
    with OneShotClient(address, curve) as client:
        return client.call(kind, *fields, timeout=timeout)
