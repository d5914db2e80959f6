"""The warm worker factory: a pre-imported process that forks workers on request.

Owns fast worker start-up (a fork of a process that already imported numpy, cloudpickle,
zmq and the engine costs milliseconds and shares those pages) and reaping its children.
Protocol with the node daemon, one line each way:
  stdin:  `<json {"worker_id": hex}>`   -> fork a worker
          `<json {"import": [modules]}>` -> import modules workers needed (warm later forks)
  stdout: `STARTED <worker_id hex> <pid>` and `EXITED <pid> <returncode>` (negative: signal)

Single-threaded, so fork is safe. Workers inherit its garbage-collector settings
(util/gc_tuning.py; what exists at each fork is frozen). When the daemon closes its stdin (a
node stopping) it kills the workers still running and reaps them before it exits (within
`STOP_REAP_S`): a worker left to exit after its zygote would be re-parented to init, and an
init that does not reap (a container's first process, some VMs') keeps it as a zombie. Killed
with the daemon instead (PR_SET_PDEATHSIG), it reaps nothing and its workers die with it.
Failures: a fork error is reported as `EXITED -1 <errno>` for that worker id.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

STOP_REAP_S = 5.0  # how long a stopping zygote waits for its killed workers to be reaped


def main() -> None:
    from ..util.process_tools import set_pdeathsig

    set_pdeathsig(signal.SIGKILL)
    config = json.loads(sys.argv[1])
    # Pre-import what every worker needs, so forks start warm.
    import cloudpickle  # noqa: F401
    import msgpack  # noqa: F401
    import numpy  # noqa: F401
    import zmq  # noqa: F401

    from .. import api  # noqa: F401 - the public API tasks call (engine.get, remote, ...)
    from ..store import arena_client  # noqa: F401
    from ..util import gc_tuning
    from ..worker import core_worker, executor, worker_main  # noqa: F401

    # The driver's script directory (embedded clusters; api._driver_sys_path), as Ray's workers
    # have it: added once the engine's own modules are imported, so a module of the user's
    # named like one of them does not replace it.
    sys.path[1:1] = [d for d in config["config"].get("driver_sys_path", ()) if d not in sys.path]

    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(write_fd)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    out = os.fdopen(1, "w", buffering=1)
    out.write("READY zygote\n")
    pending = b""
    workers: set[int] = set()
    while True:
        try:
            ready, _, _ = select.select([0, read_fd], [], [])
        except InterruptedError:
            continue
        if read_fd in ready:
            _drain(read_fd)
            workers -= _reap(out)
        if 0 in ready:
            chunk = os.read(0, 65536)
            if not chunk:  # the daemon stops (or is gone): our workers go first, reaped by us
                _stop_workers(workers, read_fd, time.monotonic() + STOP_REAP_S)
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                if "import" in request:
                    _warm(request["import"])
                    continue
                zygote_pid = os.getpid()
                gc_tuning.apply(freeze=True)  # the worker starts with our objects out of its collections
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    os.close(read_fd)
                    os.close(write_fd)
                    set_pdeathsig(signal.SIGKILL, parent=zygote_pid)  # a zygote killed mid-fork too
                    worker_main.run(config, request)
                    os._exit(0)
                workers.add(pid)
                out.write(f"STARTED {request['worker_id']} {pid}\n")


def _warm(modules: list) -> None:
    """Imports modules workers needed, so later forks start with them (best effort)."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - a module that fails here is imported by the worker
            pass


def _drain(read_fd: int) -> None:
    try:
        os.read(read_fd, 4096)
    except BlockingIOError:
        pass


def _reap(out) -> set[int]:
    """Reaps the workers that exited, reporting each on `out` (None: nobody reads). Returns
    their pids."""
    reaped = set()
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.add(pid)
        if out is not None:
            try:
                out.write(f"EXITED {pid} {os.waitstatus_to_exitcode(status)}\n")
            except OSError:  # the daemon closed our stdout: it is stopping
                out = None


def _stop_workers(workers: set[int], read_fd: int, deadline: float) -> None:
    """Kills the workers still running and reaps them, waiting on SIGCHLD (the wake-up fd) until
    all are reaped or `deadline` (a worker stuck in the kernel is left to init)."""
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while True:
        workers -= _reap(None)
        left = deadline - time.monotonic()
        if not workers or left <= 0:
            return
        try:
            ready, _, _ = select.select([read_fd], [], [], left)
        except InterruptedError:
            continue
        if ready:
            _drain(read_fd)


if __name__ == "__main__":
    main()
