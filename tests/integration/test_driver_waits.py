"""No driver call hangs (issue 11 §4, §6): when the driver's own node dies every pending and
later call raises LocalNodeDiedError; `shutdown()` ends the gets pending in other threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from ownrun import engine
from ownrun.engine import errors

from tests.conftest import wait_for


def _sleep(seconds):
    time.sleep(seconds)
    return seconds


def _square(x):
    return x * x


def test_pending_and_later_calls_raise_local_node_died_when_the_drivers_daemon_is_killed():
    engine.init(num_cpus=1)
    try:
        big = engine.put(np.zeros(2_000_000, dtype=np.uint8))  # in the node's shared-memory store
        assert engine.get(engine.remote(_square).remote(3), timeout=60) == 9
        pending = engine.remote(_sleep).remote(3600)
        outcome = {}

        def waiter():
            try:
                outcome["value"] = engine.get(pending)  # no timeout: must not hang
            except BaseException as exc:  # noqa: BLE001
                outcome["error"] = exc

        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        wait_for(lambda: engine.cluster.nodes()[0]["available"].get("CPU") == 0.0, timeout=60,
                 message="the sleeping task holds the node's CPU")
        engine.cluster.kill_node(engine.cluster.node_ids()[0])  # the driver's node: SIGKILL
        wait_for(lambda: "error" in outcome or "value" in outcome, timeout=10, message="the pending get ended")
        assert isinstance(outcome.get("error"), errors.LocalNodeDiedError), outcome
        with pytest.raises(errors.LocalNodeDiedError):
            engine.get(big, timeout=30)
        with pytest.raises(errors.LocalNodeDiedError):
            engine.remote(_square).remote(4)
        with pytest.raises(errors.LocalNodeDiedError):
            engine.put(1)
        with pytest.raises(errors.LocalNodeDiedError):
            engine.wait([pending], timeout=30)
    finally:
        engine.shutdown()


def _pending_get(ref) -> tuple[threading.Thread, dict]:
    outcome = {}

    def waiter():
        try:
            outcome["value"] = engine.get(ref)  # no timeout: must not hang
        except BaseException as exc:  # noqa: BLE001
            outcome["error"] = exc

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    return thread, outcome


def test_shutdown_fails_the_gets_pending_in_other_threads():
    engine.init(num_cpus=1)
    try:
        pending = engine.remote(_sleep).remote(3600)
        _, outcome = _pending_get(pending)
        wait_for(lambda: engine.cluster.nodes()[0]["available"].get("CPU") == 0.0, timeout=60,
                 message="the sleeping task holds the node's CPU")
    finally:
        engine.shutdown()
    wait_for(lambda: outcome, timeout=10, message="the pending get ended")
    assert isinstance(outcome.get("error"), errors.RuntimeNotInitializedError), outcome
