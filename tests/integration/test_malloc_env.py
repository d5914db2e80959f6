"""Every process of an embedded cluster runs with the engine's malloc and garbage-collector
settings."""

import gc
import os

from ownrun import engine
from ownrun.engine.util import gc_tuning, malloc_tuning


def test_workers_inherit_the_malloc_settings():
    engine.init(num_cpus=1)
    try:
        @engine.remote
        def settings():
            return {k: os.environ.get(k) for k in malloc_tuning.SETTINGS}

        got = engine.get(settings.remote(), timeout=60)
        for name, value in malloc_tuning.SETTINGS.items():
            assert got[name] == os.environ.get(name, str(value))
    finally:
        engine.shutdown()


def test_workers_start_with_the_collector_threshold_and_the_zygotes_objects_frozen():
    engine.init(num_cpus=1)
    try:
        @engine.remote
        def collector():
            return gc.get_threshold(), gc.get_freeze_count()

        threshold, frozen = engine.get(collector.remote(), timeout=60)
        assert tuple(threshold) == gc_tuning.THRESHOLD
        assert frozen > 10_000  # the engine's modules, numpy, cloudpickle, zmq: imported before the fork
    finally:
        engine.shutdown()
