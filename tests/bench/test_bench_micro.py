"""benchmarks/micro.py: the JSON of a tiny run, medians of rounds, background load."""
import json

import psutil
import pytest
from conftest import process_gone, wait_for
from ownrun import engine
from ownrun.benchmarks import meta, micro
from ownrun.benchmarks.load import BackgroundLoad
from rich.console import Console


def test_timed_row_reports_the_median_of_rounds_and_their_spread():
    r = micro.timed_row("x", [0.3, 0.1, 0.2], "ms", lambda s: s * 1e3)
    assert r["value"] == pytest.approx(200.0) and r["rounds"] == pytest.approx([300, 100, 200])
    assert r["notes"] == "median of 3 (100–300)"


def test_background_load_runs_busy_loops_and_kills_them():
    with BackgroundLoad(2) as load:
        pids = load.pids()
        assert len(pids) == 2
        assert all(psutil.Process(pid).is_running() for pid in pids)
    wait_for(lambda: all(process_gone(pid) for pid in pids), message="busy loops gone")


@pytest.mark.timeout(180)
def test_quick_run_writes_the_documented_schema_with_latency_rows_under_load(tmp_path):
    out = tmp_path / "micro.json"
    code = micro.main(quick=True, json_path=out, console=Console(width=200),
                      background_load=1, only={"sequential tasks"})
    doc = json.loads(out.read_text())
    assert code == 0, doc["results"]
    assert set(meta.KEYS) <= set(doc)
    assert doc["benchmark"] == "micro" and doc["background_load"] == 1
    assert doc["config"]["background_load"] == 1
    assert len(doc["load_average"]["start"]) == 3 and len(doc["load_average"]["end"]) == 3
    rows = {r["bench"]: r for r in doc["results"]}
    idle, busy = rows["100 sequential tasks"], rows["100 sequential tasks, 1 busy loop"]
    assert idle["background_load"] == 0 and busy["background_load"] == 1
    assert idle["rounds"] and idle["value"] == idle["rounds"][0]
    assert "init: wall time" in rows and "task throughput" not in " ".join(rows)
    assert not engine.is_initialized()
