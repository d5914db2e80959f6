"""A cluster's files and sockets are its user's only: private session files, and (§11.1) no
reply, no code run and no control message obeyed for a peer without the cluster key."""

from __future__ import annotations

import glob
import os
import stat

from ownrun import engine

from tests.conftest import session_shm_files


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _square(x):
    return x * x


def test_session_files_logs_and_head_tables_are_private(cluster):
    session = cluster["session_dir"]
    engine.kv.put("security-test-key", b"a secret")  # the head's WAL holds it
    assert engine.get(engine.remote(_square).remote(3), timeout=60) == 9  # a worker writes its log
    files = [p for p in glob.glob(os.path.join(session, "**"), recursive=True) if os.path.isfile(p)]
    names = {os.path.relpath(p, session) for p in files}
    assert {"session.json", "head.sqlite3", "head.sqlite3-wal", "logs/head.log"} <= names, names
    assert any(n.startswith("logs/worker-") for n in names) and any(n.startswith("logs/node-") for n in names)
    assert {p: oct(_mode(p)) for p in files if _mode(p) & 0o077} == {}
    dirs = [session, *(p for p in glob.glob(os.path.join(session, "**"), recursive=True) if os.path.isdir(p))]
    assert {p: oct(_mode(p)) for p in dirs if _mode(p) & 0o077} == {}
    root = os.path.dirname(session)
    assert os.stat(root).st_uid == os.getuid() and not _mode(root) & 0o022
    arenas = session_shm_files(session)
    assert arenas and all(_mode(p) == 0o600 for p in arenas)


# ---- peers without the cluster key ------------------------------------------------------------------
ATTACK = r'''
import json, os, sys
from ownrun.engine.rpc import oneshot, protocol as P
from ownrun.engine.rpc.transport import pack

head, daemon, session, worker = sys.argv[1:5]
seen = {}
def refused(address, kind, *fields, before=()):
    """Sends `before` (plain messages), then a request, on one keyless connection; returns the
    reason it got no answer (the same connection carried `before`: never delivered either)."""
    try:
        with oneshot.OneShotClient(address, None) as client:
            for header in before:
                client.transport.send(client.address, [pack(header)])
            return "answered: %r" % (client.call(kind, *fields, timeout=10),)
    except oneshot.PeerError as exc:
        return exc.reason
seen["kv_get"] = refused(head, P.KV_GET, "security-test-key")
seen["kv_put"] = refused(head, P.KV_PUT, "planted", b"x", True)
seen["daemon"] = refused(daemon, P.NODE_STATS, before=[
    [P.LEASE_REQUEST, "tcp://127.0.0.1:9", b"x" * 16, 1, [["CPU", 1.0]], False], [P.SHUTDOWN_NODE]])
if worker:
    seen["worker"] = refused(worker, P.NODE_STATS, before=[[P.PUSH_TASK, "tcp://127.0.0.1:9", {}], [P.EXIT_WORKER]])
for what, path in (("session_dir", session), ("key", os.path.join(session, "cluster.key"))):
    try:
        os.listdir(path) if what == "session_dir" else open(path).read()
        seen[what] = "readable"
    except PermissionError:
        seen[what] = "denied"
try:
    from ownrun import engine
    engine.init(address=head.removeprefix("tcp://"))
    seen["init"] = "joined"
except Exception as exc:
    seen["init"] = str(exc)
print(json.dumps(seen))
'''
REFUSED = {"kv_get": "key required", "kv_put": "key required", "daemon": "key required"}


def _worker_address():
    from ownrun.engine import object_ref

    return object_ref.current_worker().address


def _attack(head: str, daemon: str, session: str, *prefix: str, env: dict, worker: str = "") -> dict:
    """Runs ATTACK (a peer without the key) in a process of its own, as `prefix` says."""
    import json
    import subprocess
    import sys

    run = subprocess.run([*prefix, sys.executable, "-c", ATTACK, head, daemon, session, worker], capture_output=True,
                         text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_peer_without_the_key_gets_no_reply_lease_or_shutdown_from_an_embedded_cluster(cluster, tmp_path):
    engine.kv.put("security-test-key", b"a secret")
    node = engine.cluster.nodes()[0]
    env = {**os.environ, "OWNRUN_SESSION_ROOT": str(tmp_path / "stranger")}  # a root without the key
    env.pop("OWNRUN_CLUSTER_KEY", None)
    worker = engine.get(engine.remote(_worker_address).remote(), timeout=60)
    seen = _attack(cluster["address"], node["address"], cluster["session_dir"], env=env, worker=worker)
    assert {k: seen[k] for k in REFUSED} == REFUSED and seen["worker"] == "key required"
    assert "this cluster requires its cluster key" in seen["init"]
    # The node did not obey the SHUTDOWN_NODE, the head's KV is untouched.
    assert engine.get(engine.remote(_square).remote(4), timeout=60) == 16
    assert [n["alive"] for n in engine.cluster.nodes()] == [True]
    assert engine.kv.get("security-test-key") == b"a secret" and engine.kv.get("planted") is None


NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def _can_drop_to_nobody() -> bool:
    import shutil

    return os.geteuid() == 0 and shutil.which("setpriv") is not None


def test_another_user_cannot_read_the_session_run_code_or_read_the_kv_of_an_embedded_cluster(cluster):
    import pytest

    if not _can_drop_to_nobody():
        pytest.skip("needs root and setpriv to run a process as nobody")
    engine.kv.put("security-test-key", b"a secret")
    node = engine.cluster.nodes()[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWNRUN_")}
    env["HOME"] = "/nonexistent"
    seen = _attack(cluster["address"], node["address"], cluster["session_dir"], *NOBODY, env=env)
    assert seen == {**REFUSED, "session_dir": "denied", "key": "denied", "init": seen["init"]}
    assert "this cluster requires its cluster key" in seen["init"]
    assert engine.get(engine.remote(_square).remote(5), timeout=60) == 25
