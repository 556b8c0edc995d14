"""Suite-wide test configuration: hypothesis profiles.

``make test`` runs every property test with hypothesis's default budget (the short run).
``P2PMKT_FUZZ=long`` (what ``make fuzz`` sets) loads the ``fuzz-long`` profile: many more
examples per property (``P2PMKT_FUZZ_EXAMPLES``, default 5 000: about half an hour for tests/fuzz on the 2-core machine) and no per-example deadline,
for the fuzzers in ``tests/fuzz`` and every other ``@given`` test that does not pin its own
``max_examples``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz-long",
    max_examples=int(os.environ.get("P2PMKT_FUZZ_EXAMPLES", "5000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

if os.environ.get("P2PMKT_FUZZ") == "long":
    settings.load_profile("fuzz-long")
