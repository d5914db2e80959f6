"""benchmarks/pipeline_floors.py: the mini pipeline's floors run (side by side, the minimal
dispatcher one message per task and batched, the stages' CPU in its workers), the dispatcher's
results match the serial run, no peer process is left behind; compare shows them in its row."""
import pathlib
import stat
import subprocess
import sys

import psutil
import pytest
import zmq
from ownrun.benchmarks import bodies, compare, pipeline_floors

QUICK = bodies.Sizes(quick=True)


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batch", [1, pipeline_floors.BATCH])
def test_the_minimal_dispatcher_computes_the_serial_results_and_stops_its_workers(batch):
    before = _children()
    dispatcher = pipeline_floors._Dispatcher(workers=2, timeout_s=60, batch=batch)
    try:
        fps, stage_cpu_s, values = dispatcher.run(QUICK.videos, QUICK.frames)
    finally:
        dispatcher.close()
    assert fps > 0
    assert 0 < stage_cpu_s < 1  # the stages' CPU per frame, as the workers measured it
    assert values == bodies.pipeline(QUICK.videos, QUICK.frames, lambda fn: fn)
    assert _children() == before


@pytest.mark.timeout(120)
def test_side_by_side_sums_every_process_and_stops_them():
    before = _children()
    one = pipeline_floors.side_by_side_fps(1, QUICK, repeat=1)
    two = pipeline_floors.side_by_side_fps(2, QUICK, repeat=1)
    assert one > 0 and two > 0
    assert _children() == before


def test_a_dispatcher_worker_that_never_answers_is_a_timeout(monkeypatch):
    monkeypatch.setattr(pipeline_floors, "_peer_command",
                        lambda *args: ["sleep", "60"])  # a peer that reads nothing
    before = _children()
    with pytest.raises(TimeoutError, match="did not answer"):
        pipeline_floors.dispatcher_fps(1, QUICK, rounds=1, timeout_s=0.5)
    assert _children() == before


def test_the_pipeline_row_shows_each_floor_and_ownruns_share_of_it():
    floors = {"video_limit_fps": {"median": 1000.0}, "video_serial_fps": {"median": 500.0},
              "video_side_by_side_fps": {"median": 900.0},
              "video_dispatcher_fps": {"median": 450.0},
              "video_batched_dispatcher_fps": {"median": 500.0},
              "video_worker_stages_fps": {"median": 800.0}}
    document = {"cpus": 2, "summary": {"ownrun": {"video_batch": {
        "median": 400.0, "min": 400.0, "max": 400.0, "rounds": [400.0]}},
        compare.FLOORS: floors}, "columns": ["ownrun"], "background_load": 0,
        "systems": {"ownrun": {"available": True}}}
    [row] = compare.table_rows(document)
    assert row["floor"] == "1,000 (500 serial × 2); 900 side by side; 450 minimal dispatcher; " \
        "500 batched dispatcher; 800 stages alone in workers"
    assert row["ownrun vs floor"] == "40% of serial × 2; 44% of side by side; " \
        "89% of minimal dispatcher; 80% of batched dispatcher; 50% of stages alone in workers"


def test_a_worker_that_cannot_start_takes_the_ones_started_before_it(monkeypatch):
    started = []
    real_popen = pipeline_floors.subprocess.Popen

    def popen(command, **kwargs):
        if started:
            raise OSError("no such interpreter")
        started.append(real_popen(["sleep", "60"], **kwargs))
        return started[0]

    monkeypatch.setattr(pipeline_floors.subprocess, "Popen", popen)
    with pytest.raises(OSError, match="no such interpreter"):
        pipeline_floors._Dispatcher(workers=2, timeout_s=1)
    assert started[0].poll() is not None  # killed and reaped


def test_the_dispatcher_listens_only_in_a_private_directory_removed_with_it():
    dispatcher = pipeline_floors._Dispatcher(workers=1, timeout_s=60)
    try:
        directory = pathlib.Path(dispatcher.directory)
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        endpoint = dispatcher.results.getsockopt(zmq.LAST_ENDPOINT).decode()
        assert endpoint == f"ipc://{directory}/results"  # no TCP port anyone could reach
    finally:
        dispatcher.close()
    assert not directory.exists()


def test_cpus_below_one_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "ownrun.benchmarks.pipeline_floors",
                           "--cpus", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "argument --cpus: must be at least 1, not 0" in proc.stderr
