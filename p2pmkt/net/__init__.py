"""p2pmkt.net."""
