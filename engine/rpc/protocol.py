"""Every message type exchanged between ownrun processes, in one place.

Owns: the numeric message types and the layout of each header. A message is
`[pack([TYPE, field, ...]), *payload_frames]`. Requests that expect an answer carry a
request id and the sender's inbox address; the answer is `[REPLY, req_id, ok, result]`
sent to that address (`ok` False means `result` is an error message string).

The type of every field of every header is in `schema.SHAPES`; each service checks incoming
headers against it (`schema.Inbox`) and drops malformed ones.

Does not do I/O (see transport.py). Pure constants; thread-safe.
"""

from __future__ import annotations

# ---- generic -----------------------------------------------------------------------
REPLY = 1  # [REPLY, req_id, ok, result]

# ---- core worker <-> core worker (the task path; no head, no daemon) ----------------
PUSH_TASK = 10  # [PUSH_TASK, caller_addr, spec] + arg frames: the fields below, by name
MAX_MESSAGE_FRAMES = 0xFFFF  # frames in one message, at most (the unix transport counts them in 16 bits)
TASK_REPLY = 11  # [TASK_REPLY, worker_addr, task_id, returns, borrowed, worker_id, runtime] + frames
GET_VALUE = 12  # [GET_VALUE, requester_addr, oid]  (long poll: answered when ready)
VALUE_REPLY = 13  # [VALUE_REPLY, oid, meta, sender_addr] + value frames
VALUE_PENDING = 19  # [VALUE_PENDING, oid]  (answers GET_VALUE at once when the owner has no value yet)
REF_REMOVED = 14  # [REF_REMOVED, from_addr, [[oid, count], ...]]
CANCEL_TASK = 15  # [CANCEL_TASK, task_id, force, recursive]  (owner -> the worker running it)
CANCEL_REQUEST = 18  # [CANCEL_REQUEST, task_id, force, recursive]  (a borrower -> the task's owner)
STATE_QUERY = 17  # request: [.., req_id, addr, [what, ...]]  (the state API asks an owner; engine/state/)
GENERATOR_ITEM = 20  # [GENERATOR_ITEM, worker_addr, task_id, index, meta] + frames  (num_returns="streaming")
OBJ_COPIED = 16  # [OBJ_COPIED, oid, daemon_addr, node_id]  (a reader's node pulled a copy: tell the owner)

# ---- core worker -> node daemon ----------------------------------------------------
REGISTER_CLIENT = 30  # request: [.., req_id, addr, worker_id, pid, kind]
WORKER_READY = 31  # [WORKER_READY, worker_id, addr, pid]
LEASE_REQUEST = 32  # [LEASE_REQUEST, owner_addr, owner_id, lease_req_id, resources, for_actor, hops,
#                    actor_options?]  ({detached: bool, placement: {resource: amount}}, actors only)
LEASE_RETURN = 33  # [LEASE_RETURN, worker_id, reuse]  (reuse False: the worker ran max_calls: retire it)
LEASE_CANCEL = 34  # [LEASE_CANCEL, owner_addr, lease_req_id]
WORKER_BLOCKED = 35  # [WORKER_BLOCKED, worker_id]
WORKER_UNBLOCKED = 36  # [WORKER_UNBLOCKED, worker_id]
OBJ_CREATE = 37  # request: [.., req_id, addr, oid, size, owner_addr, writer_id, (ahead)]
#                  (ahead: the object of the writer's next put, created before its value)
OBJ_SEAL = 38  # [OBJ_SEAL, worker_id, oid, keep_pin]
OBJ_ABORT = 59  # [OBJ_ABORT, worker_id, oid]  (the writer will not seal what it created ahead)
OBJ_GET = 39  # request: [.., req_id, addr, oid, worker_id, source_daemon_addr]
OBJ_RELEASE = 40  # [OBJ_RELEASE, worker_id, [oid, ...]]
OBJ_FREE = 41  # [OBJ_FREE, [oid, ...]]
KILL_WORKER = 42  # [KILL_WORKER, worker_id, reason, sender_addr]  (obeyed for an actor's worker or the
#                   sender's own lease)
LOG_LINES = 43  # [LOG_LINES, prefix, text]
NODE_STATS = 44  # request: [.., req_id, addr, (["timeline"]: only the daemon's timeline events)]
SHUTDOWN_NODE = 45  # [SHUTDOWN_NODE, node_id]  (obeyed only by that node)
WARM_MODULES = 49  # [WARM_MODULES, [module names]]  (a worker imported these: pre-import in the zygote)
OBJ_PIN = 58  # [OBJ_PIN, oid, owner_addr]  (owner -> daemon: your secondary copy is now the primary)
UNREGISTER_CLIENT = 48  # request: [.., req_id, addr]  (a driver leaving: release what it holds)
REAP_ANSWER = 57  # [REAP_ANSWER, worker_id, may_exit]  (answers REAP_QUERY)

# ---- node daemon <-> node daemon (object transfer, pull-based) ----------------------------
OBJ_PULL = 46  # [OBJ_PULL, requester_daemon_addr, oid, offset, length]  (one chunk; see node/transfer.py)
OBJ_CHUNK = 47  # [OBJ_CHUNK, oid, offset, total] + data   (total -1: the sender has no copy)

# ---- node daemon -> core worker ----------------------------------------------------
LEASE_GRANTED = 50  # [LEASE_GRANTED, lease_req_id, worker_id, worker_addr|error, node_id, daemon_addr,
#                   spill_to_daemon_addr]  (worker_id None: see error, or re-request at spill_to)
WORKER_DIED = 51  # [WORKER_DIED, worker_id, worker_addr, reason]
RECALL_LEASES = 52  # [RECALL_LEASES]  (return idle leases: others are waiting)
EXIT_WORKER = 53  # [EXIT_WORKER, daemon_addr]  (obeyed only from the worker's own daemon)
REAP_QUERY = 56  # [REAP_QUERY]  (an idle pooled worker: may you exit? owns no objects, no tasks)
ACTOR_STATE = 55  # [ACTOR_STATE, actor_id, view]  (head -> processes that looked the actor up)
NODE_DIED = 54  # [NODE_DIED, node_id, daemon_addr, client_addrs, reason]  (also head -> daemons)

# ---- anyone -> head ----------------------------------------------------------------
REGISTER_NODE = 70  # request: [.., req_id, addr, node_id, info]
ACTOR_REGISTER = 71  # request: [.., req_id, addr, actor_id, name, info]
ACTOR_UPDATE = 72  # [ACTOR_UPDATE, actor_id, state, address, reason, worker_id]
ACTOR_LOOKUP = 73  # request: [.., req_id, addr, name_or_id, not_worker_id?, namespace?]  (subscribes the asker)
KV_PUT = 74  # request: [.., req_id, addr, key, value, overwrite]
KV_GET = 75  # request: [.., req_id, addr, key]
KV_DELETE = 76  # request: [.., req_id, addr, key]
KV_LIST = 77  # request: [.., req_id, addr, prefix]
HEAD_STATS = 78  # request: [.., req_id, addr]
HEARTBEAT = 79  # [HEARTBEAT, node_id, daemon_addr, total, available, store_stats]
#                  the head answers with CLUSTER_VIEW
NODE_CLIENTS = 80  # [NODE_CLIENTS, node_id, added_addrs, removed_addrs]
TASK_META_SUBMIT = 83  # request: [.., req_id, addr, task_id, spec_bytes, arg_ids]  (centralized mode)
TASK_META_DONE = 84  # [TASK_META_DONE, task_id, arg_ids]  (centralized mode)
NODE_LIST = 82  # request: [.., req_id, addr]  -> {node_id: {address, alive, total, available, store}}
ACTOR_NAMES = 85  # request: [.., req_id, addr]  -> [namespace, name] of the live named actors
PG_CREATE = 86  # request: [.., req_id, addr, pg_id, bundles, strategy, name, namespace, detached]
PG_REMOVE = 87  # request: [.., req_id, addr, pg_id]  -> True if it was removed now
PG_TABLE = 88  # request: [.., req_id, addr, pg_id|name|None, namespace]  -> a group's view, or all
WORKER_DIED_REMOTE = 81  # [WORKER_DIED_REMOTE, node_id, worker_id, worker_addr, reason] (daemon -> head)

# ---- head -> node daemons -------------------------------------------------------------
CLUSTER_VIEW = 90  # [CLUSTER_VIEW, {node_id: {address, total, available, alive, suspect, bundles}}]
#                     bundles: [[pg hex, index, resources]] that node is to hold (placement groups)
NODE_FENCED = 91  # [NODE_FENCED, node_id, reason]  (the head declared this node dead: stop)

# Return kinds in TASK_REPLY / VALUE_REPLY metadata.
VALUE_INLINE = 0  # [VALUE_INLINE, nframes, contains]
VALUE_SHM = 1  # [VALUE_SHM, node_id, size, contains, daemon_addr]
# Task arguments (PUSH_TASK dep_meta) add the object id (and, for VALUE_SHM, its owner):
#   [VALUE_INLINE, nframes, contains, oid] / [VALUE_SHM, node_id, size, contains, oid, daemon_addr, owner]
#   or, for a value of one pickle of at most PACKED_ARG_MAX bytes holding no refs, just its
#   length (an int): such values are joined, in argument order, into the message's last frame
#   (a smoothing window of 201 trajectory refs is then one frame, not 201).
PACKED_ARG_MAX = 4096
VALUE_ERROR = 2  # [VALUE_ERROR, nframes, contains]  (a pickled exception)

# The fields of a PUSH_TASK header, by position: `TaskEntry.header` writes them, the executor
# reads them by these names (schema.SHAPES checks their types).
(PUSH_CALLER,  # the owner's address: where TASK_REPLY goes
 PUSH_TASK_ID,
 PUSH_NAME,  # the function's or method's name (errors, the timeline)
 PUSH_KIND,  # NORMAL, ACTOR_CREATION or ACTOR_METHOD (ownership/task_manager.py)
 PUSH_FN_ID,
 PUSH_FN_BLOB,  # the pickled function, the first time this worker gets it; else None
 PUSH_NUM_RETURNS,
 PUSH_NUM_ARG_FRAMES,  # frames after the header that carry arguments
 PUSH_POSITIONS,  # where each argument goes (positional index or keyword), or None
 PUSH_DEP_META,  # the metadata of arguments passed by reference (see VALUE_* above)
 PUSH_ACTOR_ID,
 PUSH_EXTRA,  # dict or None: the job's namespace, actor creation options, streaming
 ) = range(1, 13)
# CANCEL_TASK and EXIT_WORKER fields.
CANCEL_TASK_ID, CANCEL_FORCE, CANCEL_RECURSIVE = range(1, 4)
EXIT_FROM_DAEMON = 1
# Optional trailing fields (older or simpler senders leave them out): read with `optional`.
REGISTER_CLIENT_TOKEN = 6  # the client's notice token (rpc/notices.py)
WORKER_READY_TOKEN = 4
LEASE_ACTOR_OPTIONS = 7  # {detached, placement, pinned}, actor leases only
HEARTBEAT_TOKEN = 6
NODE_CLIENTS_TOKENS = 4  # {address: notice token} of the clients that joined
LOOKUP_NOT_WORKER, LOOKUP_NAMESPACE, LOOKUP_TOKEN = 4, 5, 6  # ACTOR_LOOKUP
# Where a notice carries its proof (rpc/notices.py): the receiver's token, or the actor's key.
CLUSTER_VIEW_PROOF = 2
NODE_DIED_PROOF = 5
NODE_FENCED_PROOF = 3
ACTOR_STATE_PROOF = 3
ACTOR_UPDATE_PROOF = 6
NODE_CLIENTS_PROOF = 5
WORKER_DIED_REMOTE_PROOF = 5

# Names of field positions (above), not message types.
FIELDS = frozenset({
    "PUSH_CALLER", "PUSH_TASK_ID", "PUSH_NAME", "PUSH_KIND", "PUSH_FN_ID", "PUSH_FN_BLOB", "PUSH_NUM_RETURNS",
    "PUSH_NUM_ARG_FRAMES", "PUSH_POSITIONS", "PUSH_DEP_META", "PUSH_ACTOR_ID", "PUSH_EXTRA",
    "CANCEL_TASK_ID", "CANCEL_FORCE", "CANCEL_RECURSIVE", "EXIT_FROM_DAEMON", "REGISTER_CLIENT_TOKEN",
    "WORKER_READY_TOKEN", "LEASE_ACTOR_OPTIONS", "HEARTBEAT_TOKEN", "NODE_CLIENTS_TOKENS", "LOOKUP_NOT_WORKER",
    "LOOKUP_NAMESPACE", "LOOKUP_TOKEN", "CLUSTER_VIEW_PROOF", "NODE_DIED_PROOF", "NODE_FENCED_PROOF",
    "ACTOR_STATE_PROOF", "ACTOR_UPDATE_PROOF", "NODE_CLIENTS_PROOF", "WORKER_DIED_REMOTE_PROOF"})


def optional(header: list, field: int, default=None):
    """An optional trailing field of a message header, or `default` when the sender left it out."""
    return header[field] if len(header) > field else default
