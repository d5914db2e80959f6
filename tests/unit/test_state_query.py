"""The state API's pure parts: filters before the limit, "N of M", summaries, owner snapshots."""

import pytest
from ownrun.engine.ownership.task_manager import FINISHED_TASKS, TaskManager
from ownrun.engine.state import query, snapshot

ROWS = [{"task_id": f"{i:02x}", "name": "a" if i % 3 else "b", "state": "done" if i % 2 else "failed",
         "pinned": i % 4 == 0} for i in range(20)]


def test_filters_apply_before_the_limit_and_total_counts_every_match():
    listing = query.select(ROWS, "tasks", [("name", "=", "b")], limit=2)
    assert [row["task_id"] for row in listing] == ["00", "03"]
    assert listing.total == 7  # every b (0, 3, ..., 18), not the 2 shown
    assert listing.header == "2 of 7 tasks"


def test_filters_combine_and_compare_as_text():
    listing = query.select(ROWS, "tasks", [("name", "=", "b"), ("state", "!=", "done")], limit=None)
    assert [row["task_id"] for row in listing] == ["00", "06", "0c", "12"]
    assert query.select(ROWS, "tasks", [("pinned", "=", True)]).total == 5
    assert query.select(ROWS, "tasks", [("pinned", "=", "TRUE")]).total == 5


def test_columns_and_bad_input():
    listing = query.select(ROWS, "tasks", limit=1, columns=("task_id",))
    assert listing == [{"task_id": "00"}] and listing.total == 20
    with pytest.raises(ValueError, match="unknown tasks field 'nme'"):
        query.select(ROWS, "tasks", [("nme", "=", "a")])
    with pytest.raises(ValueError, match="operator"):
        query.select(ROWS, "tasks", [("name", "~", "a")])
    with pytest.raises(ValueError, match="limit"):
        query.select(ROWS, "tasks", limit=-1)


def test_parse_filter():
    assert query.parse_filter("state=done") == ("state", "=", "done")
    assert query.parse_filter("name != f") == ("name", "!=", "f")
    with pytest.raises(ValueError):
        query.parse_filter("state")


def test_summaries_count_by_name_and_state():
    summary = query.summarize(ROWS, "name")
    assert summary["b"] == {"failed": 4, "done": 3, "total": 7}
    assert summary["a"]["total"] == 13
    groups = query.memory([{"owner": "o", "owner_node": "n", "node_id": "n", "where": "inline", "size": 5},
                           {"owner": "o", "owner_node": "n", "node_id": "n", "where": "inline", "size": 7},
                           {"owner": "p", "owner_node": "n", "node_id": "m", "where": "shared_memory",
                            "size": 100, "pinned": True}])
    assert groups[0] == {"owner": "p", "owner_node": "n", "node_id": "m", "where": "shared_memory",
                         "callsite": None, "objects": 1, "bytes": 100, "pinned": 1}
    assert groups[1]["objects"] == 2 and groups[1]["bytes"] == 12


def test_memory_groups_objects_by_the_call_site_that_created_them():
    rows = [{"owner": "o", "owner_node": "n", "node_id": "n", "where": "inline", "size": 5, "callsite": site}
            for site in ("app.py:3 in main", "app.py:3 in main", "app.py:9 in helper")]
    groups = query.memory(rows)
    assert sorted((g["callsite"], g["objects"]) for g in groups) == [("app.py:3 in main", 2),
                                                                      ("app.py:9 in helper", 1)]


def test_finished_tasks_are_bounded_and_a_retried_task_is_reported_once():
    tm = TaskManager("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", b"w" * 16)
    assert tm.finished.maxlen == FINISHED_TASKS
    tm.finished.append((b"\x01" * 16, "f", 0, "failed", b"w" * 16))
    rows = snapshot.tasks(tm, {"owner": "x"})
    assert rows == [{"task_id": "01" * 16, "name": "f", "state": "failed", "type": "normal",
                     "worker_id": "77" * 16, "node_id": None, "owner": "x"}]


def test_a_filter_naming_an_unknown_field_is_refused_even_with_no_rows():
    with pytest.raises(ValueError, match="unknown tasks field"):
        query.select([], "tasks", [("nme", "=", "a")], fields=("name", "state"))
    assert query.select([], "tasks", [("name", "=", "a")], fields=("name",)).header == "0 of 0 tasks"
