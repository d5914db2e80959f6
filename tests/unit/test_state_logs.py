"""`ownrun logs`' file picking and tailing (engine/state/logs.py)."""

import os

import pytest
from ownrun.engine.errors import ClusterError
from ownrun.engine.state import logs


@pytest.fixture
def session(tmp_path):
    os.mkdir(tmp_path / "logs")
    for name in ("head.log", "node-node0-abc.log", "worker-0123456789ab.log", "worker-0123ffffffff.log"):
        (tmp_path / "logs" / name).write_text("".join(f"{name} line {i}\n" for i in range(10)))
    return str(tmp_path)


def test_pick_by_node_worker_prefix_or_head(session):
    assert logs.pick(session, head=True).endswith("head.log")
    assert logs.pick(session, node="node0-abc").endswith("node-node0-abc.log")
    assert logs.pick(session, worker="0123456789abcdef0000").endswith("worker-0123456789ab.log")
    assert logs.pick(session, worker="01234").endswith("worker-0123456789ab.log")
    with pytest.raises(ClusterError, match="matches 2 log files"):
        logs.pick(session, worker="0123")
    with pytest.raises(ClusterError, match="no log file"):
        logs.pick(session, node="node9")
    assert [f["name"] for f in logs.files(session)][0] == "head.log"


def test_tail_and_follow(session):
    path = logs.pick(session, head=True)
    assert logs.tail(path, 2) == ["head.log line 8\n", "head.log line 9\n"]
    seen, calls = [], []

    def stop():  # follow asks before each read: append once it has seeked to the end
        calls.append(1)
        if len(calls) == 1:
            with open(path, "a") as f:
                f.write("appended\n")
        return bool(seen) or len(calls) > 1000

    logs.follow(path, seen.append, 0.001, stop)
    assert seen == ["appended\n"]
