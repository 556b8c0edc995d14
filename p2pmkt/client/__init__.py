"""p2pmkt.client."""
