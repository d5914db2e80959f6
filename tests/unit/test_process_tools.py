"""process_tools: a child forked by a parent that exits before the child asks to die with it
must not outlive it (a zygote SIGKILLed mid-fork left idle workers re-parented to init); pid 0
is no live process."""

from __future__ import annotations

import os

from ownrun.engine.util import process_tools


def _fork_and_bind(parent: int) -> int:
    """Exit code of a child that binds itself to `parent` and would otherwise exit 0."""
    pid = os.fork()
    if pid == 0:
        try:
            process_tools.set_pdeathsig(parent=parent)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_child_whose_parent_is_already_gone_exits_instead_of_running_orphaned():
    not_our_parent = os.getppid()  # the child's parent is this process, not this one's parent
    assert _fork_and_bind(not_our_parent) == 1


def test_a_child_whose_parent_is_alive_runs_on():
    assert _fork_and_bind(os.getpid()) == 0


def test_pid_zero_or_negative_is_not_a_live_process():
    # kill(0, 0) signals our own process group and succeeds: a state file naming pid 0 must not
    # make its session look alive forever.
    assert not process_tools.pid_alive(0)
    assert not process_tools.pid_alive(-1)
    assert process_tools.pid_alive(os.getpid())


def test_the_open_file_limit_is_raised_toward_the_target_within_the_hard_limit():
    import resource
    import subprocess
    import sys

    script = (
        "import resource\n"
        "from ownrun.engine.util.process_tools import raise_open_file_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "now = raise_open_file_limit(4096)\n"
        "print(now, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
        "high = hard if hard != resource.RLIM_INFINITY else 8192\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (high, hard))\n"
        "print(raise_open_file_limit(16), high)\n"  # never lowered
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    now, soft, hard = int(out[0]), int(out[1]), int(out[2])
    expected = 4096 if hard == resource.RLIM_INFINITY or hard >= 4096 else hard
    assert now == soft == expected
    assert int(out[3]) == int(out[4])
