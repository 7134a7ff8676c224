"""Install every patch of mitmproxy's internals, and point their callbacks at the pipeline.

The patches are process-wide (they replace methods of mitmproxy's classes), so they are
installed once, by ``app.master.serve``, before mitmproxy creates a layer. The pipeline's
addons never import them: the patches call back into the addons through the lists they
expose (``on_head_started``, ``on_refused``, ``on_crash``), filled here.
"""

from __future__ import annotations

from hookwall.mitm import connect, crashguard, errorpages, http1guard, typechecks
from hookwall.pipeline import Pipeline


def install_patches(pipeline: Pipeline) -> None:
    """Patch mitmproxy (idempotent) and wire the patches' callbacks to this pipeline; the
    connect timeout is the one of the destination the guard approved the address for."""
    errorpages.install()
    typechecks.install()
    http1guard.install()
    crashguard.install()
    connect.install(pipeline.guard.connect_timeout)
    wire_callbacks(pipeline)


def wire_callbacks(pipeline: Pipeline) -> None:
    """The head deadline starts with a head's first byte (ConnectionGuard); a head refused
    before any flow exists gets its exchange event (ExchangeLog); a layer that raised ends
    its exchange (Lifecycle)."""
    http1guard.on_head_started[:] = [pipeline.connections.head_started]
    http1guard.on_refused[:] = [pipeline.exchange_log.head_refused]
    crashguard.on_crash[:] = [pipeline.lifecycle.crashed]
