"""p2pmkt.contracts."""
