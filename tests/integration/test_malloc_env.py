"""Every process of an embedded cluster runs with the engine's malloc settings."""

import os

from ownrun import engine
from ownrun.engine.util import malloc_tuning


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
