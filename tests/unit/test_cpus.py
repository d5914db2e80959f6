"""The usable-CPU count (engine/util/cpus.py): cgroup quotas parsed, the directories that may
hold one, and the count capped by affinity and quota."""

from __future__ import annotations

from ownrun.engine.util import cpus


def test_cgroup_v2_cpu_max():
    assert cpus.quota_cpus_v2("150000 100000\n") == 1.5
    assert cpus.quota_cpus_v2("max 100000\n") is None
    assert cpus.quota_cpus_v2("") is None
    assert cpus.quota_cpus_v2("garbage") is None
    assert cpus.quota_cpus_v2("0 100000") is None


def test_cgroup_v1_quota():
    assert cpus.quota_cpus_v1("200000\n", "100000\n") == 2.0
    assert cpus.quota_cpus_v1("-1\n", "100000\n") is None
    assert cpus.quota_cpus_v1("x", "100000") is None
    assert cpus.quota_cpus_v1("50000", "0") is None


def test_the_process_s_cgroup_and_its_ancestors_are_searched():
    v2 = cpus.cgroup_dirs("0::/kubepods/pod1/c1\n")
    assert v2 == ["/sys/fs/cgroup/kubepods/pod1/c1", "/sys/fs/cgroup/kubepods/pod1",
                  "/sys/fs/cgroup/kubepods", "/sys/fs/cgroup"]
    v1 = cpus.cgroup_dirs("4:memory:/m\n3:cpu,cpuacct:/docker/abc\n2:cpuset:/\n")
    assert v1[0] == "/sys/fs/cgroup/cpu,cpuacct/docker/abc"
    assert "/sys/fs/cgroup/cpu/docker" in v1 and "/sys/fs/cgroup/cpu,cpuacct" in v1
    assert not any("memory" in d or "cpuset" in d for d in v1)
    assert len(v1) == len(set(v1))
    assert cpus.cgroup_dirs("0::/\n") == ["/sys/fs/cgroup"]  # a cgroup namespace: the container's root
    assert cpus.cgroup_dirs("not a cgroup line\n") == []


def test_count_takes_the_smallest_limit_and_rounds_a_quota_up():
    assert cpus.count(64, 64, []) == 64
    assert cpus.count(64, 4, []) == 4  # taskset / --cpuset-cpus
    assert cpus.count(64, 64, [1.5]) == 2  # --cpus=1.5
    assert cpus.count(64, 64, [3.0, 0.5]) == 1  # an ancestor's smaller quota wins; at least 1
    assert cpus.count(2, 64, [8.0]) == 2  # a quota above the machine adds nothing
    assert cpus.count(None, None, []) == 1


def test_usable_cpus_reads_this_process(monkeypatch):
    cpus.usable_cpus.cache_clear()
    try:
        monkeypatch.setattr(cpus, "_quotas", lambda: [0.25])
        assert cpus.usable_cpus() == 1
    finally:
        cpus.usable_cpus.cache_clear()
    import os

    assert 1 <= cpus.usable_cpus() <= len(os.sched_getaffinity(0))
