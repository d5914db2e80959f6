"""A driver joining a cluster started by `ownrun start`, and the cluster key's checks (§6).

The cluster runs as detached processes started by the `ownrun` command (as a user starts
it); this test process is the driver (`engine.init(address=...)`). The key tests drive
keyed transports on loopback directly: a CURVE inbox admits only peers holding the key,
says so in its log, and a one-shot client reports why within seconds instead of hanging.
"""

from __future__ import annotations

import logging
import os
import stat
import threading

import pytest
from ownrun import engine
from ownrun.engine.rpc import oneshot
from ownrun.engine.rpc import protocol as P
from ownrun.engine.rpc.cluster_key import CurveKeys
from ownrun.engine.rpc.transport import Transport, network_identity, pack, unpack

from tests.cli.cluster_helpers import Cli, start_head
from tests.conftest import returns_within


@engine.remote
def node_of(x):
    return engine.get_runtime_context().node_id, x + 1


def test_driver_in_this_process_joins_and_shutdown_leaves_the_cluster(tmp_path, monkeypatch):
    with Cli.session(str(tmp_path / "ownrun")) as cli:
        monkeypatch.setenv("OWNRUN_SESSION_ROOT", cli.root)  # the user's own root: the key is found there
        address = start_head(cli)
        node_id = next(iter(cli.state()["nodes"]))
        info = engine.init(address=address)
        try:
            assert info["node_id"] == node_id and info["address"] == f"tcp://{address}"
            assert engine.get([node_of.remote(i) for i in range(5)], timeout=30) == \
                [(node_id, i + 1) for i in range(5)]
            assert [n["node_id"] for n in engine.cluster.nodes()] == [node_id]
        finally:
            engine.shutdown()
        assert all("yes" in row for row in cli.status_rows().values())  # still running


def test_a_driver_that_shuts_down_releases_its_leases_for_the_next(tmp_path, monkeypatch):
    with Cli.session(str(tmp_path / "ownrun")) as cli:
        monkeypatch.setenv("OWNRUN_SESSION_ROOT", cli.root)
        address = start_head(cli)  # one CPU: a lease kept by the first driver starves the second
        for attempt in range(2):
            engine.init(address=address)
            try:
                assert engine.get(node_of.remote(attempt), timeout=60)[1] == attempt + 1
            finally:
                engine.shutdown()


def test_init_with_address_rejects_options_of_a_new_cluster():
    with pytest.raises(ValueError, match="cannot be given with address="):
        engine.init(address="127.0.0.1:1", num_cpus=2)
    assert not engine.is_initialized()


# ---- the cluster key --------------------------------------------------------------------------------
@pytest.fixture
def keys(tmp_path):
    return CurveKeys.generate(str(tmp_path / "cluster.key")), CurveKeys.generate(str(tmp_path / "other.key"))


@pytest.fixture
def keyed_server(keys):
    """A keyed inbox on loopback answering every request with "pong" from its own thread."""
    server = Transport("127.0.0.1", curve=keys[0])
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            messages, _ = server.poll(20)
            for frames in messages:
                header = unpack(frames[0])
                server.send(header[2], [pack([P.REPLY, header[1], True, "pong"])])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join()
    server.close()


def test_key_file_is_private_and_loads_back(keys, tmp_path):
    key = keys[0]
    assert stat.S_IMODE(os.stat(key.path).st_mode) == 0o600
    assert CurveKeys.load(key.path) == key
    assert "secret" not in repr(key)
    bad = tmp_path / "bad.key"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not an ownrun cluster key file"):
        CurveKeys.load(str(bad))


def test_a_peer_with_the_key_is_answered(keyed_server, keys):
    assert oneshot.request(keyed_server.address, P.HEAD_STATS, curve=keys[0]) == "pong"


@pytest.mark.parametrize(("which", "reason", "text"), [
    (None, oneshot.KEY_REQUIRED, "this cluster requires its cluster key (pass cluster_key=... or set "
                                 "OWNRUN_CLUSTER_KEY)"),
    (1, oneshot.KEY_REJECTED, "the cluster key given is not this cluster's"),
])
def test_a_peer_without_the_key_is_refused_with_a_clear_error(keyed_server, keys, caplog, which, reason, text):
    caplog.set_level(logging.WARNING, logger="ownrun.transport")
    # Refused on the failed handshake, not at the request's deadline: with a 600 s timeout a
    # client that only gave up at its deadline would not return within 60 s.
    curve = None if which is None else keys[which]
    with pytest.raises(oneshot.PeerError) as info:
        returns_within(lambda: oneshot.request(keyed_server.address, P.HEAD_STATS, curve=curve, timeout=600),
                       timeout=60, message="a request with a missing or wrong key")
    plain = keyed_server.address.removeprefix("tcp://")
    assert info.value.reason == reason
    assert str(info.value) == f"could not authenticate with the head at {plain}: {text}"
    refused = [r.getMessage() for r in caplog.records if "refused a connection from" in r.getMessage()]
    assert refused and refused[0].endswith(": wrong or missing cluster key")


def test_a_keyed_client_of_a_keyless_head_is_told_to_drop_the_key(keys):
    server = Transport("127.0.0.1")
    try:
        with pytest.raises(oneshot.PeerError) as info:
            oneshot.request(server.address, P.HEAD_STATS, curve=keys[0])
        assert info.value.reason == oneshot.KEY_UNEXPECTED
    finally:
        server.close()


def test_transports_created_inside_network_identity_use_it(keys):
    with network_identity("127.0.0.1", keys[0]):
        inside = Transport()
    outside = Transport()
    try:
        assert inside.curve == keys[0] and outside.curve is None
    finally:
        inside.close()
        outside.close()
