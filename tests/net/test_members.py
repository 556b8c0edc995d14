"""The member allowlist of the network layer (``p2pmkt.net.members``)."""

from __future__ import annotations

from p2pmkt.chain.dev import dev_key
from p2pmkt.net.members import Members, node_id_of, peer_id_of


def test_a_key_that_is_no_curve_point_is_left_out_not_fatal() -> None:
    # An older chain could hold such a member.add; turning it into a peer id raised inside
    # every node's membership loop and took the node down.
    good = dev_key("platform").public_key.compressed
    bad = b"\x02" + bytes(32)
    members = Members([good])
    members.update([good, bad])
    assert members.node_ids() == {node_id_of(good)}
    assert members.is_member(peer_id_of(good))
