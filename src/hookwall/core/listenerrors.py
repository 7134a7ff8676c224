"""A listener that cannot bind, said in hookwall's words and flags.

mitmproxy reports a taken port with advice for its own command line (``--mode
regular@8082``), which means nothing to a hookwall operator. Every place hookwall binds (the
proxy, the supervisor of ``--workers``, the admin endpoint) says the same thing instead: which
address, why, and which flag of ``hookwall run`` to change; ``core/librarymessages.py`` says
mitmproxy's own bind failure with it.
"""

from __future__ import annotations

import errno

__all__ = ["cannot_listen"]

_FLAGS = {
    "proxy": "--listen HOST:PORT",
    "admin": "--admin-listen HOST:PORT (or --admin-listen off)",
}


def cannot_listen(what: str, where: str, error: OSError | str) -> str:
    """One line for stderr: ``what`` is "proxy" or "admin", ``where`` the ``host:port``."""
    flag = _FLAGS[what]
    label = "the admin endpoint" if what == "admin" else "senders"
    in_use = (
        error.errno == errno.EADDRINUSE
        if isinstance(error, OSError)
        else "address already in use" in error.lower()
    )
    if in_use:
        return (
            f"hookwall: cannot listen for {label} on {where}: the port is already in use (another "
            f"hookwall, or another program); pass {flag} with a free port (port 0 picks one), "
            "or stop what holds it"
        )
    reason = (error.strerror or str(error)) if isinstance(error, OSError) else error
    return f"hookwall: cannot listen for {label} on {where}: {reason}; pass {flag}"
