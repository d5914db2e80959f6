"""`ray`, renamed: ownrun's public API under Ray Core's names, so Ray's own test files run
against ownrun unchanged (tools/ray_compat/README.md).

Renaming only. Every name here is ownrun's own object (`ownrun.engine`); nothing adds,
emulates or adjusts behaviour. A Ray name ownrun lacks is simply absent: using it raises
AttributeError, and that failure is what the measurement counts. Internal modules
(`ray._private`, `ray._raylet`, ...) import as markers that raise `UsesRayInternals` when
used (ray/_internals.py), so a test file that imports them still collects.
"""

from ownrun import engine as _engine
from ownrun.engine import (  # noqa: F401 - re-exported under Ray's names
    ObjectID,
    ObjectRef,
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_actor,
    get_gpu_ids,
    get_node_ip_address,
    get_runtime_context,
    is_initialized,
    kill,
    method,
    nodes,
    put,
    remote,
    shutdown,
    timeline,
    wait,
)

from . import _internals

_internals.install()

from . import actor, cloudpickle, exceptions, util  # noqa: E402,F401


def init(address=None, *args, **kwargs):
    """`ownrun.engine.init`. The one addition: the address of a `ray.cluster_utils.Cluster`
    (the test fixture's cluster, already started by its first `add_node`) names the embedded
    cluster this process already drives (see ray/cluster_utils.py)."""
    from .cluster_utils import EMBEDDED_ADDRESS

    if address == EMBEDDED_ADDRESS and _engine.is_initialized() and not args and not kwargs:
        return _engine.init(ignore_reinit_error=True)
    return _engine.init(address, *args, **kwargs)


def __getattr__(name):
    # Ray names ownrun has under the same name but that this file does not list.
    if not name.startswith("__") and hasattr(_engine, name):
        return getattr(_engine, name)
    raise AttributeError(f"module 'ray' has no attribute {name!r} (ownrun has no such API)")
