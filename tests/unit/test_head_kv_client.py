"""`engine.kv` client behaviour with a fake core worker: retries while the head is away."""

from __future__ import annotations

import pytest
from ownrun.engine import errors, kv
from ownrun.engine.head.tables import HeadTables
from ownrun.engine.rpc import protocol as P

HEAD = "tcp://127.0.0.1:6379"


class FakeCore:
    """Answers head requests from real tables; the first `lost` calls time out after applying."""

    head_address = HEAD

    def __init__(self, tables: HeadTables, lost: int = 0, down: bool = False):
        self.tables, self.lost, self.down = tables, lost, down
        self.calls: list[tuple[int, float]] = []

    def call(self, address, kind, *fields, timeout=None):
        assert address == HEAD
        self.calls.append((kind, timeout))
        if self.down:
            raise errors.NodeUnreachableError("no answer")
        ops = {P.KV_PUT: self.tables.kv_put, P.KV_GET: self.tables.kv_get,
               P.KV_DELETE: self.tables.kv_delete, P.KV_LIST: self.tables.kv_list}
        result = ops[kind](*fields)
        if self.lost:
            self.lost -= 1
            raise errors.NodeUnreachableError("no answer")  # applied, but the reply was lost
        return result


@pytest.fixture
def tables(tmp_path):
    t = HeadTables.open(str(tmp_path))
    yield t
    t.close()


def use(monkeypatch, core: FakeCore) -> FakeCore:
    monkeypatch.setattr(kv, "_core", lambda: core)
    return core


def test_str_keys_are_utf8_and_values_must_be_bytes(monkeypatch, tables):
    use(monkeypatch, FakeCore(tables))
    assert kv.put("clé", b"v") is True
    assert tables.kv_get("clé".encode()) == b"v"
    assert kv.list("cl") == ["clé".encode()]
    with pytest.raises(TypeError, match="must be bytes, not str"):
        kv.put("k", "v")
    with pytest.raises(TypeError, match="not float"):
        kv.delete(1.5)


def test_a_lost_reply_is_retried(monkeypatch, tables):
    core = use(monkeypatch, FakeCore(tables, lost=1))
    assert kv.put("k", b"v") is True
    assert len(core.calls) == 2 and all(t <= kv.ATTEMPT_TIMEOUT for _, t in core.calls)


def test_put_without_overwrite_whose_first_copy_landed_reports_success(monkeypatch, tables):
    use(monkeypatch, FakeCore(tables, lost=1))
    assert kv.put("once", b"mine", overwrite=False) is True
    use(monkeypatch, FakeCore(tables, lost=1))
    assert kv.put("once", b"someone else's", overwrite=False) is False
    assert tables.kv_get("once") == b"mine"


def test_an_unreachable_head_raises_naming_its_address(monkeypatch, tables):
    monkeypatch.setattr(kv, "RETRY_FOR", 0.2)
    core = use(monkeypatch, FakeCore(tables, down=True))
    with pytest.raises(errors.NodeUnreachableError, match=f"kv.get: the head at {HEAD} did not answer"):
        kv.get("k")
    assert len(core.calls) >= 1
