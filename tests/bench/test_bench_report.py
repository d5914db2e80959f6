"""benchmarks/report.py: the README's figures block regenerated from results JSON."""
import json
from pathlib import Path

import pytest
from ownrun.benchmarks import meta, report

# The repository's files (the tests run from a checkout; the installed package has neither).
REPO = Path(__file__).resolve().parents[2]

META = {
    "schema": 1, "date": "2026-12-01T10:00:00+00:00",
    "load_average": {"start": [0.5, 0.4, 0.3], "end": [1.5, 0.6, 0.35]},
    "git": {"revision": "0123456789abcdef", "dirty": False},
    "machine": {"nproc": 2, "cpu_model": "Test CPU", "ram_bytes": 24 * 2**30, "platform": "x"},
    "versions": {"ownrun": "0.1.0", "python": "3.11.7"}, "argv": ["benchmarks/x.py"],
    "background_load": 0,
}


def micro_doc() -> dict:
    return {**META, "benchmark": "micro", "config": {"quick": False}, "results": [
        {"bench": "1,000 sequential tasks", "status": "ok", "value": 0.3812, "unit": "ms/task",
         "target": "<= 0.4", "met": True, "reference": None, "notes": "median of 3",
         "rounds": [0.38, 0.37, 0.39]},
        {"bench": "put/get", "status": "error", "value": None, "unit": "", "target": None,
         "met": None, "reference": None, "notes": "TimeoutError: slow", "rounds": None},
    ]}


def compare_doc() -> dict:
    return {**META, "benchmark": "compare", "argv": ["benchmarks/compare.py", "--with", "ray"],
            "config": {"rounds": 3, "quick": False}, "columns": ["ownrun", "ray"],
            "systems": {"ownrun": {"available": True, "version": "0.1.0", "why": None},
                        "ray": {"available": True, "version": "2.60.0", "why": None}},
            "results": [{"key": "sync_task", "bench": "sync task round trip", "unit": "µs",
                         "ownrun": "401", "ray": "2,428", "floor": "122",
                         "ownrun vs Ray": "6.1× faster", "ownrun vs floor": "3.3× the floor"}]}


@pytest.fixture
def results(tmp_path):
    (tmp_path / "micro.json").write_text(json.dumps(micro_doc()))
    (tmp_path / "compare.json").write_text(json.dumps(compare_doc()))
    return tmp_path


def test_block_holds_each_figure_with_where_and_when_it_was_measured(results):
    block = report.render_block(results)
    assert block.startswith(report.BEGIN) and block.endswith(report.END)
    assert "| 1,000 sequential tasks | 0.381 ms/task | ≤ 0.4 ✓ | median of 3 |" in block
    assert "| put/get | error | | TimeoutError: slow |" in block
    assert "| sync task round trip | µs | 401 | 2,428 | 122 | 6.1× faster | 3.3× the floor |" \
        in block
    assert "Ray 2.60.0" in block and "not live" in block
    assert block.count("2026-12-01, 2 CPUs (Test CPU), 24 GiB, load average 0.5/0.4/0.3 → "
                       "1.5/0.6/0.3 (1/5/15 min), git 0123456789") == 2
    assert "Not measured yet: run `python benchmarks/cluster.py`" in block
    assert "Not measured yet: run `python benchmarks/video.py`" in block


def test_main_rewrites_only_the_block_and_check_then_passes(results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n\n{report.BEGIN}\n| typed | by hand |\n"
                      f"{report.END}\n\nafter\n")
    assert report.main(["--results", str(results), "--readme", str(readme), "--check"]) == 1
    assert report.main(["--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n\n") and text.endswith(f"{report.END}\n\nafter\n")
    assert "typed | by hand" not in text and "0.381 ms/task" in text
    assert report.main(["--results", str(results), "--readme", str(readme), "--check"]) == 0


def test_readme_without_markers_is_an_error_naming_them():
    with pytest.raises(ValueError, match="figures:begin"):
        report.replace_block("# no block here\n", "x")


def test_the_committed_readme_matches_the_committed_results():
    """The README's figures are never typed by hand: they are what report.py makes of the
    committed JSON."""
    assert report.main(["--results", str(REPO / "benchmarks" / "results"),
                        "--readme", str(REPO / "README.md"), "--check"]) == 0


def test_describe_says_machine_load_and_revision():
    text = meta.describe({**META, "background_load": 2})
    assert "2 CPUs (Test CPU), 24 GiB" in text and "git 0123456789" in text
    assert "2 busy-loop processes" in text


def rl_doc() -> dict:
    return {**META, "benchmark": "rl", "config": {"rounds": 3, "quick": False, "ray": "2.60.0"},
            "results": {
                "es_cartpole": {"command_s": 1.84, "wall_s": 1.2, "train_s": 0.6, "iterations": 16,
                                "env_steps": 40569, "reached": True, "target_s": 2.0},
                "es_phases": {"process_start_s": 0.6, "engine_start_s": 0.5, "until_first_iteration_s": 0.4,
                              "table_made_s": 0.3, "iterations_s": 0.3},
                "noise_table": {"mib": 95.37, "nodes": 1, "shared_s": 0.5, "store_growth_mib": 95.4,
                                "worker_private_mib": 21.0},
                "tiny_tasks": {"ownrun_episodes_per_s": 1200.0, "serial_episodes_per_s": 2000.0,
                               "episode_ms": 0.5, "ray_episodes_per_s": 300.0, "ownrun_vs_ray": 4.0},
                "table4": {"serial_steps_per_s": 20000.0, "barrier_steps_per_s": 18000.0,
                           "gather_steps_per_s": 16000.0, "gather_vs_serial": 0.8, "gather_vs_barrier": 0.9}},
            "rounds": {"es": [{"loadavg": [9.0, 12.5]}], "tiny_ownrun": [{"loadavg": [8.0, 8.0]}],
                       "tiny_ray": [], "table4": [{"loadavg": [10.0, 11.0]}]},
            "errors": []}


def test_rl_figures_come_from_rl_json_with_targets_met_or_not_and_the_load(results):
    (results / "rl.json").write_text(json.dumps(rl_doc()))
    block = report.render_block(results)
    assert "### RL rollouts (`ownrun rl`)" in block
    assert "| 1.84 s / 1.20 s (16 iterations, 40,569 env steps) | ≤ 2 s ✓ | 9–12 |" in block
    assert "Ray 2.60.0: 300/s, ownrun 4.0× Ray" in block and "≥ 3× Ray ✓" in block
    assert "(gather 0.80× serial, 0.90× barrier) | ≥ 1.6× serial, ≥ 1.2× barrier ✗ | 10–11 |" in block
    assert "95 MiB on 1 node (1.00× the table) / 21 MiB | ≤ 1.2× the table per node ✓" in block
    assert "Medians of 3 interleaved rounds" in block
    assert "16 iterations | 0.60 / 0.50 / 0.40 (0.30) / 0.30 s |" in block


def test_rl_section_says_how_to_measure_when_rl_json_is_missing(results):
    assert "Not measured yet: run `python benchmarks/rl.py`" in report.render_block(results)


def test_the_main_job_section_gives_each_run_its_idle_share_against_the_target(tmp_path):
    run = {"kept_up": True, "frames_per_s": 239.3, "target_frames_per_s": 240.0, "p50_s": 0.0056,
           "p99_s": 0.0305, "max_s": 0.33, "busy_share": 0.64, "idle_share": 0.36, "loadavg": [2.4, 3.1],
           "steal_share": 0.021, "job_cpu_share": 0.58}
    busy = {**run, "kept_up": False, "frames_per_s": 201.0, "busy_share": 0.95, "idle_share": 0.05}
    del busy["steal_share"], busy["job_cpu_share"]  # (recorded before these were measured)
    document = {**META, "benchmark": "main_job", "config": {"runs": 3, "target_idle_share": 0.3},
                "results": [run, busy, {"error": "exit code 1: ['boom']"}]}
    (tmp_path / "main_job.json").write_text(json.dumps(document))
    lines = report.main_job_section(json.loads((tmp_path / "main_job.json").read_text()))
    assert "| 1 | yes | 239 of 240 | 6 ms | 30 ms | 330 ms | 36% ✓ | 2% | 58% | 2.4–3.1 |" in lines
    assert "| 2 | no | 201 of 240 | 6 ms | 30 ms | 330 ms | 5% ✗ | — | — | 2.4–3.1 |" in lines
    assert "| 3 | failed: exit code 1: ['boom'] | | | | | | | | |" in lines
    assert "Not measured yet: run `python benchmarks/main_job.py`" in report.render_block(tmp_path / "none")
