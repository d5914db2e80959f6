"""engine/cluster/: the import graph, the session layout and the clean-up helpers (no cluster runs)."""

from __future__ import annotations

import ast
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest
from ownrun.engine import errors
from ownrun.engine.cluster import paths, processes, state

from tests.conftest import process_gone, wait_for

ENGINE = pathlib.Path(__file__).resolve().parents[2] / "engine"


def _imports(path: pathlib.Path, modules: set[str]) -> set[str]:
    """Engine modules `path` imports (module level or inside functions), as dotted names under
    engine: `from . import x` counts as importing the module x, not its package."""
    module = ".".join(path.relative_to(ENGINE).with_suffix("").parts)
    package = module.rpartition(".")[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".") if package else []
            base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
            target = ".".join([*base, node.module] if node.module else base)
            submodules = {f"{target}.{a.name}".lstrip(".") for a in node.names} & modules
            found |= submodules or {target}
    return found


def test_the_cluster_package_imports_nothing_that_imports_it_back():
    modules = {".".join(p.relative_to(ENGINE).with_suffix("").parts).removesuffix(".__init__"): p
               for p in ENGINE.rglob("*.py")}
    graph = {m: {i for i in _imports(p, set(modules)) if i in modules and i != m} for m, p in modules.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo += graph.get(m, ())
        return False

    ours = [m for m in modules if m == "cluster" or m.startswith("cluster.")]
    assert len(ours) >= 7
    cycles = [m for m in ours if reaches(m, m)]
    assert not cycles, f"import cycles through {cycles}"
    assert not any(reaches(m, "api") for m in ours), "engine/cluster must not import engine.api"


def test_engine_cluster_keeps_its_public_names():
    from ownrun import engine
    from ownrun.engine import cluster

    assert engine.cluster is cluster and engine.nodes is cluster.nodes
    for name in ("nodes", "add_node", "kill_node", "node_ids"):
        assert callable(getattr(cluster, name))


def test_add_node_without_an_embedded_cluster_is_a_cluster_error():
    from ownrun.engine import cluster

    with pytest.raises(errors.ClusterError, match="no embedded cluster"):
        cluster.kill_node("node0")


def test_session_layout_follows_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    session = paths.new_session_dir()
    assert os.path.dirname(session) == str(tmp_path) and os.path.isdir(os.path.join(session, "logs"))
    assert paths.session_dirs() == [session]
    assert paths.state_file() == str(tmp_path / "current_cluster.json")
    assert paths.node_log(session, "node0-x") == os.path.join(session, "logs", "node-node0-x.log")
    assert paths.shm_glob(session, "n1") == f"/dev/shm/ownrun-{os.path.basename(session)}-n1"


def test_state_files_round_trip_and_read_empty_when_missing_or_malformed(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    assert state.read() == {}
    with state.locked() as current:
        assert current == {}
        state.save({"head_address": "tcp://127.0.0.1:1", "nodes": {}})
    assert state.read()["head_address"] == "tcp://127.0.0.1:1"
    state.remove()
    assert state.read() == {}
    session = paths.new_session_dir()
    state.write_session(session, [1, 2], "tcp://127.0.0.1:2", driver_pid=3)
    assert state.read_session(session) == {"pids": [1, 2], "head_address": "tcp://127.0.0.1:2", "driver_pid": 3}
    pathlib.Path(paths.session_file(session)).write_text("[not a dict")
    assert state.read_session(session) == {}


def test_stale_sessions_lose_their_store_files_and_live_ones_keep_them(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    dead, live = paths.new_session_dir(), paths.new_session_dir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state.write_session(dead, [gone.pid], None)
    state.write_session(live, [os.getpid()], None)
    files = []
    for session in (dead, live):
        shm = paths.shm_glob(session, "node0-test")
        pathlib.Path(shm).write_bytes(b"x")
        files.append(shm)
        os.makedirs(paths.spill_dir(session, "node0-test"))
    try:
        assert processes.cleanup_stale_sessions() == [files[0]]
        assert not os.path.exists(files[0]) and not os.path.exists(paths.spill_dir(dead))
        assert os.path.exists(files[1]) and os.path.exists(paths.spill_dir(live, "node0-test"))
    finally:
        for shm in files:
            if os.path.exists(shm):
                os.unlink(shm)


def test_a_daemon_that_does_not_start_raises_node_start_error_quoting_its_log(tmp_path):
    log = str(tmp_path / "logs" / "thing.log")
    with pytest.raises(errors.NodeStartError) as info:
        processes.start("ownrun.engine.no_such_module", [], log, "the test daemon", timeout=60)
    first = str(info.value).splitlines()[0]
    assert first.startswith("the test daemon did not start (exited with code 1 during start-up)")
    assert "No module named ownrun.engine.no_such_module" in first and log in first
    assert isinstance(info.value, errors.EngineError) and info.value.log_path == log


def test_a_daemon_that_prints_something_else_is_killed_and_named(tmp_path):
    log = str(tmp_path / "thing.log")
    proc = processes.spawn("this", [], log)  # `python -m this` prints the Zen of Python
    with pytest.raises(errors.NodeStartError, match="the zen daemon did not start .printed 'The Zen"):
        processes.wait_ready(proc, "the zen daemon", log, timeout=60)
    assert proc.returncode is not None


def test_kill_tree_kills_a_process_and_its_children():
    psutil = pytest.importorskip("psutil")
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
           "print('up', flush=True); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert parent.stdout.readline() == b"up\n"
    child = psutil.Process(parent.pid).children()[0]
    processes.kill_tree(parent.pid, wait=0)
    assert parent.wait(10) == -9
    wait_for(lambda: process_gone(child), message="the child is killed with its parent")


def test_a_daemon_that_misses_its_deadline_raises_node_start_error_and_is_killed(tmp_path):
    log = str(tmp_path / "slow.log")
    proc = processes.spawn("timeit", ["-n1", "-r1", "import time; time.sleep(60)"], log)  # silent for 60 s
    with pytest.raises(errors.NodeStartError, match="the slow daemon did not start .no READY line within") as info:
        processes.wait_ready(proc, "the slow daemon", log, timeout=0.2)
    assert isinstance(info.value, errors.EngineError) and proc.returncode is not None


def test_a_session_still_starting_is_not_cleaned_up_by_another_process(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    starting = paths.new_session_dir()  # no process list yet: its head is starting
    for _ in range(processes.KEEP_OLD_SESSIONS + 2):  # newer sessions push it past the kept ones
        newer = paths.new_session_dir()
        state.write_session(newer, [os.getpid()], None)
    os.utime(starting, (1, 1))  # the oldest by modification time
    processes.cleanup_stale_sessions()
    assert os.path.isdir(starting) is False  # an hour-old dir without a process list is stale
    young = paths.new_session_dir()
    for _ in range(processes.KEEP_OLD_SESSIONS + 2):
        state.write_session(paths.new_session_dir(), [os.getpid()], None)
    os.utime(young, (time.time() - 5, time.time() - 5))
    processes.cleanup_stale_sessions()
    assert os.path.isdir(young)


class _FakeDaemon:
    """A started daemon for LocalCluster.start: runs until terminated, killed or waited for with
    a timeout (stop's wait for the daemons it asked to exit)."""

    def __init__(self, module: str):
        import threading

        self.module, self.pid, self.returncode = module, 0, None
        self._exited = threading.Event()

    def wait(self, timeout=None):
        if timeout is None:  # the head's supervisor: until the cluster stops it
            self._exited.wait()
        self.returncode = 0  # LocalCluster.stop waiting for a daemon to exit: it has
        return 0

    def poll(self):
        return 0 if self._exited.is_set() else None

    def terminate(self):
        self._exited.set()

    kill = terminate


def test_the_nodes_of_an_embedded_cluster_start_beside_its_head_on_unix_sockets(monkeypatch):
    from ownrun.engine.cluster import embedded

    events = []

    def spawn(module, args, log_path, detached=False):
        events.append(("spawn", module.rsplit(".", 2)[-2]))
        return _FakeDaemon(module)

    def wait_ready(proc, name, log_path, timeout):
        events.append(("ready", proc.module.rsplit(".", 2)[-2]))
        sockets = paths.socket_dir(cluster.session_dir)
        return f"ipc://{sockets}/1" if proc.module.endswith("head.server") else f"ipc://{sockets}/node"

    monkeypatch.setattr(processes, "spawn", spawn)
    monkeypatch.setattr(processes, "wait_ready", wait_ready)
    monkeypatch.setattr(embedded.LocalCluster, "_wait_nodes_known", lambda self, timeout: None)  # no real head
    cluster = embedded.LocalCluster(1.0, {}, 1 << 20, {}, num_nodes=2)
    cluster.start()
    try:
        if cluster.curve is not None:
            pytest.skip("the session path is too long for unix sockets: the head's tcp port comes first")
        assert events == [("spawn", "head"), ("spawn", "node"), ("spawn", "node"),
                          ("ready", "head"), ("ready", "node"), ("ready", "node")]
        assert cluster.head_address == f"ipc://{paths.socket_dir(cluster.session_dir)}/1"
    finally:
        cluster.stop(None)
        shutil.rmtree(cluster.session_dir)  # its fake daemons' pid 0 would look alive to later sweeps
