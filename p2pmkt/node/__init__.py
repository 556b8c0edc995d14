"""p2pmkt.node."""
