"""`engine.init(get_spin_us=...)` reaches the driver's get: 0 turns the spin off (no poll of the
machine's spare CPUs before any wait), the default spins (worker/spin_window.py)."""

from __future__ import annotations

import pytest
from ownrun import engine
from ownrun.engine import object_ref
from ownrun.engine.worker import spin_window


@engine.remote
def takes_a_millisecond():
    import time

    time.sleep(0.001)  # the work itself: the driver's get must wait for it
    return 1


@pytest.mark.parametrize("spin_us, spins", [(0, False), (None, True)])
def test_get_spin_us_reaches_the_driver_s_get(monkeypatch, spin_us, spins):
    options = {} if spin_us is None else {"get_spin_us": spin_us}
    engine.init(num_cpus=1, **options)
    try:
        asked: list = []
        monkeypatch.setattr(spin_window, "spare_cpu", lambda: asked.append(1) or True)
        assert engine.get(takes_a_millisecond.remote(), timeout=60) == 1
        assert bool(asked) is spins
        assert object_ref.current_worker()._spin.max_ns == (0 if spin_us == 0 else spin_window.MAX_NS)
    finally:
        engine.shutdown()
