"""Suite-wide test configuration: hypothesis profiles, and Ctrl-C for the suite's children.

``make test`` runs every property test with hypothesis's default budget (the short run).
``P2PMKT_FUZZ=long`` (what ``make fuzz`` sets) loads the ``fuzz-long`` profile: many more
examples per property (``P2PMKT_FUZZ_EXAMPLES``, default 5 000: about half an hour for tests/fuzz on the 2-core machine) and no per-example deadline,
for the fuzzers in ``tests/fuzz`` and every other ``@given`` test that does not pin its own
``max_examples``.
"""

from __future__ import annotations

import os
import signal

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


# Tests interrupt the processes they start (a node, ``visits ingest --follow``) with SIGINT and
# expect Ctrl-C's behaviour (exit 130). A shell that starts the suite in the background
# (``make test &``, ``nohup … &``, some CI runners) starts it with SIGINT *ignored*, and an
# ignored signal stays ignored across fork and exec: every child then ignored the tests'
# SIGINT and was killed 10 s later (two --follow tests failed so, exit -9, in a background
# fresh-clone run). Handling SIGINT here makes exec give each child the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
