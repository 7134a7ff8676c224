"""The integration tests' fixtures: the real proxy, and local receivers for it to deliver to.

- ``start_proxy(policy, names=..., env=..., args=...)`` starts ``hookwall run`` for one test
  and stops it after the test; ``start_module_proxy`` is the same for a proxy that the tests
  of a module share (one no test there mutates). Both are a ``tests.support.launcher``. Each
  proxy is forked from a fork server that imported hookwall once (``HOOKWALL_TEST_FORK=0``:
  exec'd instead).
- ``receiver`` (a recording receiver on 127.0.0.2, for one test), ``adversary`` (the hostile
  one, for a module), ``plain_twins``/``tls_twins`` (an allowed receiver and its forbidden
  twin on the same port), ``ipv6_receiver``; the receivers' CA, which the policies trust as
  ``ca_bundle: {ca}``.
- ``redis_server`` for the shared-limits modules; ``run_help``, the text of
  ``hookwall run --help``, run once.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support import proxyproc
from tests.support.adversary import Adversary
from tests.support.dnsserver import TestDnsServer
from tests.support.forkserver import ForkServer
from tests.support.launcher import ProxyLauncher
from tests.support.netns import NETWORK_ISOLATED, TEST_IPV6
from tests.support.proxyproc import HOOKWALL
from tests.support.receivers import (
    Receiver,
    start_receiver,
    start_twin_receivers,
    tls_server_context,
)
from tests.support.redisserver import RedisServer

# -- the proxy ---------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def fork_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every ``hookwall run`` of the session is forked from one interpreter that imported
    hookwall once (tests.support.forkserver): a start takes 0.2 s, not 1.2 s.
    ``HOOKWALL_TEST_FORK=0`` execs each one instead."""
    if os.environ.get("HOOKWALL_TEST_FORK", "1") == "0":
        yield
        return
    server = ForkServer(tmp_path_factory.mktemp("forkserver"), proxyproc.environment())
    proxyproc.use_fork_server(server)
    yield
    proxyproc.use_fork_server(None)
    server.stop()


def _launcher(
    tmp_path_factory: pytest.TempPathFactory, dns: TestDnsServer, ca_file: Path
) -> Iterator[ProxyLauncher]:
    launcher = ProxyLauncher(lambda: tmp_path_factory.mktemp("hookwall"), dns, ca_file)
    yield launcher
    launcher.stop_all()


@pytest.fixture
def start_proxy(
    tmp_path_factory: pytest.TempPathFactory, dns_server: TestDnsServer, receiver_ca_file: Path
) -> Iterator[ProxyLauncher]:
    """Start hookwall for this test; every process it started is stopped after the test."""
    yield from _launcher(tmp_path_factory, dns_server, receiver_ca_file)


@pytest.fixture(scope="module")
def start_module_proxy(
    tmp_path_factory: pytest.TempPathFactory, dns_server: TestDnsServer, receiver_ca_file: Path
) -> Iterator[ProxyLauncher]:
    """``start_proxy`` for a module-scoped fixture: stopped after the module's last test."""
    yield from _launcher(tmp_path_factory, dns_server, receiver_ca_file)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module's own (the modules that use it are ``needs_redis``).
    Ask for it before ``start_module_proxy``, so that it outlives the proxies using it."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def run_help() -> str:
    """``hookwall run --help``, run once for every test that reads it."""
    return subprocess.run(
        [str(HOOKWALL), "run", "--help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout


# -- receivers ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def receiver_ca() -> trustme.CA:
    """The CA of our local TLS receivers (the proxy trusts it via the policy's ca_bundle)."""
    return trustme.CA()


@pytest.fixture(scope="session")
def receiver_ca_file(receiver_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("receiver-ca") / "ca.pem"
    receiver_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A recording receiver on 127.0.0.2 for one test; its gate is opened at the end."""
    server = start_receiver("127.0.0.2")
    yield server
    if server.gate is not None:
        server.gate.set()
    server.stop()


@pytest.fixture(scope="module")
def adversary() -> Iterator[Adversary]:
    """The receiver that misbehaves on request (tests.support.adversary), for a module."""
    server = Adversary()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_twins() -> Iterator[tuple[Receiver, Receiver]]:
    """(allowed at 127.0.0.2, forbidden at 127.0.0.1), same port."""
    allowed, forbidden = start_twin_receivers("127.0.0.2", "127.0.0.1")
    yield allowed, forbidden
    allowed.stop()
    forbidden.stop()


@pytest.fixture(scope="module")
def tls_twins(receiver_ca: trustme.CA) -> Iterator[tuple[Receiver, Receiver]]:
    context = tls_server_context(receiver_ca, "hooks.test", "*.hooks.test", "127.0.0.2")
    allowed, forbidden = start_twin_receivers("127.0.0.2", "127.0.0.1", context)
    yield allowed, forbidden
    allowed.stop()
    forbidden.stop()


@pytest.fixture(scope="module")
def ipv6_receiver() -> Iterator[Receiver]:
    if not NETWORK_ISOLATED:
        pytest.skip("needs the test network namespace (an IPv6 address on lo)")
    receiver = start_receiver(TEST_IPV6)
    yield receiver
    receiver.stop()
