"""The session-end leak check counts this test run's store files only (conftest._StoreFiles):
not those of another user's or a concurrent run's clusters, which share /dev/shm and the
naming scheme."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import conftest
import psutil
import pytest


def _dead_pid() -> int:
    pid = 4_000_000
    while psutil.pid_exists(pid):
        pid -= 1
    return pid


def _session(creator: int) -> str:
    return f"session_2026-01-01_00-00-00_{creator}_{uuid.uuid4().hex[:6]}"


@pytest.fixture
def files():
    """Makes /dev/shm files (removed after the test) and processes (ended after the test)."""
    made, procs = [], []

    def shm(name: str) -> str:
        path = f"/dev/shm/{name}"
        open(path, "w").close()
        made.append(path)
        return path

    def daemon_of(session: str, env: dict) -> None:
        """A process named like a node daemon of `session` (its cmdline names the session dir)."""
        procs.append(subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()",
                                       "--session-dir", f"/tmp/root/{session}"], stdin=subprocess.PIPE, env=env))

    yield shm, daemon_of
    for proc in procs:
        proc.kill()
        proc.wait()
    for path in made:
        os.unlink(path)


def test_a_session_whose_processes_carry_this_runs_mark_is_ours(files):
    shm, daemon_of = files
    check = conftest._StoreFiles()
    session = _session(_dead_pid())  # its driver exited; its daemon lives on
    daemon_of(session, dict(os.environ))
    assert check.ours(shm(f"ownrun-{session}-node1-abc123"))
    assert check.ours(shm(f"ownrun-{_session(os.getpid())}-node1-abc123"))  # made by this process


def test_another_runs_session_is_not_ours_even_once_its_driver_exited(files):
    shm, daemon_of = files
    check = conftest._StoreFiles()
    other = _session(_dead_pid())
    daemon_of(other, {**os.environ, conftest.RUN_ENV: "another-run"})
    assert not check.ours(shm(f"ownrun-{other}-node1-abc123"))
    gone = _session(_dead_pid())  # every process of it gone: which run made it cannot be told
    assert not check.ours(shm(f"ownrun-{gone}-node1-abc123"))


def test_unit_test_stores_are_ours_only_when_made_by_this_process(files):
    shm, _ = files
    check = conftest._StoreFiles()
    assert check.ours(shm(conftest.unit_store_name()))
    assert not check.ours(shm(f"ownrun-test-{_dead_pid()}-{uuid.uuid4().hex}"))
    assert not check.ours(shm(f"ownrun-test-{uuid.uuid4().hex}"))  # another version's naming
    assert not check.ours(shm(f"ownrun-elsewhere-{uuid.uuid4().hex}"))


def test_files_there_before_the_run_are_never_ours(files):
    shm, _ = files
    before = shm(f"ownrun-{_session(os.getpid())}-node1-abc123")
    assert not conftest._StoreFiles().ours(before)
