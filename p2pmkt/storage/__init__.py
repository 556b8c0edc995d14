"""p2pmkt.storage."""
