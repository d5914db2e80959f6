"""The `ownrun` command line: help, version, the error policy, `ownrun bench --quick`, the status table."""
import importlib.metadata
import json
import sys
import types

import pytest
from ownrun import engine
from ownrun.benchmarks import micro
from ownrun.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), prog_name="ownrun")


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch):
    monkeypatch.delenv("OWNRUN_DEBUG", raising=False)


def bench_raises(monkeypatch, exc: BaseException) -> None:
    def fail(**kwargs):
        raise exc

    monkeypatch.setattr(micro, "main", fail)


def test_version_prints_the_installed_version():
    result = invoke("version")
    assert result.exit_code == 0
    assert result.output.strip() == f"ownrun {importlib.metadata.version('ownrun')}"


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "bench" in result.output and "version" in result.output


def test_no_arguments_shows_help():
    result = invoke()
    assert result.exit_code == 0
    assert "Usage" in result.output


@pytest.mark.parametrize("args", [["--bogus"], ["bench", "--bogus"], ["no-such-command"]])
def test_bad_usage_is_a_one_line_error_with_exit_code_2(args):
    result = invoke(*args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:") and "--help" in lines[0]


def test_unexpected_exception_is_one_line_without_traceback(monkeypatch):
    bench_raises(monkeypatch, RuntimeError("boom\nsecond line"))
    result = invoke("bench")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: unexpected RuntimeError: boom (run 'ownrun --debug ...' for the traceback)"
    ]


def test_debug_flag_shows_the_traceback(monkeypatch):
    bench_raises(monkeypatch, RuntimeError("boom"))
    result = invoke("--debug", "bench")
    assert result.exit_code == 1
    assert "Traceback" in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: unexpected RuntimeError")


def test_engine_errors_are_matched_by_base_class_and_exit_3_with_remote_cause(monkeypatch):
    errors = types.ModuleType("ownrun.engine.errors")

    class EngineError(Exception):
        pass

    class TaskError(EngineError):
        pass

    errors.EngineError = EngineError
    monkeypatch.setitem(sys.modules, "ownrun.engine.errors", errors)
    remote = "task f failed:\nTraceback (most recent call last):\n  ...\nValueError: bad input\n"
    bench_raises(monkeypatch, TaskError(remote))
    result = invoke("bench")
    assert result.exit_code == 3
    assert result.output.strip() == "error: TaskError: task f failed: ValueError: bad input"


def test_missing_file_is_one_line_with_exit_code_5(monkeypatch):
    bench_raises(monkeypatch, FileNotFoundError(2, "No such file", "/nowhere/x.json"))
    result = invoke("bench")
    assert result.exit_code == 5
    assert result.output.strip() == "error: file not found: /nowhere/x.json"


def test_failed_benchmarks_make_bench_exit_1(monkeypatch, tmp_path):
    seen = {}

    def fake_main(**kwargs):
        seen.update(kwargs)
        return 1

    monkeypatch.setattr(micro, "main", fake_main)
    result = invoke("bench", "--quick", "--json", str(tmp_path / "out.json"))
    assert result.exit_code == 1
    assert seen["quick"] is True and seen["json_path"] == tmp_path / "out.json"


@pytest.mark.skipif(not hasattr(engine, "init"), reason="ownrun.engine.init() has not landed yet")
@pytest.mark.timeout(600)
def test_bench_quick_runs_every_benchmark_without_errors(tmp_path):
    out = tmp_path / "micro.json"
    result = invoke("bench", "--quick", "--json", str(out))
    rows = json.loads(out.read_text())["results"]
    errors = [f"{r['bench']}: {r['notes']}" for r in rows if r["status"] == "error"]
    assert not errors, result.output
    assert result.exit_code == 0, result.output
    assert {r["bench"] for r in rows if r["status"] == "ok"} >= {"init: wall time"}
    assert not engine.is_initialized()


def test_status_shows_the_owners_of_each_node(monkeypatch):
    from ownrun.engine.cluster import started

    def status(address, cluster_key):
        node = {"address": "tcp://127.0.0.1:7000", "alive": True, "total": {"CPU": 2.0},
                "available": {"CPU": 1.0}, "store": {"used": 0, "capacity": 2**20, "num_objects": 0}}
        return {"address": "127.0.0.1:6380", "head": {"requests": 3},
                "nodes": [{**node, "node_id": "node-a", "clients": ["tcp://a", "tcp://b", "tcp://c"]},
                          {**node, "node_id": "node-b"}]}  # a head that does not report its clients

    monkeypatch.setattr(started, "status", status)
    result = runner.invoke(app, ["status"], prog_name="ownrun", env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[1:-1]]
            for line in result.output.splitlines() if line.startswith("│ node-")}
    header = next(line for line in result.output.splitlines() if "owners" in line and "┃" in line)
    owners = [c.strip() for c in header.split("┃")[1:-1]].index("owners")
    assert rows["node-a"][owners] == "3" and rows["node-b"][owners] == "-"


def test_status_of_an_embedded_cluster_fits_80_columns_and_totals_the_stores(monkeypatch):
    from ownrun.engine.cluster import started

    session = "/tmp/ownrun-1000/session_2026-12-02_09-43-05_11218_f04a8e/sockets"

    def status(address, cluster_key):
        nodes = [{"node_id": f"node{i}-abcdef", "address": f"ipc://{session}/8399-60649{i}", "alive": True,
                  "total": {"CPU": 1.0, "gpu_model_x": 1.0}, "available": {"CPU": 1.0, "gpu_model_x": 1.0},
                  "clients": ["ipc://a"], "store": {"used": 2**20, "capacity": 2411 * 2**20, "num_objects": 1}}
                 for i in range(3)]
        return {"address": f"ipc://{session}/1", "head": {"requests": 3}, "nodes": nodes}

    monkeypatch.setattr(started, "status", status)
    result = runner.invoke(app, ["status", "--address", f"ipc://{session}/1"], prog_name="ownrun",
                           env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= 80 for line in lines), result.output
    assert sum(line.startswith("│ node") for line in lines) == 3 and "8399" not in result.output
    assert "3.0 of 7233.0 MiB used" in " ".join(lines)
