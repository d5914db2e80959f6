"""util/gc_tuning.py: the threshold is raised only from Python's default; freeze takes the
objects alive now out of future collections."""

import gc

import pytest
from ownrun.engine.util import gc_tuning


@pytest.fixture()
def saved_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_python_default_threshold_is_raised(saved_gc):
    gc.set_threshold(*gc_tuning.PYTHON_DEFAULT)
    gc_tuning.apply()
    assert gc.get_threshold() == gc_tuning.THRESHOLD
    assert gc.get_freeze_count() == 0  # a driver's objects are never frozen


def test_a_threshold_the_program_set_is_kept(saved_gc):
    gc.set_threshold(1234, 5, 6)
    gc_tuning.apply()
    assert gc.get_threshold() == (1234, 5, 6)


def test_freeze_takes_the_objects_alive_now_out_of_collections(saved_gc):
    gc.set_threshold(*gc_tuning.PYTHON_DEFAULT)
    gc_tuning.apply(freeze=True)
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == gc_tuning.THRESHOLD


def test_the_environment_names_another_threshold_and_junk_is_ignored(saved_gc, monkeypatch):
    monkeypatch.setenv(gc_tuning.ENV_THRESHOLD, "700,10,10")
    gc.set_threshold(*gc_tuning.PYTHON_DEFAULT)
    gc_tuning.apply()
    assert gc.get_threshold() == (700, 10, 10)
    for junk in ("lots", "1,2", "-5,10,10", ""):
        monkeypatch.setenv(gc_tuning.ENV_THRESHOLD, junk)
        assert gc_tuning.threshold() == gc_tuning.THRESHOLD
