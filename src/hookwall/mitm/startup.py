"""Start-up errors from mitmproxy (a port taken, ...) end hookwall with hookwall's words.

mitmproxy's ``ErrorCheck`` exits on any error logged while starting, printing only "Error
logged during startup, exiting...". This one prints each error on stderr first, a bind
failure as hookwall's sentence with hookwall's flags (``core/librarymessages.py``), and
exits 1.
"""

from __future__ import annotations

import asyncio
import sys

from mitmproxy.addons import errorcheck

from hookwall.core.librarymessages import library_line


class StartupErrors(errorcheck.ErrorCheck):
    name = "errorcheck"  # the name mitmproxy's Master looks it up by

    async def shutdown_if_errored(self) -> None:
        await asyncio.sleep(0)  # as mitmproxy's: let pending log records arrive
        if not self.logger.has_errored:
            return
        for record in self.logger.has_errored:
            message = record.getMessage()
            print(library_line(message) or f"hookwall: {message}", file=sys.stderr)
        sys.exit(1)
