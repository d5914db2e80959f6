"""One-shot clients reuse a few fixed addresses (engine/rpc/oneshot.py), so the peers they ask
keep one connection per slot, not one per query."""

from __future__ import annotations

from ownrun.engine.rpc import oneshot


def test_a_closed_clients_address_is_reused_and_concurrent_clients_get_their_own(tmp_path):
    peer = f"ipc://{tmp_path}/head"
    first = oneshot.OneShotClient(peer, None)
    second = oneshot.OneShotClient(peer, None)
    addresses = {first.transport.address, second.transport.address}
    assert len(addresses) == 2 and all("oneshot-" in a for a in addresses)
    first.close()
    third = oneshot.OneShotClient(peer, None)
    assert third.transport.address == first.transport.address
    second.close()
    third.close()


def test_every_slot_taken_binds_a_fresh_address(tmp_path, monkeypatch):
    monkeypatch.setattr(oneshot, "SLOTS", 1)
    peer = f"ipc://{tmp_path}/head"
    with oneshot.OneShotClient(peer, None) as first, oneshot.OneShotClient(peer, None) as second:
        assert "oneshot-0" in first.transport.address and "oneshot-" not in second.transport.address


def test_a_tcp_slot_binds_the_port_it_used_last(tmp_path, monkeypatch):
    from ownrun.engine.cluster import paths

    monkeypatch.setattr(paths, "session_root", lambda: str(tmp_path))
    with oneshot.OneShotClient("127.0.0.1:9", None, bind_host="127.0.0.1") as first:
        port = first.transport.address
    with oneshot.OneShotClient("127.0.0.1:9", None, bind_host="127.0.0.1") as again:
        assert again.transport.address == port


def test_peers_share_one_inbox_and_request_ids_do_not_start_at_one(tmp_path):
    with oneshot.OneShotClient(f"ipc://{tmp_path}/head", None) as head:
        other = head.peer(f"ipc://{tmp_path}/daemon")
        assert other.transport is head.transport
        assert next(head._ids) != 1 or next(head._ids) != 2
        other.close()
        assert not head.transport.closed
