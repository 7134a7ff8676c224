"""``python -m hookwall``: the ``hookwall`` command (the supervisor starts workers this way)."""

import sys

from hookwall.cli import main

sys.exit(main())
