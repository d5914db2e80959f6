"""How many CPUs this process may use: the one count behind a node's default `num_cpus` and the
driver's decision to spin in `get` (`engine/worker/spin_window.py`).

Owns the count only: the machine's CPUs (`os.cpu_count()`), fewer if the process's CPU affinity
allows fewer (`taskset`, `docker --cpuset-cpus`), fewer still if a cgroup CPU quota on the
process's cgroup or any of its ancestors caps it (`docker --cpus=1.5`, a Kubernetes CPU limit:
cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`). A quota of a fraction
counts as the next whole CPU (1.5 → 2), as Dask counts it: the process may run on two CPUs at
once, for part of the time. Ray's default `num_cpus` honours a container's quota as well.

Why: `os.cpu_count()` is the host's count. In a container capped at 2 CPUs on a 64-CPU host a
node that advertised 64 CPUs would lease 64 workers that share 2 CPUs, and a driver that
compared the machine's runnable tasks with 64 would spin on CPU time its workers need.

The parsers are pure (text in, CPUs out); `usable_cpus()` reads /proc and /sys once per
process and caches the count. Never raises: a file that is missing or unreadable or says
something unexpected adds no limit.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

CGROUP_ROOT = "/sys/fs/cgroup"


def quota_cpus_v2(cpu_max: str) -> float | None:
    """CPUs a cgroup v2 `cpu.max` allows ("150000 100000" → 1.5), None if unlimited ("max ...")
    or unreadable."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def quota_cpus_v1(cfs_quota_us: str, cfs_period_us: str) -> float | None:
    """CPUs a cgroup v1 quota allows (quota / period), None if unlimited (-1) or unreadable."""
    return _ratio(cfs_quota_us.strip(), cfs_period_us.strip())


def _ratio(quota: str, period: str) -> float | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us


def cgroup_dirs(proc_self_cgroup: str) -> list[str]:
    """The directories that may hold a CPU quota on this process, from /proc/self/cgroup's text:
    the process's cgroup and each of its ancestors up to the mount's root, for cgroup v2
    ("0::/a/b") and v1's cpu controller ("4:cpu,cpuacct:/a/b", mounted as cpu,cpuacct, cpu or
    cpuacct,cpu). Inside a cgroup namespace the path is "/" and the root is the container's."""
    dirs: list[str] = []
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            mounts = [CGROUP_ROOT]
        elif "cpu" in controllers.split(","):
            mounts = [f"{CGROUP_ROOT}/{name}" for name in (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu")]
        else:
            continue
        for ancestor in _ancestors(path):
            for mount in dict.fromkeys(mounts):
                dirs.append(mount + ancestor)
    return list(dict.fromkeys(dirs))


def _ancestors(path: str) -> list[str]:
    """"/a/b" → ["/a/b", "/a", ""] (appended to a mount point)."""
    parts = [part for part in path.split("/") if part]
    return ["/" + "/".join(parts[:depth]) if depth else "" for depth in range(len(parts), -1, -1)]


def count(host_cpus: int | None, affinity: int | None, quotas: list[float]) -> int:
    """The usable CPUs: the host's, capped by the affinity mask's and by the smallest quota
    (rounded up); at least 1."""
    cpus = host_cpus or 1
    if affinity:
        cpus = min(cpus, affinity)
    if quotas:
        cpus = min(cpus, math.ceil(min(quotas) - 1e-9))
    return max(1, cpus)


@lru_cache(maxsize=1)
def usable_cpus() -> int:
    """The CPUs this process may use (see the module's docstring). Cached: read once."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return count(os.cpu_count(), affinity, _quotas())


def _quotas() -> list[float]:
    text = _read("/proc/self/cgroup")
    quotas: list[float] = []
    for directory in cgroup_dirs(text or ""):
        cpu_max = _read(f"{directory}/cpu.max")
        if cpu_max is not None:
            quota = quota_cpus_v2(cpu_max)
        else:
            cfs_quota, cfs_period = _read(f"{directory}/cpu.cfs_quota_us"), _read(f"{directory}/cpu.cfs_period_us")
            quota = quota_cpus_v1(cfs_quota, cfs_period) if cfs_quota is not None and cfs_period is not None else None
        if quota is not None:
            quotas.append(quota)
    return quotas


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read(4096)
    except OSError:
        return None
