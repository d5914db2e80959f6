"""glibc malloc settings for the engine's processes: keep freed heap pages instead of
returning them to the kernel after every message.

Owns the one choice of settings and where they go: into the environment of every process
the engine spawns (`child_env`: head, daemons, and through the daemon's zygote every worker,
which inherits the zygote's malloc state), and into the calling process (`apply`, for the
driver, whose allocator is already running) through `mallopt`.

Why: a worker receives and sends 10–100 KiB messages (75 KiB video frames travel inline) all
the time. glibc's defaults give the top of the heap back to the kernel as soon as 128 KiB are
free, so the next message of that size faults fresh pages in again (measured on
`ownrun video --videos 60`: page faults and page clearing were ~10% of the machine's CPU,
system time 27–28%; with these settings 17%, the same peak memory). A process keeps at
most `MALLOC_TRIM_THRESHOLD_` of free heap it could have returned.

A variable the user already set wins (`setdefault`). Not glibc (musl, macOS): `apply` does
nothing; the environment variables are ignored by other allocators. Never raises.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

SETTINGS = {
    "MALLOC_TRIM_THRESHOLD_": 2 << 20,  # give the heap's top back only past 2 MiB free
    "MALLOC_TOP_PAD_": 512 << 10,  # grow the heap 512 KiB beyond each request
    "MALLOC_MMAP_THRESHOLD_": 2 << 20,  # below 2 MiB from the heap, not a fresh mmap each time
}
_MALLOPT_PARAM = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_TOP_PAD_": -2, "MALLOC_MMAP_THRESHOLD_": -3}
_applied = False


def child_env(base: dict | None = None) -> dict:
    """The environment for a process the engine spawns: `base` (default: ours) plus the
    settings the user has not set."""
    env = dict(os.environ if base is None else base)
    for name, value in SETTINGS.items():
        env.setdefault(name, str(value))
    return env


def _libc() -> ctypes.CDLL:
    """glibc, by its soname: `ctypes.util.find_library` would run `ldconfig -p` in a child
    process (~10 ms in every engine process at start); only a libc named otherwise needs it."""
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return ctypes.CDLL(ctypes.util.find_library("c"))


def apply() -> bool:
    """Sets the same values in this process with mallopt (once; a variable the user set is
    left to glibc, which read it at start). Returns whether glibc took them."""
    global _applied
    if _applied:
        return True
    try:
        libc = _libc()
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = True
    for name, value in SETTINGS.items():
        if name not in os.environ:
            ok = bool(mallopt(_MALLOPT_PARAM[name], value)) and ok
    _applied = True
    return ok
