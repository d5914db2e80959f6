"""benchmarks/compare.py: says when Ray is not importable; the JSON of a tiny run; ratios."""
import json
import sys

import pytest
from ownrun.benchmarks import bodies, compare, floors, meta, systems
from rich.console import Console


def run_compare(tmp_path, *args: str) -> tuple[int, str, dict]:
    console = Console(record=True, width=200)
    out = tmp_path / "compare.json"
    code = compare.main(["--quick", "--rounds", "1", "--json", str(out), *args], console=console)
    return code, console.export_text(), json.loads(out.read_text())


def test_availability_says_why_a_system_cannot_be_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    version, why = systems.availability("ray")
    assert version is None
    assert why.startswith("ray is not importable in this Python (ModuleNotFoundError")


@pytest.mark.timeout(120)
def test_ray_not_importable_is_said_and_recorded_and_ownrun_still_measured(monkeypatch,
                                                                           tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    code, text, doc = run_compare(tmp_path, "--with", "ray", "--rows", "sync_task",
                                  "--no-floors")
    assert code == 0, text
    assert "ray: not measured — ray is not importable" in text
    assert "pip install ray" in text  # how to measure it, without installing anything
    assert doc["systems"]["ray"] == {"available": False, "version": None,
                                     "why": systems.availability("ray")[1]}
    [row] = doc["results"]
    assert row["ray"] == "not importable" and row["ownrun vs Ray"] == ""
    assert set(doc["rounds"][0]) == {"ownrun"}  # nothing was started for Ray


@pytest.mark.timeout(180)
def test_quick_run_writes_the_documented_schema(tmp_path):
    code, text, doc = run_compare(tmp_path, "--rows", "sync_task,put_1mib",
                                  "--background-load", "1")
    assert code == 0, text
    assert set(meta.KEYS) <= set(doc)
    assert doc["benchmark"] == "compare" and doc["background_load"] == 1
    for when in ("start", "end"):
        assert len(doc["load_average"][when]) == 3
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["ram_bytes"] > 0
    assert doc["versions"]["ownrun"] and doc["versions"]["python"]
    assert "revision" in doc["git"] and "dirty" in doc["git"]
    ownrun, floors = doc["summary"]["ownrun"], doc["summary"]["floors"]
    assert {"sync_task", "sync_task@load", "put_1mib"} <= set(ownrun)
    assert {"reqrep_us", "reqrep_us@load", "memcpy_warm_1mib_gbps"} <= set(floors)
    assert all(v["median"] > 0 and len(v["rounds"]) == 1 for v in ownrun.values())
    keys = [r["key"] for r in doc["results"]]
    assert keys == ["put_1mib", "sync_task", "sync_task@load"]
    assert doc["results"][1]["ownrun vs floor"].endswith("× the floor")


def test_unknown_system_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit, match="unknown system"):
        compare.main(["--with", "spark", "--json", str(tmp_path / "x.json")])


@pytest.mark.parametrize(("key", "ours", "theirs", "expected"), [
    ("sync_task", 400.0, 2400.0, "6× faster"),
    ("get_1mib", 400.0, 28.0, "14× slower"),
    ("async_tasks", 15_800.0, 1200.0, "13× faster"),
    ("async_tasks", 15_800.0, None, ""),
])
def test_ownrun_vs_other(key, ours, theirs, expected):
    assert compare.vs_other(bodies.BY_KEY[key], ours, theirs) == expected


def test_ownrun_vs_floor_is_a_multiple_for_latency_and_a_share_for_rates():
    assert compare.vs_floor(bodies.BY_KEY["sync_task"], 401.0, 122.0) == "3.3× the floor"
    assert compare.vs_floor(bodies.BY_KEY["sync_actor"], 2615.0, 8213.0) == "32% of floor"


def test_summary_takes_medians_over_rounds():
    rounds = [{"ownrun": {"values": {"sync_task": v}, "errors": {}}} for v in (3.0, 1.0, 2.0)]
    found = compare.summarize(rounds)["ownrun"]["sync_task"]
    assert (found["median"], found["min"], found["max"]) == (2.0, 1.0, 3.0)


def test_mini_pipeline_runs_serially_with_five_stages_per_frame():
    calls = []

    def run(fn):
        def call(*args):
            calls.append(fn.__name__)
            return fn(*args)
        return call

    outputs = bodies.pipeline(1, 4, run)
    assert len(outputs[0]) == 4 and all(isinstance(v, float) for v in outputs[0])
    assert sorted(set(calls)) == sorted(f.__name__ for f in bodies.STAGES)
    assert len(calls) == 5 * 4


def test_sequential_loops_stop_after_their_budget_but_not_before_ten_calls():
    calls = []
    assert bodies._per_call_us(lambda: calls.append(1), 1000, budget_s=0.0) > 0
    assert len(calls) == 10
    calls.clear()
    bodies._per_call_us(lambda: calls.append(1), 50, budget_s=60.0)
    assert len(calls) == 50


def _one(value: float) -> dict:
    return {"median": value, "min": value, "max": value, "rounds": [value]}


def test_the_paced_row_shows_how_much_slower_python_runs_after_a_sleep():
    document = {"cpus": 2, "columns": ["ownrun"], "background_load": 0,
                "systems": {"ownrun": {"available": True}},
                "summary": {"ownrun": {"burst_task_cpu": _one(40.0), "paced_task_cpu": _one(200.0)},
                            compare.FLOORS: {"python_burst_us": _one(5.0),
                                             "python_paced_us": _one(110.0)}}}
    burst, paced = compare.table_rows(document)
    assert (burst["key"], burst["ownrun"], burst["floor"]) == ("burst_task_cpu", "40", "—")
    assert paced["floor"] == "pure Python 5 µs, 110 after sleeping 8 ms (22×)"
    assert paced["ownrun vs floor"] == "5× its burst CPU (Python 22×)"


def test_paced_tasks_measure_the_drivers_cpu_per_task_of_chains_run_for_real():
    class Serial:  # a system that runs each task at once, in this process
        def task(self, fn):
            return lambda *args: fn(*args)

        def get(self, refs, timeout):
            return refs

    sizes = bodies.Sizes(quick=True)
    found = bodies.paced_tasks(Serial(), sizes, {"burst_task_cpu", "paced_task_cpu"})
    assert set(found) == {"burst_task_cpu", "paced_task_cpu"}
    assert all(v > 0 for v in found.values())
    assert set(bodies.paced_tasks(Serial(), sizes, {"paced_task_cpu"})) == {"paced_task_cpu"}


def test_the_python_floor_times_the_same_work_back_to_back_and_after_sleeping():
    assert floors.python_us(0.0, n=5) > 0
    assert floors.python_us(0.001, n=3) > 0
