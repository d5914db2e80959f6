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
