"""Failures end in a typed error or a recovery, and never leave processes or files behind (§5)."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest
from conftest import process_gone, session_shm_files, wait_for
from ownrun import engine
from ownrun.engine import debug

MIB = 1024 * 1024
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@engine.remote
def record_pid_then_sleep(path: str, seconds: float):
    """First attempt: publishes its pid and sleeps (to be killed). A retry returns at once."""
    if os.path.exists(path):
        return "retried", os.getpid()
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, path)
    time.sleep(seconds)
    return "first attempt", os.getpid()


@engine.remote
def echo(x):
    return x


def _kill_the_worker_that_wrote(path) -> int:
    wait_for(path.exists, timeout=30, message=f"the task wrote {path}")
    pid = int(path.read_text())
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    return pid


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


# ---- shutdown (runs first: it owns its cluster) -------------------------------------------
def test_shutdown_leaves_no_process_and_no_shm_file():
    assert not engine.is_initialized(), "this test starts its own cluster"
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    engine.init(num_cpus=2)
    try:
        session = engine.session_dir()
        big = engine.put(np.ones(4 * MIB // 8))
        assert engine.get(echo.remote(big)).shape == (4 * MIB // 8,)
        cluster_procs = [p for p in me.children(recursive=True) if p.pid not in before]
        assert len(cluster_procs) >= 4  # head, node daemon, zygote, workers
        assert session_shm_files(session)
        del big
    finally:
        engine.shutdown()
    assert not engine.is_initialized()
    assert all(process_gone(p) for p in cluster_procs), [p.pid for p in cluster_procs if not process_gone(p)]
    assert session_shm_files(session) == []


_SUBREAPER_DRIVER = textwrap.dedent("""
    import ctypes, os, psutil
    from ownrun import engine

    PR_SET_CHILD_SUBREAPER = 36  # orphaned descendants come to this process, not to init
    assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0

    @engine.remote
    def pid():
        return os.getpid()

    engine.init(num_cpus=2)
    workers = set(engine.get([pid.remote() for _ in range(8)]))
    engine.shutdown()
    # Nobody here reaps orphans: a worker its zygote left behind stays a zombie child of ours.
    left = [p.pid for p in psutil.Process().children(recursive=True)]
    print(len(workers), left)
""")


def test_shutdown_reaps_the_workers_instead_of_leaving_them_to_init():
    # An init that never reaps (a container's first process) keeps every orphan as a zombie;
    # a subreaper driver that does not reap stands in for it.
    proc = subprocess.run([sys.executable, "-c", _SUBREAPER_DRIVER], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    workers, left = proc.stdout.split(maxsplit=1)
    assert int(workers) >= 1
    assert left.strip() == "[]"


# ---- worker death ------------------------------------------------------------------------------
def test_worker_killed_mid_task_without_retries_raises_worker_crashed(cluster, tmp_path):
    pid_file = tmp_path / "pid"
    ref = record_pid_then_sleep.options(max_retries=0).remote(str(pid_file), 60)
    pid = _kill_the_worker_that_wrote(pid_file)
    with pytest.raises(engine.WorkerCrashedError) as info:
        engine.get(ref, timeout=20)
    message = str(info.value)
    assert "SIGKILL" in message
    assert str(pid) in message
    assert engine.get(echo.remote("still works"), timeout=30) == "still works"


def test_worker_killed_mid_task_is_retried_and_succeeds(cluster, tmp_path):
    pid_file = tmp_path / "pid"
    retries_before = debug.owner_stats()["retries"]
    ref = record_pid_then_sleep.remote(str(pid_file), 60)  # default max_retries=3
    killed = _kill_the_worker_that_wrote(pid_file)
    outcome, pid = engine.get(ref, timeout=30)
    assert outcome == "retried"
    assert pid != killed
    assert debug.owner_stats()["retries"] == retries_before + 1


# ---- driver death -----------------------------------------------------------------------------
DRIVER_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from ownrun import engine

    engine.init(num_cpus=2)

    @engine.remote
    def square(x):
        return x * x

    @engine.remote
    def sleepy(x):
        time.sleep(60)
        return x

    assert engine.get([square.remote(i) for i in range(20)]) == [i * i for i in range(20)]
    big = engine.put(np.ones(1 << 18))
    running = [sleepy.remote(i) for i in range(2)]
    print("READY", engine.session_dir(), flush=True)
    time.sleep(120)
""")


def _run_driver(script: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_driver_killed_with_sigkill_leaves_no_process_and_no_shm_file():
    driver = _run_driver(DRIVER_SCRIPT)
    try:
        line = driver.stdout.readline()
        assert line.startswith("READY "), (line, driver.stderr.read() if driver.poll() else "")
        session = line.split()[1]
        assert f"_{driver.pid}_" in os.path.basename(session)
        cluster = _descendants(driver.pid)
        names = " ".join(" ".join(p.cmdline()) for p in cluster)
        assert "ownrun.engine.head.server" in names
        assert "ownrun.engine.node.daemon" in names
        assert "ownrun.engine.node.zygote" in names
        assert len(cluster) >= 5  # + at least two workers
        assert session_shm_files(session)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        driver.stdout.close()
        driver.stderr.close()
    wait_for(lambda: all(process_gone(p) for p in cluster), timeout=10,
             message="every process of the killed driver's cluster exited")
    wait_for(lambda: not session_shm_files(session), timeout=10,
             message=f"no /dev/shm/ownrun-{os.path.basename(session)}-* file remains")
    assert not glob.glob(os.path.join(session, "spill", "*", "*"))


# ---- worker output --------------------------------------------------------------------------
OUTPUT_SCRIPT = textwrap.dedent("""
    from ownrun import engine
    from ownrun.engine import debug

    engine.init(num_cpus=1)

    @engine.remote
    def say_hello():
        print("hello from task")
        return 1

    assert engine.get(say_hello.remote()) == 1
    debug.node_stats()  # a round trip through the node daemon that forwards worker output
    engine.shutdown()
    print("DONE", flush=True)
""")


def test_worker_stdout_reaches_the_driver_prefixed_with_the_task_name():
    driver = _run_driver(OUTPUT_SCRIPT)
    try:
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, err
    assert "DONE" in out
    lines = [line for line in err.splitlines() if "hello from task" in line]
    assert lines, err
    assert lines[0].startswith("(say_hello")
    assert lines[0].endswith(") hello from task")
