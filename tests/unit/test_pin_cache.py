"""PinCache: a process's cached pins on local objects (engine/store/pin_cache.py)."""

from __future__ import annotations

import random

from ownrun.engine.store.object_store import Placement
from ownrun.engine.store.pin_cache import PinCache

P = Placement("shm", "/dev/shm/arena", 0, 1 << 20, False)


def test_a_pin_is_reused_while_held_and_dropped_after_the_last_view_and_the_linger():
    pins = PinCache(linger=0.1)
    assert pins.acquire(b"a") is None
    assert pins.add(b"a", P, 1, now=0.0)
    assert pins.acquire(b"a") == P  # a second view, no daemon
    pins.view_released(b"a")
    assert pins.take_unpins(now=1.0) == []  # one view still alive
    pins.view_released(b"a")
    assert pins.take_unpins(now=1.05) == []  # unused for less than the linger
    assert pins.take_unpins(now=1.2) == [b"a"]
    assert pins.acquire(b"a") is None and len(pins) == 0
    pins.validate_state()


def test_a_puts_pin_without_views_is_dropped_at_once_before_creating():
    pins = PinCache(linger=10.0)
    pins.add(b"put", P, 0, now=5.0)
    pins.add(b"read", P, 1, now=5.0)
    assert pins.take_unpins(now=5.0, everything=True) == [b"put"]  # the viewed one stays
    pins.validate_state()


def test_a_racing_second_pin_is_reported_and_its_views_counted_once():
    pins = PinCache(linger=0.0)
    assert pins.add(b"a", P, 1, now=0.0)
    assert not pins.add(b"a", P, 1, now=0.0)  # the caller releases its extra pin
    pins.view_released(b"a")
    assert pins.take_unpins(now=1.0) == []
    pins.view_released(b"a")
    assert pins.take_unpins(now=1.0) == [b"a"]


def test_random_runs_never_drop_a_pin_with_a_live_view():
    rng = random.Random(7)
    for _ in range(50):
        pins, live, now = PinCache(linger=0.05), {}, 0.0  # live: oid -> views the "process" holds
        for _ in range(200):
            now += rng.random() * 0.03
            oid = bytes([rng.randrange(4)])
            op = rng.random()
            if op < 0.4:
                if pins.acquire(oid) is None:
                    pins.add(oid, P, 1, now)
                live[oid] = live.get(oid, 0) + 1
            elif op < 0.8 and live.get(oid):
                live[oid] -= 1
                pins.view_released(oid)
            else:
                for dropped in pins.take_unpins(now, everything=rng.random() < 0.3):
                    assert not live.get(dropped), "a pin was dropped while a view was alive"
            pins.validate_state()
