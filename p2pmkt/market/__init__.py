"""p2pmkt.market: the SPEC domain (visits, indicators, reports, marketing information)."""
