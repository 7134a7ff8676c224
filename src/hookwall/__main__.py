"""``python -m hookwall``: the ``hookwall`` command (the supervisor starts workers this way)."""

import sys

from hookwall.cli.main import main

sys.exit(main())
