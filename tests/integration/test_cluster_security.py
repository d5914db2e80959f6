"""A cluster's files and sockets are its user's only (§11.1): private session files; an
embedded cluster's peers reach each other through unix sockets inside the private session
dir, or (when that path is too long for a unix socket) through loopback tcp with the
cluster key; a peer without access gets no reply, runs no code, and no control message of
its is obeyed. The same checks on an `ownrun start` cluster: tests/cli/test_cluster_security_cli.py."""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from ownrun import engine
from ownrun.engine.cluster import paths

from tests.conftest import session_shm_files


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _square(x):
    return x * x


def _worker_address():
    from ownrun.engine import object_ref

    return object_ref.current_worker().address


@pytest.fixture(scope="module", params=["ipc", "tcp"])
def embedded(request, tmp_path_factory):
    """An embedded cluster on unix sockets (the default), or on tcp with the key (a session
    root whose path is too long for a unix socket)."""
    if request.param == "tcp":
        root = tmp_path_factory.mktemp("long") / ("r" * 80)
        os.environ[paths.ROOT_ENV] = str(root)
    try:
        info = engine.init(num_cpus=1)
    finally:
        os.environ.pop(paths.ROOT_ENV, None)
    try:
        engine.kv.put("security-test-key", b"a secret")
        worker = engine.get(engine.remote(_worker_address).remote(), timeout=60)
        yield {**info, "kind": request.param, "daemon": engine.nodes()[0]["address"], "worker": worker}
    finally:
        engine.shutdown()


def test_session_files_logs_and_head_tables_are_private(embedded):
    session = embedded["session_dir"]
    assert engine.get(engine.remote(_square).remote(3), timeout=60) == 9  # a worker writes its log
    files = [p for p in glob.glob(os.path.join(session, "**"), recursive=True) if os.path.isfile(p)]
    names = {os.path.relpath(p, session) for p in files}
    assert {"session.json", "head.sqlite3", "head.sqlite3-wal", "logs/head.log"} <= names, names
    assert ("cluster.key" in names) == (embedded["kind"] == "tcp")
    assert any(n.startswith("logs/worker-") for n in names) and any(n.startswith("logs/node-") for n in names)
    assert {p: oct(_mode(p)) for p in files if _mode(p) & 0o077} == {}
    dirs = [session, *(p for p in glob.glob(os.path.join(session, "**"), recursive=True) if os.path.isdir(p))]
    assert {p: oct(_mode(p)) for p in dirs if _mode(p) & 0o077} == {}
    root = os.path.dirname(session)
    assert os.stat(root).st_uid == os.getuid() and not _mode(root) & 0o022
    arenas = session_shm_files(session)
    assert arenas and all(_mode(p) == 0o600 for p in arenas)


def test_every_process_listens_inside_the_private_session_dir_or_holds_the_key(embedded):
    listening = [embedded["address"], embedded["daemon"], embedded["worker"]]
    if embedded["kind"] == "ipc":
        sockets = f"ipc://{paths.socket_dir(embedded['session_dir'])}/"
        assert all(a.startswith(sockets) for a in listening), listening
    else:
        assert all(a.startswith("tcp://127.0.0.1:") for a in listening), listening


# ---- peers without access ---------------------------------------------------------------------------
ATTACK = r'''
import json, os, socket, sys
from ownrun.engine.rpc import oneshot, protocol as P
from ownrun.engine.rpc.transport import pack

head, daemon, session, worker = sys.argv[1:5]
seen = {}
def refused(address, kind, *fields, before=()):
    """Sends `before` (plain messages), then a request, on one keyless connection; returns the
    reason it got no answer (the same connection carried `before`: never delivered either).
    A unix socket: whether we may connect to it at all."""
    if address.startswith("ipc://"):
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(address[6:])
                return "connected"
            except PermissionError:
                return "denied"
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
    except FileNotFoundError:
        seen[what] = "missing"
if head.startswith("tcp://"):
    try:
        from ownrun import engine
        engine.init(address=head.removeprefix("tcp://"))
        seen["init"] = "joined"
    except Exception as exc:
        seen["init"] = str(exc)
print(json.dumps(seen))
'''
REFUSED = {"kv_get": "key required", "kv_put": "key required", "daemon": "key required"}
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def _attack(head: str, daemon: str, session: str, *prefix: str, env: dict, worker: str = "") -> dict:
    """Runs ATTACK (a peer without access) in a process of its own, as `prefix` says."""
    run = subprocess.run([*prefix, sys.executable, "-c", ATTACK, head, daemon, session, worker],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


@functools.cache
def _can_drop_to_nobody() -> bool:
    """Root, setpriv, and an interpreter with ownrun that `nobody` may run (a venv inside a
    0700 directory is not: .ci/run makes its own readable)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run([*NOBODY, sys.executable, "-c", "import ownrun.engine"],
                           capture_output=True, timeout=120, env={"HOME": "/nonexistent"})
    return probe.returncode == 0


def _still_serving() -> None:
    """The node did not obey a stranger's SHUTDOWN_NODE or EXIT_WORKER; the KV is untouched."""
    assert engine.get(engine.remote(_square).remote(4), timeout=60) == 16
    assert [n["alive"] for n in engine.cluster.nodes()] == [True]
    assert engine.kv.get("security-test-key") == b"a secret" and engine.kv.get("planted") is None


def test_a_peer_without_the_key_gets_no_reply_lease_or_shutdown_from_a_tcp_embedded_cluster(embedded, tmp_path):
    if embedded["kind"] != "tcp":
        pytest.skip("unix sockets: this user's own processes may connect (the trust boundary is the user)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWNRUN_")}
    env[paths.ROOT_ENV] = str(tmp_path / "stranger")  # a root without the key
    seen = _attack(embedded["address"], embedded["daemon"], embedded["session_dir"], env=env,
                   worker=embedded["worker"])
    assert {k: seen[k] for k in REFUSED} == REFUSED and seen["worker"] == "key required"
    assert "this cluster requires its cluster key" in seen["init"]
    _still_serving()


def test_another_user_cannot_connect_read_the_session_or_run_code_on_an_embedded_cluster(embedded):
    if not _can_drop_to_nobody():
        pytest.skip("needs root and setpriv to run a process as nobody")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWNRUN_")}
    env["HOME"] = "/nonexistent"
    seen = _attack(embedded["address"], embedded["daemon"], embedded["session_dir"], *NOBODY, env=env,
                   worker=embedded["worker"])
    no = "denied" if embedded["kind"] == "ipc" else "key required"
    expected = {"kv_get": no, "kv_put": no, "daemon": no, "worker": no, "session_dir": "denied", "key": "denied"}
    assert {k: v for k, v in seen.items() if k != "init"} == expected
    if embedded["kind"] == "tcp":
        assert "this cluster requires its cluster key" in seen["init"]
    _still_serving()
