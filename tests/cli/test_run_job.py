"""`ownrun run` end to end: runs in their own processes, a failing or hung run does not stop the
others, --resume skips what finished, Ctrl-C leaves nothing behind, and tiny video jobs (the
shipped paper-video config among them) produce the summary and the CDF plot."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from conftest import SHM_GLOB, process_gone, wait_for
from ownrun.apps.jobs import ledger
from ownrun.cli.main import app
from typer.testing import CliRunner

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
USER_CODE = '''
import os, time
from ownrun import engine

@engine.remote
def double(x):
    return 2 * x

def work(n, counter=None):
    if counter:
        with open(counter, "a") as f:
            f.write("x\\n")
    return {"n": n, "doubled": sum(engine.get([double.remote(k) for k in range(n)]))}

def boom():
    raise ValueError("bad input 42")

def flaky(marker):
    if not os.path.exists(marker):
        raise RuntimeError("first attempt fails")
    return {"ok": True}

def forever(started):
    open(started, "w").close()
    while True:
        engine.get(double.remote(1))
        time.sleep(0.05)
'''


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), prog_name="ownrun")


def job_file(tmp_path, body: str, fresh: bool = False, timeout_s: float = 120) -> Path:
    (tmp_path / "userjobs.py").write_text(USER_CODE)
    path = tmp_path / "job.toml"
    path.write_text(textwrap.dedent(f"""
        [job]
        name = "t"
        runs_dir = "{tmp_path / 'runs'}"
        fresh_cluster = {str(fresh).lower()}
        timeout_s = {timeout_s}
        [cluster]
        num_cpus = 1
        [app]
        kind = "python"
        [app.python]
        entrypoint = "userjobs:work"
    """) + textwrap.dedent(body))
    return path


def the_run_dir(tmp_path) -> Path:
    (run_dir,) = (tmp_path / "runs" / "t").iterdir()
    return run_dir


def statuses(run_dir: Path) -> dict[str, str]:
    return {e["run"]: e["status"] for e in ledger.read(run_dir / "ledger.jsonl") if e["event"] == "run_end"}


def test_a_failing_and_a_hung_run_are_recorded_and_the_others_still_run(tmp_path):
    path = job_file(tmp_path, """
        [[runs]]
        name = "first"
        kwargs = { n = 3 }
        [[runs]]
        name = "broken"
        entrypoint = "userjobs:boom"
        [[runs]]
        name = "hung"
        entrypoint = "userjobs:forever"
        kwargs = { started = "started.txt" }
        [[runs]]
        name = "last"
        kwargs = { n = 4 }
    """, timeout_s=20)
    result = invoke("run", str(path))
    assert result.exit_code == 1, result.output
    run_dir = the_run_dir(tmp_path)
    assert statuses(run_dir) == {"first": "ok", "broken": "failed", "hung": "timeout", "last": "ok"}
    ends = {e["run"]: e for e in ledger.read(run_dir / "ledger.jsonl") if e["event"] == "run_end"}
    assert ends["broken"]["error"] == "ValueError: bad input 42"
    assert json.loads((run_dir / "last" / "summary.json").read_text()) == {"n": 4, "doubled": 12}
    csv_lines = (run_dir / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("run,status,duration_s")
    assert [line.split(",")[:2] for line in csv_lines[1:]] == [["first", "ok"], ["broken", "failed"],
                                                               ["hung", "timeout"], ["last", "ok"]]
    assert "| broken | failed |" in (run_dir / "summary.md").read_text()
    assert {"job.toml", "resolved.json", "ledger.jsonl"} <= {p.name for p in run_dir.iterdir()}


def test_resume_skips_the_runs_that_finished_with_the_same_config(tmp_path):
    counter = tmp_path / "counter.txt"
    path = job_file(tmp_path, f"""
        [[runs]]
        name = "done"
        kwargs = {{ n = 2, counter = "{counter}" }}
        [[runs]]
        name = "flaky"
        entrypoint = "userjobs:flaky"
        kwargs = {{ marker = "{tmp_path / 'fixed'}" }}
    """)
    first = invoke("run", str(path))
    assert first.exit_code == 1, first.output
    run_dir = the_run_dir(tmp_path)
    assert statuses(run_dir) == {"done": "ok", "flaky": "failed"}
    (tmp_path / "fixed").touch()
    second = invoke("run", str(path), "--resume", str(run_dir))
    assert second.exit_code == 0, second.output
    assert counter.read_text().count("x") == 1, "the finished run ran again"
    events = ledger.read(run_dir / "ledger.jsonl")
    assert [e["run"] for e in events if e["event"] == "run_skipped"] == ["done"]
    assert statuses(run_dir) == {"done": "ok", "flaky": "ok"}
    third = invoke("run", str(path), "--resume", str(run_dir), "--set", "runs.done.kwargs.n=5")
    assert third.exit_code == 0, third.output
    assert counter.read_text().count("x") == 2, "a run whose config changed must run again"


def test_check_dry_run_and_only(tmp_path):
    path = job_file(tmp_path, "[matrix]\nkwargs.n = [1, 2, 3]\n")
    check = invoke("run", str(path), "--check")
    assert check.exit_code == 0 and "ok (3 runs of kind python)" in check.output
    dry = invoke("run", str(path), "--dry-run", "--only", "n=1,n=3")
    assert dry.exit_code == 0 and "n=1" in dry.output and "n=3" in dry.output and "n=2" not in dry.output
    assert not (tmp_path / "runs").exists()
    unknown = invoke("run", str(path), "--only", "n=9")
    assert unknown.exit_code == 2 and "no run named 'n=9'" in unknown.output


def test_a_bad_job_file_lists_every_problem_and_exits_2(tmp_path):
    path = job_file(tmp_path, "[[runs]]\nname = \"a\"\nkwarg = { n = 1 }\n")
    path.write_text(path.read_text().replace("timeout_s", "timeout"))
    result = invoke("run", str(path))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0] == f"{path}:6: job.timeout: unknown key (did you mean 'timeout_s'?)"
    assert lines[1] == f"{path}:15: runs[0].kwarg: unknown key (did you mean 'kwargs'?)"
    assert lines[2] == f"error: {path}: 2 problems (listed above)"
    missing = invoke("run", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 5


_SESSION_PID = re.compile(r"^ownrun-session_[^_]+_[^_]+_(\d+)_")


def _shm_of(pids: set[int]) -> list[str]:
    import glob

    out = []
    for path in glob.glob(SHM_GLOB):
        match = _SESSION_PID.match(os.path.basename(path))
        if match and int(match.group(1)) in pids:
            out.append(path)
    return out


@pytest.mark.parametrize("fresh", [False, True], ids=["shared-cluster", "fresh-cluster"])
def test_ctrl_c_ends_the_run_shuts_the_cluster_and_leaves_nothing(tmp_path, fresh):
    started = tmp_path / "started.txt"
    path = job_file(tmp_path, f"""
        [[runs]]
        name = "quick"
        kwargs = {{ n = 3 }}
        [[runs]]
        name = "endless"
        entrypoint = "userjobs:forever"
        kwargs = {{ started = "{started}" }}
        [[runs]]
        name = "never"
        kwargs = {{ n = 3 }}
    """, fresh=fresh)
    runner = subprocess.Popen([sys.executable, "-m", "ownrun.cli.main", "run", str(path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    me = psutil.Process(runner.pid)
    wait_for(started.exists, timeout=60, message="the endless run started")
    family = {me.pid} | {p.pid for p in me.children(recursive=True)}
    procs = [psutil.Process(pid) for pid in family if not process_gone(pid)]
    assert _shm_of(family), "the cluster has a store"
    runner.send_signal(signal.SIGINT)
    output, _ = runner.communicate(timeout=90)
    assert runner.returncode == 130, output
    assert "endless: interrupted" in output, output
    wait_for(lambda: all(process_gone(p) for p in procs), timeout=30, message="every process of the job exited")
    wait_for(lambda: not _shm_of(family), timeout=30, message="no /dev/shm file of the job's sessions")
    run_dir = the_run_dir(tmp_path)
    assert statuses(run_dir) == {"quick": "ok", "endless": "interrupted"}
    job_end = [e for e in ledger.read(run_dir / "ledger.jsonl") if e["event"] == "job_end"]
    assert job_end == [{**job_end[0], "status": "interrupted", "finished": ["quick"]}]


# ---- video ------------------------------------------------------------------------------------
TINY_VIDEO = ["--set", "app.video.videos=2", "--set", "app.video.fps=8", "--set", "app.video.frames=40",
              "--set", "app.video.size=160x120"]


def _video_rows(run_dir: Path) -> dict[str, dict]:
    import csv

    with open(run_dir / "summary.csv", newline="") as f:
        return {row["run"]: row for row in csv.DictReader(f)}


def test_two_tiny_video_runs_produce_the_summary_and_the_cdf_plot(tmp_path):
    path = tmp_path / "video.toml"
    path.write_text(textwrap.dedent(f"""
        [job]
        name = "tiny"
        runs_dir = "{tmp_path / 'runs'}"
        [cluster]
        num_cpus = 2
        [app]
        kind = "video"
        [matrix]
        checkpoint_interval = [0, 8]
    """))
    result = invoke("run", str(path), *TINY_VIDEO)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    rows = _video_rows(run_dir)
    assert sorted(rows) == ["checkpoint_interval=0", "checkpoint_interval=8"]
    for name, row in rows.items():
        assert row["status"] == "ok"
        assert row["frames_delivered"] == row["frames_expected"] == "80"
        assert float(row["latency_above_floor_s.p50"]) >= 0
        assert (run_dir / name / "frames.csv").exists()
    assert (run_dir / "latency_cdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    compare = invoke("runs", "compare", str(run_dir), str(run_dir / "checkpoint_interval=8"),
                     "--out", str(tmp_path / "cmp.csv"), "--plot", str(tmp_path / "cmp.png"))
    assert compare.exit_code == 0, compare.output
    assert len((tmp_path / "cmp.csv").read_text().splitlines()) == 4
    assert (tmp_path / "cmp.png").exists()


def test_shipped_example_python_config_runs_end_to_end(tmp_path):
    result = invoke("run", str(CONFIGS / "example-python.toml"), "--set", f"job.runs_dir={tmp_path}",
                    "--set", "matrix.kwargs.n=[2000, 200000]")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "example-python").iterdir()
    assert set(statuses(run_dir).values()) == {"ok"} and len(statuses(run_dir)) == 5


@pytest.mark.timeout(300)  # seven runs, each starting its own cluster (about 90 s on a quiet 2-core machine)
def test_shipped_paper_video_config_runs_end_to_end_at_a_tiny_scale(tmp_path):
    fails = [f"runs.{name}.fail={kind}@2s" for name, kind in
             (("decoder-failure", "decoder"), ("owner-failure", "owner"), ("owner-failure-cp30", "owner"),
              ("node-failure", "node"))]
    # The node failure on 2 nodes: the killed node hosted every Decoder; they restart on node 0.
    args = [*TINY_VIDEO, "--set", f"job.runs_dir={tmp_path}", "--set", "runs.owner-failure-cp30.checkpoint_interval=8",
            "--set", "runs.node-failure.cluster.nodes=2"]
    for item in fails:
        args += ["--set", item]
    result = invoke("run", str(CONFIGS / "paper-video.toml"), *args)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "paper-video").iterdir()
    rows = _video_rows(run_dir)
    assert list(rows) == ["ownership", "centralized", "by-value", "decoder-failure", "owner-failure",
                          "owner-failure-cp30", "node-failure"]
    assert all(row["status"] == "ok" and row["frames_delivered"] == "80" for row in rows.values()), rows
    for name in ("decoder-failure", "owner-failure", "node-failure"):
        summary = json.loads((run_dir / name / "summary.json").read_text())
        assert "error" not in summary["failures"][0], summary["failures"]
    node = json.loads((run_dir / "node-failure" / "summary.json").read_text())["failures"][0]
    assert node["videos"] == ["v0", "v1"] and node["decoders_restart_on"].startswith("node 0"), node
    assert (run_dir / "latency_cdf.png").exists()


# ---- rl ---------------------------------------------------------------------------------------
def test_shipped_rl_es_config_runs_with_and_without_a_killed_worker_and_draws_the_curves(tmp_path):
    # One seed, a 400 KB noise table and 4-episode iterations stopped at 2,000 env steps: two fresh
    # clusters, a few seconds each; the kill lands as training starts.
    result = invoke("run", str(CONFIGS / "rl-es.toml"), "--set", f"job.runs_dir={tmp_path}",
                    "--set", "matrix.seed=[0]", "--set", 'matrix.fail=["none", "worker@0s"]',
                    "--set", "app.rl.noise_size=100000", "--set", "app.rl.episodes_per_iter=4",
                    "--set", "app.rl.max_steps=2000", "--set", "app.rl.eval_episodes=1", "--set", "app.rl.target=1e9")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "rl-es").iterdir()
    assert statuses(run_dir) == {"fail=none": "ok", "fail=worker_0s": "ok"}
    calm = json.loads((run_dir / "fail=none" / "summary.json").read_text())
    killed = json.loads((run_dir / "fail=worker_0s" / "summary.json").read_text())
    assert calm["algorithm"] == "es" and calm["failures"] == [] and calm["env_steps"] >= 2000
    assert "error" not in killed["failures"][0], killed["failures"]
    assert killed["failures"][0]["replacement_pid"] != killed["failures"][0]["pid"]
    assert killed["all_exact"] and killed["owner_attempts"] == 1
    assert (run_dir / "fail=none" / "iterations.csv").exists()
    assert (run_dir / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "all_exact" in (run_dir / "summary.md").read_text()
