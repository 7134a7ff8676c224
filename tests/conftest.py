"""Shared by every test: the session's own network namespace, and a test DNS server.

``tests.support.netns`` is imported first, on purpose: it moves the whole session into a
network namespace with only ``lo`` (see there), which must happen before any thread or socket
exists. The receivers and the real proxy are the integration tests' (tests/integration/
conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import netns  # noqa: F401 - imported for its effect: the isolation
from tests.support.dnsserver import TestDnsServer


@pytest.fixture(scope="module")
def dns_server() -> Iterator[TestDnsServer]:
    """A DNS server of this module's own: names a module adds stay out of the others."""
    server = TestDnsServer().start()
    yield server
    server.stop()
