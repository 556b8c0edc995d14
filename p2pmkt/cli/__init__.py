"""p2pmkt.cli."""
