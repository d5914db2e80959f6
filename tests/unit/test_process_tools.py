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
