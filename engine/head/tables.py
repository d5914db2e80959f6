"""The head's tables, persisted in SQLite so a restarted head resumes where it stopped (§2, §5).

Owns five tables in `<session_dir>/head.sqlite3` and the rules that go with them:

* nodes  - one row per node daemon that registered or sent a heartbeat (re-registering
           replaces its row; its first heartbeat to a restarted head is a no-op unless it
           moved); info holds its resources, the addresses of its clients (workers,
           drivers), its own notice token (the first one it sent) and its clients' (the
           proofs of the head's notices to them: rpc/notices.py). A node marked dead stays
           dead for heartbeats;
* actors - the actor directory: id, name, state (PENDING -> ALIVE <-> RESTARTING -> DEAD),
           address, worker id, death reason, class name, methods, owner, and the key its
           owner's reports prove themselves with (never in a view). DEAD is final: later
           updates of a dead actor are ignored. A name is unique within its namespace (one
           of the actor's options; "" by default) and maps to its newest actor; a name is
           free again once its actor is DEAD. Only the newest `KEEP_DEAD_ACTORS` dead actors
           are kept (older rows are deleted: a lookup of one answers "unknown", which callers
           treat as dead too);
* kv     - the application key-value store (checkpoints): bytes keys, bytes values;
* jobs   - one row per driver: id, driver address, pid, start time, end time, state;
* placement_groups - one row per placement group (`placement_groups.PlacementGroupRecord.row`:
           bundles, strategy, name, state, the node of each bundle); removed ones are deleted
           as the head forgets them;

plus a `meta` table holding the head's incarnation (1 on the first start, +1 per restart).

Every write is committed before the method returns. With WAL and synchronous=NORMAL a
committed write survives a SIGKILL of the head (not a power loss), so the head may reply
"done" as soon as a method returns. Nodes and actors are mirrored in memory (they are
small and read on every lookup); KV values are read from SQLite so large checkpoints are
not held twice.

No sockets, threads or clocks beyond `time.time()` stamps. Not thread-safe: one owner
thread (the head's) uses a `HeadTables`. Failures: `sqlite3.Error` from a corrupt or
unwritable file propagates to the caller; `TypeError` for a key or value that is not bytes.
"""

from __future__ import annotations

import collections
import os
import sqlite3
import time
from dataclasses import dataclass, field

import msgpack

DB_NAME = "head.sqlite3"
SETTLED_STATES = ("ALIVE", "DEAD")
KEEP_DEAD_ACTORS = 1000  # dead actors kept for lookups; older ones are pruned

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY, address TEXT, info BLOB, alive INTEGER NOT NULL,
    registered REAL NOT NULL);
CREATE TABLE IF NOT EXISTS actors (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, actor_id BLOB UNIQUE NOT NULL, name TEXT,
    state TEXT NOT NULL, address TEXT, worker_id BLOB, reason TEXT, class_name TEXT,
    methods BLOB, owner TEXT, options BLOB, key BLOB);
CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, driver_address TEXT, pid INTEGER, start_time REAL NOT NULL,
    end_time REAL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS placement_groups (pg_id BLOB PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
"""

_ACTOR_COLUMNS = ("actor_id", "name", "state", "address", "worker_id", "reason", "class_name",
                  "methods", "owner", "options", "key")
# What a handle found by name needs to behave as the creator's does (ACTOR_REGISTER's info).
ACTOR_OPTIONS = ("max_restarts", "max_task_retries", "signatures", "detached", "namespace")


@dataclass
class ActorRecord:
    """One row of the actor directory."""

    actor_id: bytes
    name: str | None
    state: str = "PENDING"
    address: str | None = None
    worker_id: bytes | None = None
    reason: str | None = None
    class_name: str | None = None
    methods: dict = field(default_factory=dict)
    owner: str | None = None
    options: dict = field(default_factory=dict)  # ACTOR_OPTIONS given at registration
    key: bytes | None = field(default=None, repr=False)  # its owner's proof (notices.py); None: none asked

    @property
    def namespace(self) -> str:
        return self.options.get("namespace") or ""

    def settled(self) -> bool:
        """ALIVE or DEAD: a lookup can be answered now (else it waits)."""
        return self.state in SETTLED_STATES

    def dead(self) -> bool:
        return self.state == "DEAD"

    def view(self) -> dict:
        """What ACTOR_LOOKUP answers."""
        return {"actor_id": self.actor_id, "state": self.state, "address": self.address,
                "reason": self.reason, "worker_id": self.worker_id,
                "info": {"class_name": self.class_name, "methods": self.methods, **self.options}}


def _as_key(key) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"KV keys must be str or bytes, not {type(key).__name__}")


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class HeadTables:
    """The head's persistent state. Open with `HeadTables.open(session_dir)`."""

    def __init__(self, path: str):
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)  # autocommit; explicit BEGIN
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(actors)")}
        for column in ("options", "key"):  # a file written before actors had these
            if column not in columns:
                self._db.execute(f"ALTER TABLE actors ADD COLUMN {column} BLOB")
        self.nodes: dict[str, dict] = {}
        self.actors: dict[bytes, ActorRecord] = {}
        self.names: dict[tuple[str, str], bytes] = {}  # (namespace, name) -> newest actor with that name
        self.dead_actors: collections.deque = collections.deque()  # DEAD actor ids, oldest first
        self.incarnation = self._bump_incarnation()
        self._load()

    @classmethod
    def open(cls, session_dir: str) -> HeadTables:
        os.makedirs(session_dir, exist_ok=True)
        return cls(os.path.join(session_dir, DB_NAME))

    def close(self) -> None:
        self._db.close()

    # ---- loading ------------------------------------------------------------------------
    def _bump_incarnation(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='incarnation'").fetchone()
        incarnation = (row[0] if row else 0) + 1
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('incarnation', ?)", (incarnation,))
        return incarnation

    def _load(self) -> None:
        for node_id, address, info, alive, registered in self._db.execute(
                "SELECT node_id, address, info, alive, registered FROM nodes"):
            if not isinstance(node_id, str):
                continue  # a row an older head stored from a malformed heartbeat
            self.nodes[node_id] = dict(msgpack.unpackb(info, raw=False), address=address,
                                       alive=bool(alive), registered=registered)
        for row in self._db.execute(f"SELECT {', '.join(_ACTOR_COLUMNS)} FROM actors ORDER BY seq"):
            values = dict(zip(_ACTOR_COLUMNS, row, strict=True))
            values["methods"] = msgpack.unpackb(values["methods"], raw=False) if values["methods"] else {}
            values["options"] = msgpack.unpackb(values["options"], raw=False) if values["options"] else {}
            record = ActorRecord(**values)
            self.actors[record.actor_id] = record
            if record.name:
                self.names[record.namespace, record.name] = record.actor_id
            if record.dead():
                self.dead_actors.append(record.actor_id)
        self._prune_dead_actors()

    # ---- nodes --------------------------------------------------------------------------
    def register_node(self, node_id: str, address: str, info: dict) -> None:
        """Adds a node, or refreshes it when it re-registers (after a head restart)."""
        if not isinstance(node_id, str) or not isinstance(address, str):
            raise TypeError(f"a node id and address are strings, not {type(node_id).__name__}, "
                            f"{type(address).__name__}")
        info = {k: v for k, v in info.items() if k not in ("address", "alive", "registered")}
        now = time.time()
        self._db.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, 1, ?)",
                         (node_id, address, msgpack.packb(info, use_bin_type=True), now))
        self.nodes[node_id] = dict(info, address=address, alive=True, registered=now)

    def node_heartbeat(self, node_id: str, address: str, resources: dict, token: bytes | None = None) -> bool:
        """A node's periodic beat: registers it if unknown, moved, resized or with its first
        notice token (one write); else no write. Returns False for a node marked dead (it
        stays dead). The caller has checked `token` against the one kept (`notice_token`)."""
        node = self.nodes.get(node_id)
        if node is not None and not node["alive"]:
            return False
        new_token = token is not None and (node is None or node.get("notice_token") is None)
        if node is None or node["address"] != address or node.get("resources") != resources or new_token:
            info = dict(node or {}, resources=resources)
            if new_token:
                info["notice_token"] = token
            self.register_node(node_id, address, info)
        return True

    def notice_token(self, node_id: str) -> bytes | None:
        """The token the head's notices to this node's daemon carry (None: it sent none)."""
        node = self.nodes.get(node_id)
        return None if node is None else node.get("notice_token")

    def update_node_clients(self, node_id: str, added: list[str], removed: list[str],
                            tokens: dict | None = None) -> None:
        """Records processes (workers, drivers) that joined or left a node, and the notice
        tokens of those that joined."""
        node = self.nodes.get(node_id)
        if node is None:
            return
        clients = (set(node.get("clients", ())) | set(added)) - set(removed)
        node["clients"] = sorted(clients)
        merged = dict(node.get("client_tokens") or {})
        merged.update(tokens or {})
        node["client_tokens"] = {a: t for a, t in merged.items() if a in clients and type(t) is bytes}
        info = {k: v for k, v in node.items() if k not in ("address", "alive", "registered")}
        self._db.execute("UPDATE nodes SET info=? WHERE node_id=?",
                         (msgpack.packb(info, use_bin_type=True), node_id))

    def mark_node_dead(self, node_id: str) -> bool:
        node = self.nodes.get(node_id)
        if node is None or not node["alive"]:
            return False
        self._db.execute("UPDATE nodes SET alive=0 WHERE node_id IS ?", (node_id,))  # IS: also a NULL id
        node["alive"] = False
        return True

    # ---- actors -------------------------------------------------------------------------
    def register_actor(self, actor_id: bytes, name: str | None, info: dict) -> str | None:
        """Adds a PENDING actor. Returns an error message if its name is taken by a live actor."""
        if name and self.live_named(name, info.get("namespace") or "") is not None:
            return f"an actor named {name!r} already exists"
        options = {k: info[k] for k in ACTOR_OPTIONS if info.get(k) is not None}
        key = info.get("actor_key")
        record = ActorRecord(actor_id, name or None, class_name=info.get("class_name"),
                             methods=dict(info.get("methods") or {}), owner=info.get("owner"),
                             options=options, key=key if type(key) is bytes else None)
        self._db.execute(
            f"INSERT OR REPLACE INTO actors ({', '.join(_ACTOR_COLUMNS)}) VALUES ({','.join('?' * len(_ACTOR_COLUMNS))})",
            (record.actor_id, record.name, record.state, None, None, None, record.class_name,
             msgpack.packb(record.methods, use_bin_type=True), record.owner,
             msgpack.packb(record.options, use_bin_type=True), record.key))
        self.actors[actor_id] = record
        if record.name:
            self.names[record.namespace, record.name] = actor_id
        return None

    def live_named(self, name: str, namespace: str = "") -> ActorRecord | None:
        """The actor holding `name` in `namespace`, unless it is DEAD (a name is free again then)."""
        existing = self.actors.get(self.names.get((namespace, name)))
        return existing if existing is not None and not existing.dead() else None

    def owned_by(self, owner: str) -> list[ActorRecord]:
        """The actors `owner` created that are not DEAD (detached ones have no owner)."""
        return [r for r in self.actors.values() if r.owner == owner and not r.dead()]

    def update_actor(self, actor_id: bytes, state: str, address: str | None, reason: str | None,
                     worker_id: bytes | None) -> ActorRecord | None:
        """Applies a state change. Returns the record, or None if unknown or already DEAD."""
        record = self.actors.get(actor_id)
        if record is None or record.dead():
            return None
        record.state, record.reason = state, reason
        if address:
            record.address, record.worker_id = address, worker_id
        self._db.execute("UPDATE actors SET state=?, reason=?, address=?, worker_id=? WHERE actor_id=?",
                         (record.state, record.reason, record.address, record.worker_id, actor_id))
        if record.dead():
            self.dead_actors.append(actor_id)
            self._prune_dead_actors()
        return record

    def _prune_dead_actors(self) -> None:
        """Keeps the newest `KEEP_DEAD_ACTORS` dead actors (lookups of older ones answer None)."""
        while len(self.dead_actors) > KEEP_DEAD_ACTORS:
            actor_id = self.dead_actors.popleft()
            record = self.actors.pop(actor_id, None)
            key = (record.namespace, record.name) if record is not None else None
            if record is not None and record.name and self.names.get(key) == actor_id:
                del self.names[key]
            self._db.execute("DELETE FROM actors WHERE actor_id=?", (actor_id,))

    def live_actor_names(self, namespace: str | None = "") -> list:
        """The names of the named actors in `namespace` that are not DEAD, sorted; with
        `namespace=None`, `[namespace, name]` pairs of every namespace."""
        live = sorted(key for key, actor_id in self.names.items()
                      if actor_id in self.actors and not self.actors[actor_id].dead())
        if namespace is None:
            return [list(key) for key in live]
        return [name for ns, name in live if ns == namespace]

    def find_actor(self, key: str | bytes, namespace: str = "") -> ActorRecord | None:
        """An actor by name (str, in `namespace`) or id (bytes)."""
        actor_id = self.names.get((namespace, key)) if isinstance(key, str) else key
        return self.actors.get(actor_id) if actor_id is not None else None

    # ---- KV -----------------------------------------------------------------------------
    def kv_put(self, key, value: bytes, overwrite: bool = True) -> bool:
        """Stores `value` under `key`. False (and no change) if it exists and not `overwrite`."""
        key = _as_key(key)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"KV values must be bytes, not {type(value).__name__}")
        verb = "INSERT OR REPLACE" if overwrite else "INSERT OR IGNORE"
        cursor = self._db.execute(f"{verb} INTO kv VALUES (?, ?)", (key, bytes(value)))
        return cursor.rowcount > 0

    def kv_get(self, key) -> bytes | None:
        row = self._db.execute("SELECT value FROM kv WHERE key=?", (_as_key(key),)).fetchone()
        return row[0] if row else None

    def kv_delete(self, key) -> bool:
        return self._db.execute("DELETE FROM kv WHERE key=?", (_as_key(key),)).rowcount > 0

    def kv_list(self, prefix=b"") -> list[bytes]:
        """Keys starting with `prefix`, sorted bytewise."""
        start = _as_key(prefix)
        end = _prefix_end(start)
        if end is None:
            rows = self._db.execute("SELECT key FROM kv WHERE key >= ? ORDER BY key", (start,))
        else:
            rows = self._db.execute("SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key",
                                    (start, end))
        return [row[0] for row in rows]

    # ---- jobs ---------------------------------------------------------------------------
    def add_job(self, job_id: str, driver_address: str | None, pid: int | None) -> None:
        """Records a running driver; a job already recorded keeps its start time."""
        self._db.execute("INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, NULL, 'RUNNING')",
                         (job_id, driver_address, pid, time.time()))

    def finish_job(self, job_id: str, state: str = "FINISHED") -> bool:
        cursor = self._db.execute(
            "UPDATE jobs SET state=?, end_time=? WHERE job_id=? AND state='RUNNING'",
            (state, time.time(), job_id))
        return cursor.rowcount > 0

    # ---- placement groups ------------------------------------------------------------------
    def placement_group_rows(self) -> list[dict]:
        return [msgpack.unpackb(row[0], raw=False) for row in
                self._db.execute("SELECT record FROM placement_groups")]

    def save_placement_group(self, row: dict) -> None:
        self._db.execute("INSERT OR REPLACE INTO placement_groups VALUES (?, ?)",
                         (row["pg_id"], msgpack.packb(row, use_bin_type=True)))

    def delete_placement_group(self, pg_id: bytes) -> None:
        self._db.execute("DELETE FROM placement_groups WHERE pg_id=?", (pg_id,))

    def jobs(self) -> list[dict]:
        rows = self._db.execute("SELECT job_id, driver_address, pid, start_time, end_time, state "
                                "FROM jobs ORDER BY start_time")
        keys = ("job_id", "driver_address", "pid", "start_time", "end_time", "state")
        return [dict(zip(keys, row, strict=True)) for row in rows]
