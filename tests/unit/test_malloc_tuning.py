"""The malloc settings reach spawned processes' environments without overriding the user's."""

import platform

import pytest
from ownrun.engine.util import malloc_tuning


def test_child_env_adds_the_settings_the_user_has_not_set():
    env = malloc_tuning.child_env({"PATH": "/bin", "MALLOC_TOP_PAD_": "1"})
    assert env["PATH"] == "/bin"
    assert env["MALLOC_TOP_PAD_"] == "1"  # the user's value wins
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(malloc_tuning.SETTINGS["MALLOC_TRIM_THRESHOLD_"])
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(malloc_tuning.SETTINGS["MALLOC_MMAP_THRESHOLD_"])


def test_apply_takes_effect_on_glibc():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert malloc_tuning.apply() is True
    assert malloc_tuning.apply() is True  # once is enough; again is harmless
