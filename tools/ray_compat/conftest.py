"""The fixtures Ray's core test files use, each starting and stopping an ownrun embedded
cluster through the renamed `ray` package (tools/ray_compat/README.md).

They mirror Ray's python/ray/tests/conftest.py: 1 CPU and a 150 MiB store unless the test's
`request.param` says otherwise. Ray's fixtures also pass `namespace=` (a per-test-session
name, for isolation between Ray's test processes), `dashboard_port=None` and `_system_config`
(internal tuning); those are the harness's, not the test's, and are not passed here. A
parametrized fixture's own `_system_config` is passed on (ownrun rejects a non-empty one:
such tests count as using internals).
"""

import pytest
import ray
from ray.cluster_utils import Cluster

DEFAULTS = {"num_cpus": 1, "object_store_memory": 150 * 1024 * 1024}


def _fresh() -> None:
    """A function-scoped fixture ends a module-shared cluster still running. In Ray's own runs
    the tests between them call ray.shutdown(); run.py deselects some of those (the ones
    using internals), and without this the next ray.init() would raise "already called"."""
    if ray.is_initialized():
        ray.shutdown()


def _param(request) -> dict:
    return dict(getattr(request, "param", None) or {})


def _start(**kwargs):
    _fresh()
    init_kwargs = dict(DEFAULTS)
    init_kwargs.update(kwargs)
    return ray.init(**init_kwargs)


@pytest.fixture
def shutdown_only():
    _fresh()
    yield None
    ray.shutdown()


@pytest.fixture
def ray_start_regular(request):
    info = _start(**_param(request))
    yield info
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_start_regular_shared(request):
    info = _start(**_param(request))
    yield info
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_start_regular_shared_2_cpus(request):
    info = _start(**{"num_cpus": 2, **_param(request)})
    yield info
    ray.shutdown()


@pytest.fixture
def ray_start_2_cpus(request):
    info = _start(**{"num_cpus": 2, **_param(request)})
    yield info
    ray.shutdown()


@pytest.fixture
def ray_start_10_cpus(request):
    info = _start(**{"num_cpus": 10, **_param(request)})
    yield info
    ray.shutdown()


@pytest.fixture
def ray_start_no_cpu(request):
    info = _start(**{**_param(request), "num_cpus": 0})
    yield info
    ray.shutdown()


@pytest.fixture
def ray_start_object_store_memory(request):
    _fresh()
    ray.init(num_cpus=1, object_store_memory=request.param)
    yield request.param
    ray.shutdown()


def _cluster(param: dict, do_init=False, num_nodes=0):
    param = dict(param)
    param.pop("skip_cluster", None)
    num_nodes = param.pop("num_nodes", num_nodes)
    param.pop("do_init", None)
    _fresh()
    cluster = Cluster()
    for _ in range(num_nodes):
        cluster.add_node(**{**DEFAULTS, **param})
    return cluster


@pytest.fixture
def ray_start_cluster(request):
    cluster = _cluster(_param(request))
    yield cluster
    ray.shutdown()


@pytest.fixture
def ray_start_cluster_enabled(request):
    cluster = _cluster(_param(request))
    yield cluster
    ray.shutdown()


@pytest.fixture
def ray_start_cluster_init(request):
    cluster = _cluster(_param(request), do_init=True)
    yield cluster
    ray.shutdown()


@pytest.fixture
def ray_start_cluster_head(request):
    cluster = _cluster(_param(request), do_init=True, num_nodes=1)
    yield cluster
    ray.shutdown()


@pytest.fixture
def ray_start_cluster_2_nodes(request):
    cluster = _cluster(_param(request), do_init=True, num_nodes=2)
    yield cluster
    ray.shutdown()


@pytest.fixture
def propagate_logs():
    yield
