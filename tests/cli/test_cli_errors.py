"""The CLI's error convention (cli/errors.py): each bad input -> its exit code and one line,
no traceback; Ctrl-C; every subcommand's own --help; flags shown as flags."""
import os
import subprocess
import sys

import pytest
from ownrun.benchmarks import micro
from ownrun.cli.main import app
from typer.main import get_command
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch):
    monkeypatch.delenv("OWNRUN_DEBUG", raising=False)
    monkeypatch.delenv("OWNRUN_CLUSTER_KEY", raising=False)


def invoke(*args: str):
    return runner.invoke(app, list(args), prog_name="ownrun")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(bytes(range(256)) * 20)  # no container at all: FFmpeg has much to say
    empty_dir = root / "not-a-run"
    empty_dir.mkdir()
    return {"MISSING": str(root / "missing.mp4"), "CORRUPT": str(corrupt), "DIR": str(empty_dir),
            "NOKEY": str(root / "no.key")}


# (arguments, exit code, words the one line must contain). FILE names come from `files`.
CASES = [
    (["video", "--size", "10x10"], 2, ["--size", "32x32"]),
    (["video", "--size", "big"], 2, ["--size", "WIDTHxHEIGHT"]),
    (["video", "--videos", "0"], 2, ["--videos"]),
    (["video", "--fail", "node@10s"], 2, ["--fail", "nodes"]),
    (["video", "--fail", "disk@10s"], 2, ["--fail", "decoder@10s"]),
    (["video", "--bogus"], 2, ["--bogus"]),
    (["video", "--address", "nohost"], 2, ["--address", "HOST:PORT"]),
    (["video", "--input", "MISSING"], 5, ["MISSING", "no such file"]),
    (["video", "--input", "CORRUPT"], 5, ["CORRUPT", "corrupt"]),
    (["video", "--input", "DIR"], 5, ["DIR"]),
    (["video", "plot", "DIR"], 5, ["DIR"]),
    (["no-such-command"], 2, ["no-such-command", "--help"]),
    (["start"], 2, ["--head", "--address"]),
    (["start", "--address", "not-an-address"], 2, ["--address", "HOST:PORT"]),
    (["start", "--address", "127.0.0.1:99999"], 2, ["--address", "HOST:PORT"]),
    (["start", "--address", "127.0.0.1:1"], 3, ["127.0.0.1:1"]),
    (["start", "--head", "--resources", "{oops"], 2, ["--resources", "JSON"]),
    (["status", "--address", "nohost"], 2, ["--address"]),
    (["status", "--address", "127.0.0.1:1", "--cluster-key", "NOKEY"], 5, ["NOKEY"]),
    (["kill-node"], 2, ["NODE_ID", "--random"]),
    (["bench", "--suite", "nope"], 2, ["--suite"]),
]


@pytest.mark.parametrize(("args", "code", "words"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_each_bad_input_is_one_line_with_its_exit_code(files, args, code, words):
    args = [files.get(a, a) for a in args]
    result = invoke(*args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    assert "unexpected" not in lines[0]
    for word in words:
        assert files.get(word, word) in lines[0], lines[0]


def test_a_corrupt_input_prints_no_ffmpeg_noise(files):
    """FFmpeg writes to fd 2 directly, so only a separate process shows whether it spoke."""
    result = subprocess.run([sys.executable, "-m", "ownrun.cli.main", "video", "--input", files["CORRUPT"]],
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")})
    assert result.returncode == 5, result.stdout + result.stderr
    assert result.stderr == ""
    assert result.stdout.strip().splitlines() == [
        f"error: {files['CORRUPT']}: cannot open video (corrupt or not a video file)"]


def test_ctrl_c_prints_interrupted_and_exits_130(monkeypatch):
    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(micro, "main", interrupted)
    result = invoke("bench")
    assert result.exit_code == 130
    assert result.output.strip().splitlines() == ["error: interrupted"]


def _commands(command, path=()):
    for name, sub in getattr(command, "commands", {}).items():
        yield (*path, name), sub
        yield from _commands(sub, (*path, name))


@pytest.mark.parametrize("path", [p for p, _ in _commands(get_command(app))], ids=" ".join)
def test_every_subcommand_has_its_own_help(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert f"ownrun {' '.join(path)} [OPTIONS]" in " ".join(result.output.split())


def test_flags_show_no_type_in_help():
    for args in (["--help"], ["video", "--help"], ["bench", "--help"], ["start", "--help"]):
        result = invoke(*args)
        assert result.exit_code == 0
        assert "<bool>" not in result.output, args
    assert "--debug" in invoke("--help").output
