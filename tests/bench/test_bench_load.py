"""benchmarks/load.py: the CPUs' jiffies from /proc/stat and the wait for a quiet machine."""

from __future__ import annotations

from ownrun.benchmarks.load import cpu_times, wait_until_quiet


def test_cpu_times_count_up_and_idle_is_part_of_the_total():
    total0, idle0, steal0 = cpu_times()
    total1, idle1, steal1 = cpu_times()
    assert total1 >= total0 and idle1 >= idle0 and steal1 >= steal0
    assert 0 <= idle0 <= total0 and 0 <= steal0 <= total0


def test_wait_until_quiet_returns_the_idle_share_once_met_or_at_its_deadline():
    assert 0.0 <= wait_until_quiet(idle_share=0.0, window_s=0.02) <= 1.0  # met at once
    share = wait_until_quiet(idle_share=1.01, window_s=0.02, deadline_s=0.1)  # never met: gives up
    assert 0.0 <= share <= 1.0
