"""`ownrun bench --suite cluster|all`: suite selection, where results go, and a --quick run
of the paper's cluster benchmarks (latency, borrowing, recovery, scaling)."""
import json
import math

import pytest
from ownrun import engine
from ownrun.benchmarks import cluster, micro
from ownrun.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()
GROUPS = {"latency", "borrowing", "recovery", "scaling"}


def invoke(*args: str):
    return runner.invoke(app, list(args), prog_name="ownrun")


@pytest.fixture
def fake_suites(monkeypatch):
    """Replaces both suites' main() by recorders returning the code in `codes`."""
    calls: list[tuple[str, dict]] = []
    codes = {"micro": 0, "cluster": 0}

    def recorder(name):
        def main(**kwargs):
            calls.append((name, kwargs))
            return codes[name]
        return main

    monkeypatch.setattr(micro, "main", recorder("micro"))
    monkeypatch.setattr(cluster, "main", recorder("cluster"))
    return calls, codes


def test_default_suite_is_micro_with_its_default_json(fake_suites):
    calls, _ = fake_suites
    result = invoke("bench", "--quick")
    assert result.exit_code == 0, result.output
    assert [(name, kw["json_path"], kw["quick"]) for name, kw in calls] == [
        ("micro", micro.DEFAULT_JSON, True)]


def test_suite_cluster_writes_its_own_default_json(fake_suites):
    calls, _ = fake_suites
    result = invoke("bench", "--suite", "cluster")
    assert result.exit_code == 0, result.output
    assert [(name, kw["json_path"], kw["quick"]) for name, kw in calls] == [
        ("cluster", cluster.DEFAULT_JSON, False)]


def test_suite_all_runs_both_and_puts_cluster_results_next_to_the_given_json(
        fake_suites, tmp_path):
    calls, codes = fake_suites
    codes["cluster"] = 1
    result = invoke("bench", "--suite", "all", "--json", str(tmp_path / "out.json"))
    assert result.exit_code == 1, result.output
    assert [(name, kw["json_path"]) for name, kw in calls] == [
        ("micro", tmp_path / "out.json"), ("cluster", tmp_path / "out-cluster.json")]


def test_background_load_goes_to_the_micro_suite(fake_suites):
    calls, _ = fake_suites
    result = invoke("bench", "--suite", "all", "--background-load", "2")
    assert result.exit_code == 0, result.output
    assert [(name, kw.get("background_load")) for name, kw in calls] == [
        ("micro", 2), ("cluster", None)]


def test_bench_help_points_to_compare_for_rays_figures():
    result = invoke("bench", "--help")
    assert result.exit_code == 0
    assert "benchmarks/compare.py" in result.output


def test_unknown_suite_is_a_usage_error(fake_suites):
    calls, _ = fake_suites
    result = invoke("bench", "--suite", "bogus")
    assert result.exit_code == 2
    assert not calls


@pytest.mark.skipif(not hasattr(engine, "init"), reason="ownrun.engine.init() has not landed yet")
@pytest.mark.timeout(180)  # ~45 s on an idle 2-core machine
def test_cluster_suite_quick_measures_every_benchmark_and_reports_failures_as_rows(tmp_path):
    out = tmp_path / "cluster.json"
    result = invoke("bench", "--suite", "cluster", "--quick", "--json", str(out))
    rows = json.loads(out.read_text())["results"]
    errors = [r for r in rows if r["status"] == "error"]
    assert result.exit_code == (1 if errors else 0), result.output
    assert all(r["notes"] and "\n" not in r["notes"] for r in errors), errors
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["group"] for r in ok} >= GROUPS | {"summary"}, result.output
    assert all(math.isfinite(r["value"]) for r in ok)
    # A killed node is detected at once (its process exit), so a recovery's added time is a
    # difference of two noisy runs: below zero on a loaded machine. Every other figure is not.
    assert all(r["value"] >= 0 for r in ok if not r["bench"].endswith("added time"))
    for group in ("latency", "borrowing", "scaling"):  # no failure injected: no error allowed
        assert not [r for r in errors if r["group"] == group], result.output
    killed = [r["bench"] for r in ok if r["bench"].endswith("node killed")]
    assert len(killed) == 2, result.output  # small and 1 MiB chains survived a node kill
    assert {f"{g}: wall time" for g in GROUPS} <= {r["bench"] for r in ok}
    assert not engine.is_initialized()
