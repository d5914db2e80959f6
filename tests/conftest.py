"""Shared fixtures: one embedded cluster per integration module, condition waits, leak checks.

* `cluster`: `engine.init(num_cpus=2)` once per module, `engine.shutdown()` after it.
* `wait_for(predicate, timeout)`: polls a condition with short waits until a deadline; the
  one place a tiny sleep loop is allowed (reference release is asynchronous).
* `returns_within(call, timeout)`: a call's result (or its exception), failing the test if it
  has not returned by a (generous) deadline: "never a hang" without timing how fast it was.
* At session end: no child process of the test process and no `/dev/shm/ownrun-*` file
  of a session this test run started may remain (`_StoreFiles`: other users' and concurrent
  runs' files are not ours to judge).
* `unit_store_name()`: the file name a unit test gives a store it makes itself.

Test dependencies: pytest, pytest-timeout, numpy, psutil.
"""

from __future__ import annotations

import glob
import os
import re
import time
import uuid

import cloudpickle
import psutil
import pytest

SHM_GLOB = "/dev/shm/ownrun-*"
_SESSION_FILE = re.compile(r"^ownrun-(session_[^_]+_[^_]+_(\d+)_[0-9a-f]+)-")  # session name, its creator's pid
_TEST_STORE_FILE = re.compile(r"^ownrun-test-(\d+)-")  # unit_store_name(): the pid of the test process
RUN_ENV = "OWNRUN_TEST_RUN"  # marks every process this test run starts (they inherit it)
if not os.environ.get(RUN_ENV, "").startswith(f"{os.getpid()}-"):  # once per run (a second import
    os.environ[RUN_ENV] = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # as tests.conftest keeps it); a
RUN_ID = os.environ[RUN_ENV]  # mark inherited from an enclosing test run is replaced: this run is its own


def unit_store_name() -> str:
    """A store file name for a unit test that makes its own ObjectStore (the leak check knows
    it for this run's by the pid)."""
    return f"ownrun-test-{os.getpid()}-{uuid.uuid4().hex}"


def pytest_collection_modifyitems(items):
    """Test modules are not importable in workers: ship their functions by value."""
    for module in {item.module for item in items if getattr(item, "module", None) is not None}:
        cloudpickle.register_pickle_by_value(module)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = ""):
    """Returns the first truthy value of `predicate()`; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"condition not met within {timeout}s: {message or predicate}")
        time.sleep(interval)


def returns_within(call, timeout: float = 60.0, message: str = ""):
    """Runs `call()` in a daemon thread: returns its result or re-raises its exception; fails
    the test if it is still running after `timeout` s (the thread is then left behind)."""
    import threading

    outcome: list = []

    def run():
        try:
            outcome.append((True, call()))
        except BaseException as error:  # noqa: BLE001 - handed to the test below
            outcome.append((False, error))

    thread = threading.Thread(target=run, daemon=True, name="returns_within")
    thread.start()
    thread.join(timeout)
    if not outcome:
        pytest.fail(f"call did not return within {timeout}s: {message or call}")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def shm_files() -> set[str]:
    return set(glob.glob(SHM_GLOB))


def session_shm_files(session_dir: str) -> list[str]:
    return glob.glob(f"/dev/shm/ownrun-{os.path.basename(session_dir)}-*")


class _StoreFiles:
    """Which `/dev/shm/ownrun-*` files this test run made, so that the leak check counts
    those and no other user's or concurrent run's (same names, same directory).

    A unit test's own store (`unit_store_name()`) is ours if it names this process. A node's
    store is named for its session (`ownrun-<session>-<node id>`), and a session is ours if
    this process created it, or if one of its live processes — the creator named in the
    session's name, or a head or daemon started with `--session-dir .../<session>` — carries
    this run's mark in its environment (every process this run starts inherits it, detached
    `ownrun start` clusters and subprocess drivers included; another user's processes cannot
    be read, so they are not ours). A session is judged when its files are first seen (after
    each test, and at the end), while its processes still live; one whose processes had all
    died by then cannot be told apart from a concurrent run's, and is not counted.
    """

    def __init__(self):
        self.started = shm_files()  # there before this run: never ours
        self.sessions: dict[str, bool] = {}  # session name -> ours

    def note_new(self) -> None:
        """Judges the sessions of store files that appeared since the last look."""
        for path in shm_files() - self.started:
            match = _SESSION_FILE.match(os.path.basename(path))
            if match is not None and match.group(1) not in self.sessions:
                verdict = _session_is_ours(match.group(1), int(match.group(2)))
                if verdict is not None:
                    self.sessions[match.group(1)] = verdict

    def ours(self, path: str) -> bool:
        if path in self.started:
            return False
        name = os.path.basename(path)
        test_store = _TEST_STORE_FILE.match(name)
        if test_store is not None:
            return int(test_store.group(1)) == os.getpid()
        match = _SESSION_FILE.match(name)
        if match is None:
            return False  # not a name this run's code gives (e.g. another version's unit tests)
        if match.group(1) not in self.sessions:
            self.note_new()
        return self.sessions.get(match.group(1), False)


def _session_is_ours(session: str, creator: int) -> bool | None:
    """True: made by this run; False: by another; None: none of its processes lives to tell."""
    if creator == os.getpid():
        return True
    seen = False
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or ()
        if proc.info["pid"] != creator and not any(session in arg for arg in cmdline):
            continue
        try:
            environ = proc.environ()
        except psutil.AccessDenied:  # another user's process
            seen = True
            continue
        except psutil.Error:  # exited meanwhile
            continue
        seen = True
        if environ.get(RUN_ENV) == RUN_ID:
            return True
    return False if seen else None


_STORE_FILES = _StoreFiles()


@pytest.fixture(autouse=True)
def _judge_new_store_files():
    """After each test: judge the sessions whose store files appeared during it."""
    yield
    _STORE_FILES.note_new()


@pytest.fixture(scope="session", autouse=True)
def no_leftovers_at_session_end():
    yield
    me = psutil.Process()
    children = wait_for_quiet(me)
    leaked_shm = _wait_for_shm_cleanup()
    assert not children, f"child processes left running: {children}"
    assert not leaked_shm, f"/dev/shm files left behind: {leaked_shm}"
    from ownrun.engine.cluster.embedded import LocalCluster
    from ownrun.engine.worker.core_worker import CoreWorker

    assert LocalCluster.handler_errors_seen == 0, \
        f"{LocalCluster.handler_errors_seen} message handler(s) raised in the processes of the " \
        f"embedded clusters (head, daemons, workers): grep their logs for 'ownrun-handler-error:'"
    assert LocalCluster.malformed_seen == 0, \
        f"processes of the embedded clusters dropped malformed messages ({LocalCluster.malformed_seen} " \
        f"log lines): a sender and rpc/schema.py disagree; grep the logs for 'ownrun-malformed-message:'"
    assert LocalCluster.unauthorized_seen == 0, \
        f"processes of the embedded clusters refused notices ({LocalCluster.unauthorized_seen} log lines): " \
        f"a notice lacked its receiver's token (rpc/notices.py); grep the logs for 'ownrun-unauthorized-message:'"

    assert CoreWorker.handler_errors_in_process == 0, \
        f"{CoreWorker.handler_errors_in_process} message handler(s) raised in the driver's I/O loop (see the log)"
    assert CoreWorker.malformed_in_process == 0, \
        f"{CoreWorker.malformed_in_process} malformed message(s) reached the driver (see the log)"
    assert CoreWorker.unauthorized_in_process == 0, \
        f"{CoreWorker.unauthorized_in_process} notice(s) without the driver's token reached it (see the log)"


def _wait_for_shm_cleanup(timeout: float = 15.0) -> list[str]:
    """Store files this run is responsible for, after giving their daemons `timeout` s to remove
    them: the daemon of a driver a test SIGKILLed is no child of ours (it was re-parented when
    its driver died), so its clean-up may still be under way when the session ends."""
    deadline = time.monotonic() + timeout
    while True:
        leaked = sorted(p for p in shm_files() if _STORE_FILES.ours(p))
        if not leaked or time.monotonic() >= deadline:
            return leaked
        time.sleep(0.1)


def process_gone(proc: psutil.Process | int) -> bool:
    """The process exited (or is a zombie awaiting its parent's reap); never raises for a
    process that vanishes while it is being inspected."""
    try:
        if isinstance(proc, int):
            proc = psutil.Process(proc)
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _marked_by_this_run(exclude: set[int]) -> list:
    """Processes carrying this run's mark that are not our descendants: orphans re-parented
    to init (e.g. a worker whose zygote died while forking it) escape `children()`."""
    found = []
    for other in psutil.process_iter(["pid"]):
        if other.info["pid"] in exclude:
            continue
        try:
            if other.environ().get(RUN_ENV) == RUN_ID and other.status() != psutil.STATUS_ZOMBIE:
                found.append(other)
        except psutil.Error:  # another user's, or exited meanwhile
            pass
    return found


def wait_for_quiet(proc: psutil.Process, timeout: float = 10.0) -> list:
    """The test process's live descendants and this run's orphans, after giving exiting ones
    `timeout` s to go."""
    deadline = time.monotonic() + timeout
    mine = {proc.pid, *(p.pid for p in proc.parents())}
    while True:
        alive = []
        children = proc.children(recursive=True)
        for child in children + _marked_by_this_run(mine | {c.pid for c in children}):
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{child.pid} {' '.join(child.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


NODE_DEATH_TIMEOUT = 2.0  # the default is 10 s; short for tests that stall nodes (a killed one is seen at once)


@pytest.fixture
def head_node():
    """A fresh cluster: the driver's node (1 CPU, no custom resources). Shut down after the test."""
    from ownrun import engine

    assert not engine.is_initialized(), "this test starts its own cluster"
    info = engine.init(num_cpus=1, num_nodes=1, node_death_timeout=NODE_DEATH_TIMEOUT)
    try:
        yield info["node_id"]
    finally:
        engine.shutdown()


@pytest.fixture
def daemon_calls(monkeypatch):
    """The kinds of the requests the driver's core worker sends its daemon and waits for."""
    from ownrun.engine import object_ref

    core = object_ref.current_worker()
    kinds: list[int] = []
    call = core.call

    def counting(address, kind, *fields, **kw):
        kinds.append(kind)
        return call(address, kind, *fields, **kw)

    monkeypatch.setattr(core, "call", counting)
    return kinds


@pytest.fixture(scope="module")
def cluster():
    from ownrun import engine

    info = engine.init(num_cpus=2)
    try:
        yield info
    finally:
        engine.shutdown()



def add_node_ready(num_cpus: float = 1, resources: dict | None = None, timeout: float = 30.0) -> str:
    """`cluster.add_node`, then waits until the driver's node daemon places tasks on the new node.

    `add_node` returns once the head knows the node; node daemons learn it from their next
    heartbeat reply. A private marker resource on the new node tells when that has happened.
    """
    import uuid

    from ownrun import engine
    from ownrun.engine import cluster

    def marker_task():
        return engine.get_runtime_context().node_id

    marker = f"marker-{uuid.uuid4().hex[:8]}"
    probe = engine.remote(num_cpus=0, resources={marker: 1})(marker_task)
    node_id = cluster.add_node(num_cpus=num_cpus, resources={**(resources or {}), marker: 1})

    def placed() -> bool:
        try:
            return engine.get(probe.remote(), timeout=timeout) == node_id
        except engine.GetTimeoutError:
            raise
        except engine.EngineError:  # "no node can satisfy": not in the daemon's view yet
            return False

    wait_for(placed, timeout=timeout, message=f"tasks can be placed on the new node {node_id}")
    return node_id
