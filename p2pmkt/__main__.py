"""``python -m p2pmkt`` is the ``p2pmkt`` command."""

import sys

from p2pmkt.cli.main import main

sys.exit(main())
