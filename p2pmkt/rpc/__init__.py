"""p2pmkt.rpc."""
