"""The inbox's gatekeeper in a keyed cluster: who may connect, and the log line when refused.

Owns, for one transport whose cluster has a key: the ZAP handler (zmq's authentication
hook, a REP socket on `inproc://zeromq.zap.01` of the transport's context) that admits a
CURVE client only if its long-term public key is the cluster's own, which the handshake
proves it holds the secret for; and a monitor of the inbox that turns failed handshakes
into one log line per peer: "refused a connection from <peer>: wrong or missing cluster
key". A peer without any key (plain TCP) or with another cluster's key fails before the
ZAP check; its address is then taken from the connection the monitor saw accepted last
(best effort: the socket may already be closed, then the peer is "an unknown peer").
Repeated refusals of one peer (zmq reconnects every 100 ms) are logged once a minute.

Also `describe_client_failure`, which turns a client-side monitor event into a reason
for the one-shot requests (oneshot.py).

Not thread-safe: used by the transport's I/O thread only (`handle` is called from `poll`).
Never raises out of `handle`: a malformed event is logged and dropped.
"""

from __future__ import annotations

import logging
import os
import socket
import time

import zmq
import zmq.utils.z85
from zmq.utils.monitor import recv_monitor_message

from .cluster_key import CurveKeys

log = logging.getLogger("ownrun.transport")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
_REPEAT_LOG_SECONDS = 60.0


class AuthGate:
    """The ZAP handler and failed-handshake log of one CURVE inbox."""

    def __init__(self, ctx: zmq.Context, keys: CurveKeys):
        self.keys = keys
        self._client_key = zmq.utils.z85.decode(keys.public)  # ZAP hands over raw 32-byte keys
        self._zap = ctx.socket(zmq.REP)
        self._zap.setsockopt(zmq.LINGER, 0)
        self._zap.bind(ZAP_ENDPOINT)  # before the inbox binds: no handshake goes unchecked
        self._monitor: zmq.Socket | None = None
        self._port = 0
        self._last_accepted: str | None = None
        self._refusals: dict[str, list] = {}  # peer -> [last logged at, refusals since]

    def protect(self, inbox: zmq.Socket) -> None:
        """Makes `inbox` a CURVE server checked by this gate (before it binds)."""
        inbox.curve_server = True
        inbox.curve_secretkey = self.keys.secret
        inbox.zap_domain = b"ownrun"
        self._monitor = inbox.get_monitor_socket(
            zmq.EVENT_ACCEPTED | HANDSHAKE_FAILED)

    def started(self, bound_endpoint: str) -> None:
        self._port = int(bound_endpoint.rpartition(":")[2])

    def sockets(self) -> list[zmq.Socket]:
        return [s for s in (self._zap, self._monitor) if s is not None]

    def handle(self, sock) -> None:
        try:
            if sock is self._zap:
                self._answer_zap()
            elif sock is self._monitor:
                self._on_event(recv_monitor_message(self._monitor, zmq.NOBLOCK))
        except zmq.Again:
            pass
        except Exception:  # noqa: BLE001 - the gate must never take the I/O thread down
            log.exception("authentication handler failed")

    def _answer_zap(self) -> None:
        frames = self._zap.recv_multipart(zmq.NOBLOCK)
        version, request_id, _domain, peer, _identity, mechanism = frames[:6]
        credentials = frames[6:]
        ok = mechanism == b"CURVE" and credentials[:1] == [self._client_key]
        status, text = (b"200", b"OK") if ok else (b"400", b"wrong cluster key")
        self._zap.send_multipart([version, request_id, status, text, b"", b""])
        if not ok:
            self._refused(peer.decode(errors="replace") or "an unknown peer")

    def _on_event(self, event: dict) -> None:
        kind = event["event"]
        if kind == zmq.EVENT_ACCEPTED:
            self._last_accepted = self._peer_of(event["value"])
        elif kind & (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
            self._refused(self._last_accepted or "an unknown peer")  # AUTH: logged by the ZAP answer

    def _peer_of(self, fd: int) -> str | None:
        """The remote IP of an accepted connection's fd, if it is still ours and open."""
        try:
            dup = os.dup(fd)
        except OSError:
            return None
        try:
            with socket.socket(fileno=dup) as conn:
                if conn.getsockname()[1] != self._port:
                    return None  # the fd number was reused by something else
                return conn.getpeername()[0]
        except OSError:
            return None

    def _refused(self, peer: str) -> None:
        now = time.monotonic()
        entry = self._refusals.get(peer)
        if entry is not None and now - entry[0] < _REPEAT_LOG_SECONDS:
            entry[1] += 1
            return
        again = f" ({entry[1]} more refusals since the last report)" if entry and entry[1] else ""
        self._refusals[peer] = [now, 0]
        log.warning("refused a connection from %s: wrong or missing cluster key%s", peer, again)

    def close(self, inbox: zmq.Socket) -> None:
        if self._monitor is not None:
            inbox.disable_monitor()
            self._monitor.close(0)
        self._zap.close(0)


# ---- the client side ---------------------------------------------------------------------------
KEY_REQUIRED = "key required"  # the server speaks CURVE, we have no key
KEY_REJECTED = "key rejected"  # both speak CURVE, our key is not the cluster's
KEY_UNEXPECTED = "key unexpected"  # we have a key, the server has none
NOT_OURS = "not ownrun"  # the peer does not speak ZMTP as ownrun does


def describe_client_failure(event: int, value: int, have_key: bool) -> str:
    """The reason a client's handshake failed, from its monitor's event and value."""
    mismatch = event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and \
        value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
    if mismatch:
        return KEY_UNEXPECTED if have_key else KEY_REQUIRED
    key_trouble = event in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL) or \
        value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC  # NO_DETAIL: the server hung up on us
    if key_trouble:
        return KEY_REJECTED if have_key else KEY_REQUIRED
    return NOT_OURS

