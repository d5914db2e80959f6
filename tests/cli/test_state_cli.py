"""`ownrun list/summary/memory` from another terminal against an `ownrun start` cluster,
while a driver (its own process) holds the tasks and objects it owns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.cli.cluster_helpers import Cli, start_head
from tests.conftest import wait_for

DRIVER = """
    import sys
    from ownrun import engine

    engine.init(address="ADDRESS")

    @engine.remote
    def square(x):
        print(f"squaring {x}", flush=True)
        return x * x

    @engine.remote
    def fails():
        raise ValueError("on purpose")

    assert engine.get([square.remote(i) for i in range(6)], timeout=60) == [i * i for i in range(6)]
    bad = fails.remote()
    try:
        engine.get(bad, timeout=60)
    except ValueError:
        pass
    big = engine.put(b"x" * 200_000)
    print("ready", flush=True)
    sys.stdin.readline()  # hold the objects until the test is done
    engine.shutdown()
"""


@pytest.fixture
def cli(tmp_path):
    with Cli.session(str(tmp_path / "ownrun")) as runner:
        yield runner


def test_list_summary_memory_against_a_started_cluster(cli):
    address = start_head(cli)
    code = textwrap.dedent(DRIVER).replace("ADDRESS", address)
    env = {**cli.env, "OWNRUN_RECORD_CALLSITES": "1"}  # the driver records where it created objects
    driver = subprocess.Popen([sys.executable, "-c", code], env=env, text=True, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert driver.stdout.readline().strip() == "ready", driver.stderr.read()

        listing = json.loads(cli.ok("list", "tasks", "--format", "json"))
        assert listing["total"] == 7 and listing["shown"] == 7 and not listing["unreachable"]
        by_name = {}
        for row in listing["rows"]:
            by_name.setdefault(row["name"], []).append(row["state"])
        assert by_name == {"square": ["done"] * 6, "fails": ["failed"]}

        limited = json.loads(cli.ok("list", "tasks", "--filter", "name=square", "--limit", "2", "--format", "json"))
        assert (limited["shown"], limited["total"]) == (2, 6)
        assert "2 of 6 tasks" in cli.ok("list", "tasks", "--filter", "name=square", "--limit", "2")

        summary = json.loads(cli.ok("summary", "tasks", "--format", "json"))
        assert summary["square"] == {"done": 6, "total": 6} and summary["fails"] == {"failed": 1, "total": 1}

        objects = json.loads(cli.ok("list", "objects", "--filter", "where=shared_memory", "--detail",
                                    "--format", "json"))
        assert objects["total"] == 1 and objects["rows"][0]["size"] >= 200_000
        assert objects["rows"][0]["callsite"] == "<string>:22 in <module>"  # the driver's engine.put line
        assert "<string>:22 in <module>" in cli.ok("memory")
        memory = json.loads(cli.ok("memory", "--format", "json"))
        assert any(group["where"] == "shared_memory" and group["bytes"] >= 200_000 for group in memory["groups"])
        assert memory["nodes"] and all(node["store_capacity"] for node in memory["nodes"])
        workers = json.loads(cli.ok("list", "workers", "--filter", "kind=driver", "--format", "json"))
        assert workers["total"] == 1

        trace_path = os.path.join(cli.root, "trace.json")
        assert "wrote 7 task span(s)" in cli.ok("timeline", "-o", trace_path)
        with open(trace_path) as f:
            spans = [event for event in json.load(f)["traceEvents"] if event.get("cat") == "task"]
        assert sorted(span["name"] for span in spans) == ["fails"] + ["square"] * 6

        task = next(row for row in listing["rows"] if row["name"] == "square")
        wait_for(lambda: "squaring" in cli.ok("logs", "--task", task["task_id"]), 30,
                 message="the task's print reaches its worker's log")
        assert f"worker-{task['worker_id'][:12]}.log" in cli.ok("logs")
        assert cli.ok("logs", "--head", "-n", "5").count("\n") <= 5

        bad = cli.run("list", "tasks", "--filter", "nme=square")
        assert bad.returncode == 2 and "unknown tasks field 'nme'" in bad.stderr + bad.stdout
        assert "Traceback" not in bad.stderr
    finally:
        driver.communicate("done\n", timeout=60)
    assert driver.returncode == 0
