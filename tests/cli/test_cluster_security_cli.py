"""`ownrun start` on loopback is keyed and private (§11.1): the key and every session file are
its user's only, its own commands find the key, a peer without it gets nothing."""

from __future__ import annotations

import glob
import os
import stat

import pytest

from tests.cli.cluster_helpers import Cli, assert_nothing_left, start_head
from tests.integration.test_cluster_security import NOBODY, REFUSED, _attack, _can_drop_to_nobody


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_loopback_cluster_has_a_private_key_its_commands_find_and_strangers_lack(tmp_path):
    with Cli.session(str(tmp_path / "ownrun")) as cli:
        address = start_head(cli)
        state = cli.state()
        session, key = state["session_dir"], state["cluster_key"]
        assert key == os.path.join(session, "cluster.key") and _mode(key) == 0o600
        assert _mode(cli.root) == 0o700 and _mode(session) == 0o700

        # `ownrun start --address` and `status` find the key in the user's own session root.
        cli.ok("start", "--address", address, "--num-cpus", "1", "--object-store-memory", str(64 * 2**20))
        rows = cli.status_rows()
        assert len(rows) == 2 and all("yes" in row for row in rows.values())

        files = [p for p in glob.glob(os.path.join(cli.root, "**"), recursive=True) if os.path.isfile(p)]
        assert any(p.endswith("head.sqlite3") for p in files)
        assert {p: oct(_mode(p)) for p in files if _mode(p) & 0o077} == {}

        stranger = {k: v for k, v in os.environ.items() if not k.startswith("OWNRUN_")}
        stranger["OWNRUN_SESSION_ROOT"] = str(tmp_path / "stranger")
        node = next(iter(state["nodes"].values()))
        seen = _attack(state["head_address"], node["address"], session, env=stranger)
        assert {k: seen[k] for k in REFUSED} == REFUSED
        assert "this cluster requires its cluster key" in seen["init"]
        if _can_drop_to_nobody():
            nobody = {**stranger, "HOME": "/nonexistent"}
            del nobody["OWNRUN_SESSION_ROOT"]
            seen = _attack(state["head_address"], node["address"], session, *NOBODY, env=nobody)
            assert seen == {**REFUSED, "session_dir": "denied", "key": "denied", "init": seen["init"]}
            assert "this cluster requires its cluster key" in seen["init"]
        # The node did not obey the stranger's SHUTDOWN_NODE.
        assert all("yes" in row for row in cli.status_rows().values())
        pids = cli.pids()
        assert "stopped 2 node(s) and the head" in cli.ok("stop")
        assert_nothing_left(cli, pids, [session])


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_start_refuses_a_session_root_of_another_user_in_one_line(tmp_path):
    root = tmp_path / "ownrun"
    root.mkdir(mode=0o700)
    os.chown(root, 65534, 65534)
    cli = Cli(str(root))
    result = cli.run("start", "--head", "--num-cpus", "1")
    assert result.returncode == 3
    assert result.stdout.strip().splitlines() == [
        f"error: refusing the session root {root}: it is owned by uid 65534, not by you (uid 0); "
        f"remove it, or set OWNRUN_SESSION_ROOT to a directory of yours"]
