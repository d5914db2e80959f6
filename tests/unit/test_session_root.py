"""The per-user session root: where it is, created 0700, refused when someone else could write it."""

from __future__ import annotations

import os
import stat

import pytest
from ownrun.engine import errors
from ownrun.engine.cluster import paths, state


@pytest.fixture
def no_root_env(monkeypatch):
    monkeypatch.delenv(paths.ROOT_ENV, raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return monkeypatch


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_default_root_is_per_user_in_tmp(no_root_env):
    assert paths.default_root() == f"/tmp/ownrun-{os.getuid()}"


def test_root_is_under_a_usable_xdg_runtime_dir(no_root_env, tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    no_root_env.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert paths.default_root() == str(runtime / "ownrun")
    no_root_env.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert paths.default_root() == f"/tmp/ownrun-{os.getuid()}"


def test_root_and_session_dirs_are_created_0700(monkeypatch, tmp_path):
    root = tmp_path / "nested" / "ownrun"
    monkeypatch.setenv(paths.ROOT_ENV, str(root))
    session = paths.new_session_dir()
    assert _mode(str(root)) == 0o700
    assert _mode(session) == 0o700 and _mode(os.path.join(session, "logs")) == 0o700


def test_state_files_are_0600(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path / "ownrun"))
    with state.locked():
        state.save({"head_address": "tcp://127.0.0.1:1"})
    session = paths.new_session_dir()
    state.write_session(session, [1], None)
    for path in (paths.state_file(), paths.state_file() + ".lock", paths.session_file(session)):
        assert _mode(path) == 0o600, path


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o722])
def test_a_root_writable_by_group_or_others_is_refused_in_one_line(monkeypatch, tmp_path, mode):
    root = tmp_path / "ownrun"
    root.mkdir()
    root.chmod(mode)
    monkeypatch.setenv(paths.ROOT_ENV, str(root))
    with pytest.raises(errors.ClusterError) as info:
        paths.new_session_dir()
    message = str(info.value)
    assert "\n" not in message and str(root) in message and "writable by" in message
    assert os.listdir(root) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_root_owned_by_another_user_is_refused_in_one_line(monkeypatch, tmp_path):
    root = tmp_path / "ownrun"
    root.mkdir(mode=0o700)
    os.chown(root, 65534, 65534)  # nobody
    monkeypatch.setenv(paths.ROOT_ENV, str(root))
    with pytest.raises(errors.ClusterError) as info:
        state.read()
    message = str(info.value)
    assert "\n" not in message and str(root) in message and "owned by uid 65534" in message


def test_a_file_in_place_of_the_root_is_refused(monkeypatch, tmp_path):
    root = tmp_path / "ownrun"
    root.write_text("")
    monkeypatch.setenv(paths.ROOT_ENV, str(root))
    with pytest.raises(errors.ClusterError, match="not a directory"):
        paths.new_session_dir()
