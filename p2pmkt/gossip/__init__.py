"""p2pmkt.gossip."""
