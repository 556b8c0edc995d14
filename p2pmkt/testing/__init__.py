"""p2pmkt.testing."""
