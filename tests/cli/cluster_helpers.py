"""Helpers for tests that run `ownrun` commands and drivers as separate processes."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import socket
import subprocess
import sys
import textwrap

from tests.conftest import wait_for

STORE = str(64 * 2**20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cli:
    """Runs `ownrun` commands against one session root; remembers to stop the cluster."""

    def __init__(self, root: str, prefix: tuple[str, ...] = ()):
        self.root = root
        self.prefix = list(prefix)  # e.g. ("ip", "netns", "exec", NAME)
        self.env = {**os.environ, "OWNRUN_SESSION_ROOT": root}
        self.env.pop("OWNRUN_CLUSTER_KEY", None)

    @classmethod
    @contextlib.contextmanager
    def session(cls, root: str, prefix: tuple[str, ...] = ()):
        """A runner whose cluster is stopped on exit, whatever happened."""
        runner = cls(root, prefix)
        try:
            yield runner
        finally:
            runner.run("stop")

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, sys.executable, "-m", "ownrun.cli.main", *args],
                              env={**self.env, "COLUMNS": "200"}, text=True, capture_output=True,
                              timeout=timeout)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"ownrun {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
        return result.stdout

    def state(self) -> dict:
        with open(os.path.join(self.root, "current_cluster.json")) as f:
            return json.load(f)

    def pids(self) -> list[int]:
        state = self.state()
        return [state["head_pid"], *(n["pid"] for n in state["nodes"].values())]

    def status_rows(self) -> dict[str, str]:
        """node id -> its status row."""
        out = self.ok("status")
        return {line.split("│")[1].strip(): line for line in out.splitlines()
                if line.startswith("│") and line.split("│")[1].strip().startswith("node")}

    def drive(self, address: str, script: str, **env: str) -> subprocess.CompletedProcess:
        """Runs a driver script (ADDRESS is replaced) in its own process."""
        code = textwrap.dedent(script).replace("ADDRESS", address)
        return subprocess.run([*self.prefix, sys.executable, "-c", code], env={**self.env, **env}, text=True,
                              capture_output=True, timeout=90)


def start_head(cli: Cli, *extra: str) -> str:
    port = free_port()
    out = cli.ok("start", "--head", "--port", str(port), "--num-cpus", "1", "--object-store-memory", STORE,
                 *extra)
    address = f"127.0.0.1:{port}"
    assert f"head at {address}" in out and f'engine.init(address="{address}")' in out
    return address


def assert_nothing_left(cli: Cli, pids: list[int], sessions: list[str]) -> None:
    """The given processes, and every process naming one of the sessions (zygotes and
    workers included), are gone; so are the sessions' /dev/shm files and the state file."""
    for pid in pids:
        wait_for(lambda pid=pid: zombie(pid), 10, message=f"process {pid} exits")
    for session in sessions:
        wait_for(lambda session=session: not processes_of(session), 10,
                 message=f"the processes of {session} exit")
        assert glob.glob(f"/dev/shm/ownrun-{os.path.basename(session)}-*") == []
    assert not os.path.exists(os.path.join(cli.root, "current_cluster.json"))


def processes_of(session_dir: str) -> list[int]:
    """Live (non-zombie) processes whose command line names `session_dir`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if session_dir in cmdline and "ownrun.engine" in cmdline and not zombie(int(entry)):
            found.append(int(entry))
    return found


def zombie(pid: int) -> bool:
    """True if `pid` is gone or a zombie (exited, not yet reaped by whoever adopted it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
