"""One-shot requests to a head from a process that is not (yet) part of its cluster.

Owns `OneShotClient`: a temporary transport that sends requests to one peer and waits for
the REPLYs, watching its connection to the peer (a zmq socket monitor) so that when no
answer comes it says why, within the timeout, instead of hanging: nothing listens there
(connection refused), the host is unreachable, the peer wants a cluster key we lack or
rejects ours, the peer is not an ownrun process, or it accepted the connection but never
answered. Used by `engine.init(address=...)`, `ownrun status/start/stop/kill-node`, and a
daemon's start-up check of its head.

Not thread-safe: one thread uses a client, then closes it. Failures: `PeerError` (with
`reason` one of the constants below and a one-line message naming the address);
`RequestFailed` when the peer answered with an error.
"""

from __future__ import annotations

import itertools
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import addresses
from . import auth as A
from .cluster_key import CurveKeys
from .protocol import REPLY
from .transport import Transport, pack, unpack

REFUSED = "refused"
UNREACHABLE = "unreachable"
NO_ANSWER = "no answer"
KEY_REQUIRED, KEY_REJECTED, KEY_UNEXPECTED, NOT_OURS = (A.KEY_REQUIRED, A.KEY_REJECTED,
                                                        A.KEY_UNEXPECTED, A.NOT_OURS)
REFUSED_GRACE = 1.0  # seconds of refused connections before concluding that nothing listens


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

    def __init__(self, address: str, curve: CurveKeys | None, bind_host: str | None = None):
        self.curve = curve
        if addresses.is_ipc(address):  # a unix socket: bind ours in the same private directory
            self.address = address
            bind_host = bind_host or address[:address.rfind("/")]
        else:
            host, port = addresses.parse(address)
            self.address = addresses.tcp(host, port)
        if bind_host is None:
            bind_host = addresses.source_ip_toward(host)
            if bind_host is None:
                raise PeerError(self.address, UNREACHABLE,
                                f"cannot connect to {addresses.plain(self.address)}: no route to {host}")
        self.transport = Transport(bind_host, curve=curve)
        self._ids = itertools.count(1)
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
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            kind = event["event"]
            if kind == zmq.EVENT_CONNECTED:
                self._connected = True
            elif kind == zmq.EVENT_CONNECT_RETRIED and not self._connected:
                self._first_refusal = self._first_refusal or time.monotonic()
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_ok = True
            elif kind & A.HANDSHAKE_FAILED:
                self._failures.append((kind, event["value"], time.monotonic()))

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

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> OneShotClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _error_text(result) -> str:
    if isinstance(result, (list, tuple)) and len(result) == 2:
        return f"{result[0]}: {result[1]}"
    return str(result)


def request(address: str, kind: int, *fields, curve: CurveKeys | None = None, timeout: float = 5.0):
    """One request, one answer (see `OneShotClient.call`)."""
    with OneShotClient(address, curve) as client:
        return client.call(kind, *fields, timeout=timeout)
