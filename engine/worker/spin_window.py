"""How long a driver's thread blocked in `get` polls its inbox before it sleeps: the spin window.

Owns the decision only (`SpinWindow`, one per core worker) and the reading of the machine's
runnable-task count (`spare_cpu`); the polling itself is the core worker's `_read_until`.

Why: on a VM whose idle vCPUs halt (KVM without guest halt-polling: this project's 2-core
machines have `guest_halt_poll_ns` = 0), a sync round trip paid twice for waking a halted CPU —
the worker's for the push, the caller's for the reply — and the caller's wake-up sat on the
critical path. A caller that polls its socket for a while instead of sleeping keeps its CPU
awake: the reply is read the moment it lands and the worker's `sendmsg` wakes nobody who sleeps
(measured: `get(f.remote())` 114-116 µs instead of 214-220, with the same CPU per call in the
driver, 117-123 µs, and less in the worker, 60-63 µs instead of 93-97).

The rule is the guest haltpoll governor's, in user space. A wait the window caught leaves it as
it is. A wait that slept but ended within `GROW_WITHIN_NS` (twice `MAX_NS`: a round trip that
slept takes longer than one that spun, by the wake-ups it paid for) doubles it (from
`START_NS`): a longer spin may catch the next. A longer wait halves it, to 0 below `START_NS`:
a caller waiting on long tasks stops spinning after three of them (at most `MAX_NS` +
`MAX_NS` / 2 + `START_NS` of CPU spent for nothing), and the next short waits grow it back. The core worker spins only while the
machine has a CPU to spare (`spare_cpu`: runnable tasks, the caller included, at most the CPUs
this process may use — `engine/util/cpus.py`: fewer under an affinity mask or a cgroup quota),
so a spin never takes a CPU from the worker it waits for or from other work: under one busy loop
on 2 CPUs a spinning caller slowed the round trip (195-220 µs against 138-179 asleep).

Pure (no clock, no I/O) except `spare_cpu`, which reads /proc/loadavg (on a system without it,
there is never a CPU to spare: no spinning). Not thread-safe: used by the one reading thread
(core worker `_reader_slot`).
"""

from __future__ import annotations

import os

from ..util.cpus import usable_cpus

START_NS = 50_000  # the window a short wait grows an empty one to
MAX_NS = 200_000  # the longest window (haltpoll's default)


class SpinWindow:
    """The spin window of one process's reading thread, adapted to the waits it sees."""

    def __init__(self, max_ns: int = MAX_NS):
        self.max_ns = max(0, int(max_ns))  # 0: never spin
        self.start_ns = min(START_NS, self.max_ns)
        self.grow_within_ns = 2 * self.max_ns  # a wait that slept and ended within it grows the window
        self.window_ns = self.max_ns  # a fresh driver's first gets are short more often than not

    def waited(self, waited_ns: int) -> None:
        """A wait ended after `waited_ns` (its reply handled): adapts the window for the next."""
        if not self.max_ns or waited_ns <= self.window_ns:
            return  # caught while spinning (or spinning is off)
        if waited_ns <= self.grow_within_ns:
            self.window_ns = min(self.max_ns, max(self.start_ns, self.window_ns * 2))
        else:
            half = self.window_ns // 2
            self.window_ns = half if half >= self.start_ns else 0

    def validate_state(self) -> None:
        assert 0 <= self.start_ns <= self.max_ns
        assert self.window_ns == 0 or self.start_ns <= self.window_ns <= self.max_ns, self.window_ns


_CPUS = usable_cpus()  # the machine's, fewer under an affinity mask or a cgroup CPU quota
_loadavg_fd: int | None = None


def runnable_tasks(loadavg: bytes) -> int:
    """The machine's runnable tasks now, from /proc/loadavg's text ("0.71 0.93 1.18 2/345 1234":
    the fourth field's numerator)."""
    return int(loadavg.split()[3].split(b"/")[0])


def spare_cpu() -> bool:
    """Whether the machine runs no more tasks than it has CPUs (the caller counts as one), so a
    spin would use a CPU nobody else wants. False if /proc/loadavg cannot be read."""
    global _loadavg_fd
    try:
        if _loadavg_fd is None:
            _loadavg_fd = os.open("/proc/loadavg", os.O_RDONLY | os.O_CLOEXEC)
        return runnable_tasks(os.pread(_loadavg_fd, 128, 0)) <= _CPUS
    except (OSError, ValueError, IndexError):
        return False
