"""Remote functions more than one integration module uses.

Workers cannot import test modules (nor this one): like the test modules (see conftest.py),
this module's functions are shipped by value.
"""

from __future__ import annotations

import os
import sys
import time

import cloudpickle
from ownrun import engine

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@engine.remote
def wait_for_file(path, seconds=300.0):
    """Returns "go" once `path` exists, "timeout" if it did not appear within `seconds`: a
    task the test finishes when it chooses, whatever the machine's speed."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return "timeout"
        time.sleep(0.01)
    return "go"
