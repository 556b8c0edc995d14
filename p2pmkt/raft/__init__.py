"""p2pmkt.raft."""
