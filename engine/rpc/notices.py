"""Who may tell a process that a node died or an actor changed: the proofs control notices carry.

Every peer of a cluster holds the one cluster key (or reaches the private ipc directory), so
the transport proves only that a message comes from *some* member, never which one; a
compromised worker could claim to be the head. The connection cannot tell either: all
members present the same CURVE key (the ZAP check sees no difference), and each process's
one PULL inbox merges every connection, so knowing a message's connection (zmq's per-message
metadata) would cost every task message a frame object. Two secrets, each known only to the
parties that must know it, close that gap without touching the task path:

* **Notice tokens** (head -> process). Every process that hears notices (a node daemon, a
  driver, a worker) draws a random token at start and hands it to those entitled to notify
  it, over the authenticated transport: a daemon to the head (in its HEARTBEAT, the head
  keeps the first one it sees per node), a driver or worker to its daemon (REGISTER_CLIENT,
  WORKER_READY), which passes it on to the head (NODE_CLIENTS), and to the head again when it
  looks an actor up (ACTOR_LOOKUP) and so subscribes to its changes. Every NODE_DIED,
  NODE_FENCED, CLUSTER_VIEW and ACTOR_STATE ends with the receiver's own token; a receiver
  refuses one without it. A peer that never saw the token (it travels only between the
  receiver and its notifiers) cannot forge one; a daemon knows its own clients' tokens
  (it already may stop them).
* **Actor keys** (owner -> head). The creator of an actor draws a random key, registers it
  with the head (ACTOR_REGISTER) and gives it to the worker it starts the actor on (in the
  creation task's options): every ACTOR_UPDATE carries it, and the head obeys an update of
  an actor only with that actor's key (the head's own transitions — owner or worker deaths —
  need none). The key is never part of what the head tells others about the actor.
* A daemon's token is a secret it shares with the head, so it also proves the daemon's own
  reports to the head: a heartbeat or registration of a known node, and what it says of its
  clients (NODE_CLIENTS, WORKER_DIED_REMOTE, from which the head declares an owner's actors
  dead) are obeyed only with that node's token.

A notice that fails its check is dropped and counted (`schema.Inbox.refuse`: `unauthorized`
in each service's stats, one log line per type per 10 s), never fatal.

Pure functions; thread-safe. What is not covered: replies (REPLY) and WORKER_DIED (daemon to
daemon and to clients) are still taken from any member; a member can still make the head
send a process notices it will refuse (by subscribing it with a wrong token); and since a
node needs nothing but the cluster key to join, a member can join as a node of its own: what
a token proves is "the head" or "the node registered under this id", not a trusted node.
"""

from __future__ import annotations

import hmac
import secrets

TOKEN_BYTES = 16


def new_token() -> bytes:
    """A fresh notice token or actor key."""
    return secrets.token_bytes(TOKEN_BYTES)


def genuine(presented, expected: bytes | None) -> bool:
    """True when `presented` (a message's proof field, any type) is `expected`. A process or
    actor without an expected secret accepts nothing."""
    return type(presented) is bytes and expected is not None and hmac.compare_digest(presented, expected)
