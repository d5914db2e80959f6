"""Process primitives for ownrun's daemons and workers (the launcher's side is cluster/processes.py).

Owns: the child's side of the start-up handshake (it prints `READY <address>` on stdout,
then sends its output to its log file), watching a process for exit with a pidfd (works
for any process on this host, child or not, without polling), signalling a pid that may
be gone, and PR_SET_PDEATHSIG so a forked worker dies with its parent.

Failures: none raised for a process that is already gone. Thread-safe.
"""

from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import sys

_PR_SET_PDEATHSIG = 1


def raise_open_file_limit(target: int = 65536) -> int:
    """Raises this process's soft limit of open files toward `target` (within the hard limit),
    as Ray does: every peer connection is a file descriptor, and a node daemon holds two per
    worker, so a default soft limit of 1024 is reached near 500 workers. The processes it starts
    inherit it. Returns the soft limit now (unchanged if the system refuses)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


def interpreter_flags() -> list[str]:
    """This interpreter's -S / -s (no site module, no user site directory): the engine starts
    its processes (head, daemons, zygotes, so workers) with them too, as Ray's workers inherit
    the driver's."""
    return [flag for flag, on in (("-S", sys.flags.no_site), ("-s", sys.flags.no_user_site)) if on]


def set_pdeathsig(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Asks the kernel to send `sig` to this process when its parent exits. With `parent`
    (the pid that forked us), a parent that exited before the request took effect is caught
    too: this process exits at once (else it would outlive it, reparented to init)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except OSError:
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def announce_ready(address: str, log_path: str | None) -> None:
    """Tells the launcher our address, then moves stdout/stderr to our log file."""
    sys.stdout.write(f"READY {address}\n")
    sys.stdout.flush()
    if log_path:
        redirect_output(log_path)


def redirect_output(log_path: str) -> None:
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def pidfd(pid: int) -> int | None:
    """A pidfd for `pid` (readable once it exits), or None if it is already gone."""
    try:
        return os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return None


def watch_parent(transport, parent_pid: int) -> int | None:
    """Adds the parent's pidfd to the transport's poll set; returns the fd."""
    if not parent_pid:
        return None
    fd = pidfd(parent_pid)
    if fd is None:
        os._exit(0)  # parent already gone
    transport.watch_fd(fd, ("parent", parent_pid))
    return fd


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists. Not a pid (0 or negative: `kill` would signal a whole
    process group, and succeed) is not alive."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_pid_exit(pid: int, timeout: float) -> bool:
    """Waits (on a pidfd, no polling loop) until `pid` exits. True if it did."""
    fd = pidfd(pid)
    if fd is None:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
