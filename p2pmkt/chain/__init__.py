"""p2pmkt.chain."""
