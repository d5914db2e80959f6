"""`ownrun start/status/kill-node/stop` on real processes, and drivers joining by address.

Every command runs as its own process (`python -m ownrun.cli.main ...`), as a user runs it,
with OWNRUN_SESSION_ROOT pointing at a directory of this test so the state file and the
sessions are the test's own. Each test stops what it started, and checks that `ownrun stop`
leaves no process and no /dev/shm file behind.
"""

from __future__ import annotations

import glob
import json
import os

import pytest
from ownrun import engine

from tests.cli.cluster_helpers import STORE, Cli, assert_nothing_left, free_port, start_head, zombie
from tests.conftest import wait_for

DRIVER = """
    import json
    from ownrun import engine

    info = engine.init(address="ADDRESS")

    @engine.remote
    def where(x):
        return engine.get_runtime_context().node_id, x * x

    plain = engine.get([where.remote(i) for i in range(10)], timeout=60)
    special = engine.get(where.options(resources={"special": 1}).remote(3), timeout=60) \\
        if "SPECIAL" == "yes" else None
    engine.shutdown()
    print(json.dumps({"node": info["node_id"], "plain": plain, "special": special}))
"""


@pytest.fixture
def cli(tmp_path):
    with Cli.session(str(tmp_path / "ownrun")) as runner:
        yield runner


def test_start_head_shows_one_alive_node_and_stop_leaves_nothing(cli):
    start_head(cli)
    rows = cli.status_rows()
    assert len(rows) == 1 and "yes" in next(iter(rows.values()))
    assert "head requests served" in cli.ok("status")
    state = cli.state()
    pids, sessions = cli.pids(), [state["session_dir"]]
    assert glob.glob(f"/dev/shm/ownrun-{os.path.basename(sessions[0])}-*")  # the node's store exists
    assert "stopped 1 node(s) and the head" in cli.ok("stop")
    assert_nothing_left(cli, pids, sessions)
    assert "nothing to stop" in cli.ok("stop")  # idempotent


def test_driver_joins_by_address_runs_tasks_and_leaves_the_cluster_running(cli):
    address = start_head(cli)
    out = cli.ok("start", "--address", address, "--num-cpus", "1", "--resources", '{"special": 1}',
                 "--object-store-memory", STORE)
    assert "started node" in out
    rows = cli.status_rows()
    assert len(rows) == 2 and all("yes" in row for row in rows.values())
    second = [node_id for node_id, row in rows.items() if "special" in row][0]

    result = cli.drive(address, DRIVER.replace('"SPECIAL"', '"yes"'))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [value for _, value in report["plain"]] == [i * i for i in range(10)]
    assert report["special"] == [second, 9]  # forced onto the node that joined by address
    rows = cli.status_rows()  # the driver's shutdown stopped only the driver
    assert len(rows) == 2 and all("yes" in row for row in rows.values())

    result = cli.drive("auto", DRIVER)  # address="auto": the cluster of the state file
    assert result.returncode == 0, result.stderr
    pids, sessions = cli.pids(), [cli.state()["session_dir"]]
    assert "stopped 2 node(s) and the head" in cli.ok("stop")
    assert_nothing_left(cli, pids, sessions)


def test_a_node_started_beside_running_nodes_takes_what_is_left_of_the_default_store(cli):
    """Issue 13: the default store (30% of RAM) counts the stores this user's nodes here
    already claim, down to a floor, with one line saying so; --object-store-memory wins."""
    from ownrun.engine.cluster import processes

    address = start_head(cli)  # its node: an explicit 64 MiB store
    default = processes.default_object_store_memory()
    second = cli.run("start", "--address", address, "--num-cpus", "1")
    third = cli.run("start", "--address", address, "--num-cpus", "1")
    explicit = cli.run("start", "--address", address, "--num-cpus", "1", "--object-store-memory", STORE)
    assert [r.returncode for r in (second, third, explicit)] == [0, 0, 0], (second.stderr, third.stderr)
    stores = [n["store"] for _, n in sorted(cli.state()["nodes"].items(), key=lambda item: item[0][4:])]
    assert stores == [int(STORE), default - int(STORE), processes.MIN_DEFAULT_STORE, int(STORE)]
    notes = [r.stderr.strip().splitlines() for r in (second, third, explicit)]
    assert [len(n) for n in notes] == [1, 1, 0], notes
    assert f"already claim {int(STORE) >> 20} MiB of the default {default >> 20} MiB" in notes[0][0]
    assert f"gets {processes.MIN_DEFAULT_STORE >> 20} MiB (the floor)" in notes[1][0]
    assert "--object-store-memory sets it" in notes[1][0]
    total = cli.ok("status").split("stores of the live nodes: ")[1].split(" MiB used")[0]
    assert total.endswith(f" of {sum(stores) / 2**20:.1f}"), total  # what the nodes report adds up


def test_kill_node_is_declared_dead_and_unknown_nodes_are_refused(cli):
    address = start_head(cli)
    cli.ok("start", "--address", address, "--num-cpus", "1", "--object-store-memory", STORE)
    victim = sorted(cli.state()["nodes"])[1]
    victim_pid = cli.state()["nodes"][victim]["pid"]

    bad = cli.run("kill-node", "nosuchnode")
    assert bad.returncode == 3
    assert bad.stdout.strip().splitlines() == [
        f"error: no node 'nosuchnode' in the cluster at {address}; nodes: {', '.join(sorted(cli.state()['nodes']))}"]

    assert f"killed node {victim}" in cli.ok("kill-node", victim)
    wait_for(lambda: "dead" in cli.status_rows()[victim], 60, message="the head declares the node dead")
    assert zombie(victim_pid)
    session = cli.state()["session_dir"]
    assert not glob.glob(f"/dev/shm/ownrun-{os.path.basename(session)}-{victim}")
    pids = cli.pids()
    assert "stopped 1 node(s) and the head" in cli.ok("stop")
    assert_nothing_left(cli, pids, [session])


def test_status_with_nothing_running_is_one_line(cli):
    result = cli.run("status")
    assert result.returncode == 3
    assert result.stdout.strip().splitlines() == [
        "error: no ownrun cluster started from this machine is running (start one with "
        "`ownrun start --head`, or pass its address)"]
    result = cli.run("status", "--address", "127.0.0.1:1")
    assert result.returncode == 3 and len(result.stdout.strip().splitlines()) == 1
    assert "nothing is listening at 127.0.0.1:1" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_start_needs_head_or_address_and_refuses_a_second_head(cli):
    result = cli.run("start")
    assert result.returncode == 2 and "--head" in result.stdout
    result = cli.run("start", "--head", "--resources", "not json")
    assert result.returncode == 2 and "--resources" in result.stdout
    address = start_head(cli)
    result = cli.run("start", "--head", "--port", str(free_port()))
    assert result.returncode == 3
    assert f"already running at {address}" in result.stdout


def test_init_with_a_wrong_address_fails_fast_with_one_line():
    # Fast because decided by the refusal / the parse, not by a connect deadline (whose error
    # would read "cannot connect to ... within 5s").
    for address, why in (("127.0.0.1:1", "connection refused"), ("nonsense", "bad cluster address")):
        with pytest.raises(engine.errors.EngineError) as info:
            engine.init(address=address)
        assert why in str(info.value), str(info.value)
        assert address in str(info.value) and "\n" not in str(info.value)
        assert not engine.is_initialized()
