"""process_tools' parent-death binding: a child forked by a parent that exits before the child
asks to die with it must not outlive it (a zygote SIGKILLed mid-fork left idle workers
reparented to init)."""

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
