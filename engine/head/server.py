"""The head: cluster membership, the actor directory and a key-value store (§2, §5).

Owns the node table, the actor table (ids, names, addresses, states) and the KV store
applications use for checkpoints. It is never on the task path: owners push tasks to
workers directly; the head only hears about nodes, actors and KV operations, and counts
every request it serves so tests can prove that (HEAD_STATS).

Runs as its own process (`python -m ownrun.engine.head.server`), one thread. Lookups of
an actor that is still starting are answered when it becomes alive or dies (long poll).
Failures: an unknown request type is logged and answered with an error; the head exits
when its parent (the embedded cluster's driver) dies.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from ..rpc import protocol as P
from ..rpc.transport import Transport, pack, unpack
from ..util import process_tools

log = logging.getLogger("ownrun.head")


class Head:
    def __init__(self, transport: Transport):
        self.transport = transport
        self.nodes: dict[str, dict] = {}
        self.actors: dict[bytes, dict] = {}
        self.names: dict[str, bytes] = {}
        self.kv: dict[bytes, bytes] = {}
        self.lookups_waiting: dict[bytes, list] = {}  # actor id -> [(addr, req_id)]
        self.requests_served = 0
        self.requests_by_type: dict[int, int] = {}
        self.handlers = {
            P.REGISTER_NODE: self.on_register_node,
            P.ACTOR_REGISTER: self.on_actor_register,
            P.ACTOR_UPDATE: self.on_actor_update,
            P.ACTOR_LOOKUP: self.on_actor_lookup,
            P.KV_PUT: self.on_kv_put,
            P.KV_GET: self.on_kv_get,
            P.KV_DELETE: self.on_kv_delete,
            P.KV_LIST: self.on_kv_list,
            P.HEAD_STATS: self.on_stats,
        }

    def reply(self, addr: str, req_id: int, result, ok: bool = True) -> None:
        self.transport.send(addr, [pack([P.REPLY, req_id, ok, result])])

    def handle(self, frames: list) -> None:
        header = unpack(frames[0])
        kind = header[0]
        self.requests_served += 1
        self.requests_by_type[kind] = self.requests_by_type.get(kind, 0) + 1
        handler = self.handlers.get(kind)
        if handler is None:
            log.warning("unknown message type %s", kind)
            return
        handler(header)

    def on_register_node(self, h) -> None:
        _, req_id, addr, node_id, info = h
        self.nodes[node_id] = dict(info, address=addr, alive=True, registered=time.time())
        self.reply(addr, req_id, True)

    def on_actor_register(self, h) -> None:
        _, req_id, addr, actor_id, name, info = h
        if name:
            existing = self.names.get(name)
            if existing is not None and self.actors[existing]["state"] != "DEAD":
                self.reply(addr, req_id, f"an actor named {name!r} already exists", ok=False)
                return
            self.names[name] = actor_id
        self.actors[actor_id] = dict(info, name=name, state="PENDING", address=None, reason=None)
        self.reply(addr, req_id, True)

    def on_actor_update(self, h) -> None:
        _, actor_id, state, address, reason, worker_id = h
        actor = self.actors.get(actor_id)
        if actor is None:
            return
        if actor["state"] == "DEAD":
            return
        actor.update(state=state, reason=reason)
        if address:
            actor["address"] = address
            actor["worker_id"] = worker_id
        if state in ("ALIVE", "DEAD"):
            for addr, req_id in self.lookups_waiting.pop(actor_id, []):
                self.reply(addr, req_id, self._actor_view(actor_id))

    def _actor_view(self, actor_id: bytes) -> dict:
        a = self.actors[actor_id]
        return {"actor_id": actor_id, "state": a["state"], "address": a["address"],
                "reason": a["reason"], "worker_id": a.get("worker_id"),
                "info": {"class_name": a.get("class_name"), "methods": a.get("methods")}}

    def on_actor_lookup(self, h) -> None:
        _, req_id, addr, key = h
        actor_id = self.names.get(key) if isinstance(key, str) else key
        if actor_id is None or actor_id not in self.actors:
            self.reply(addr, req_id, None)
            return
        if self.actors[actor_id]["state"] in ("ALIVE", "DEAD"):
            self.reply(addr, req_id, self._actor_view(actor_id))
        else:
            self.lookups_waiting.setdefault(actor_id, []).append((addr, req_id))

    def on_kv_put(self, h) -> None:
        _, req_id, addr, key, value, overwrite = h
        if not overwrite and key in self.kv:
            self.reply(addr, req_id, False)
            return
        self.kv[key] = value
        self.reply(addr, req_id, True)

    def on_kv_get(self, h) -> None:
        _, req_id, addr, key = h
        self.reply(addr, req_id, self.kv.get(key))

    def on_kv_delete(self, h) -> None:
        _, req_id, addr, key = h
        self.reply(addr, req_id, self.kv.pop(key, None) is not None)

    def on_kv_list(self, h) -> None:
        _, req_id, addr, prefix = h
        self.reply(addr, req_id, sorted(k for k in self.kv if k.startswith(prefix)))

    def on_stats(self, h) -> None:
        _, req_id, addr = h
        self.reply(addr, req_id, {"requests": self.requests_served,
                                  "by_type": self.requests_by_type,
                                  "nodes": len(self.nodes), "actors": len(self.actors)})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="ownrun-head")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    transport = Transport(args.host, args.port)
    process_tools.announce_ready(transport.address, os.path.join(args.session_dir, "logs", "head.log"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s head %(levelname)s %(message)s")
    head = Head(transport)
    parent_fd = process_tools.watch_parent(transport, args.parent_pid)
    while True:
        messages, tokens = transport.poll(1000)
        if tokens and parent_fd is not None:
            log.info("parent %d exited; head stops", args.parent_pid)
            break
        for frames in messages:
            try:
                head.handle(frames)
            except Exception:  # noqa: BLE001 - a bad message must not kill the head
                log.exception("failed to handle a message")
    transport.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
