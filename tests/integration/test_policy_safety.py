"""Through the real proxy: embedded IPv4 is judged as IPv4, and a reload is checked like
`hookwall check` (a policy that reopens special-purpose space, or a hostile YAML file, is
refused while the old policy keeps serving).

No sleeps as synchronisation: every wait is on a log event.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import ProxyProcess
from tests.support.receivers import Receiver
from tests.support.reloads import rejected, write

pytestmark = pytest.mark.integration

# Loopback is reopened for one name only (a name-scoped exception); the defaults carry IPv6
# spellings of IPv4 ranges that, judged as IPv4, reopen nothing: '::ffff:127.0.0.0/104' is
# 127.0.0.0/8 (a tie with the deny row, deny wins), '::ffff:0:0/97' is 0.0.0.0/1.
POLICY = """\
version: 1
defaults:
  network: {allow: ["::ffff:127.0.0.0/104", "::ffff:0:0/97"], ports: ["1-65535"]}
destinations:
  - hosts: [ok.safety.test]
    network: {allow: [127.0.0.2/32]}
"""
NAMES = {"ok.safety.test": "127.0.0.2", "mapped.safety.test": "::ffff:127.0.0.2"}


def post(proc: ProxyProcess, url: str) -> requests.Response:
    return requests.post(url, data=b"{}", proxies={"http": proc.url}, timeout=15)


@pytest.fixture(scope="module")
def shared_proxy(start_module_proxy: ProxyLauncher) -> ProxyProcess:
    return start_module_proxy(POLICY, names=NAMES)  # edits are seen within 100 ms


@pytest.fixture
def proxy(shared_proxy: ProxyProcess) -> Iterator[tuple[ProxyProcess, Path]]:
    """The module's proxy and its policy file; a test that wrote another policy there (every
    one is refused) gets the module's back afterwards, so the next test starts from it."""
    policy = shared_proxy.policy
    assert policy is not None
    yield shared_proxy, policy
    if policy.read_text() != POLICY:
        mark = shared_proxy.mark()
        write(policy, POLICY)
        shared_proxy.wait_for(lambda e: e.get("event") == "policy_reloaded", start=mark, timeout=15)


def refused_reason(proc: ProxyProcess, url: str) -> str:
    r = post(proc, url)
    assert r.status_code == 403, r.text
    return r.headers["X-Hookwall-Reason"]


def test_mapped_spellings_of_loopback_stay_refused(
    proxy: tuple[ProxyProcess, Path], receiver: Receiver
) -> None:
    proc, _ = proxy
    port = receiver.port
    assert post(proc, f"http://ok.safety.test:{port}/").status_code == 200
    for url in (
        f"http://[::ffff:127.0.0.2]:{port}/",
        f"http://[::ffff:7f00:1]:{port}/",
        f"http://[2002:7f00:2::1]:{port}/",  # 6to4 spelling of 127.0.0.2
        f"http://[64:ff9b::127.0.0.2]:{port}/",  # NAT64
        f"http://mapped.safety.test:{port}/",  # AAAA ::ffff:127.0.0.2
    ):
        r = post(proc, url)
        assert (r.status_code, r.headers["X-Hookwall-Reason"]) == (403, "address-blocked"), url
        # judged as the IPv4 inside: the loopback row decides, not an IPv6 allow row
        assert "127.0.0.0/8 loopback (RFC 1122): denied" in r.json()["message"], url
        event = proc.exchange(r.headers["X-Hookwall-Request-Id"])
        assert (event["decision"], event["reason"]) == ("deny", "address-blocked")
    assert len(receiver.requests) == 1


def laughs() -> str:
    lines = ["version: 1", "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return "\n".join([*lines, "destinations: [{hosts: *l8}]"]) + "\n"


REOPENING = (
    'version: 1\ndefaults:\n  network: {allow: [127.0.0.0/9, 127.128.0.0/9], ports: ["1-65535"]}\n'
)


@pytest.mark.parametrize(
    ("text", "first_error"),
    [
        (REOPENING, ":3:21: defaults.network.allow[0]: 127.0.0.0/9 reopens 127.0.0.0/9 of "),
        (laughs(), ":6:"),
        ("version: 1\ndestinations: " + "[" * 100_000 + "]" * 100_000 + "\n", ":2:"),
    ],
    ids=["reopens loopback", "billion laughs", "100,000 deep"],
)
def test_reload_refuses_what_check_refuses_and_keeps_serving(
    proxy: tuple[ProxyProcess, Path], receiver: Receiver, text: str, first_error: str
) -> None:
    proc, policy = proxy
    port = receiver.port
    mark = proc.mark()
    started = time.perf_counter()
    write(policy, text)
    event = rejected(proc, mark)
    assert time.perf_counter() - started < 10
    assert event["errors"][0].startswith(f"{policy}{first_error}"), event["errors"]
    assert event["in_force"] == [str(policy)]
    # The old policy is still the one enforced: the named exception serves, loopback does not.
    assert post(proc, f"http://ok.safety.test:{port}/").status_code == 200
    assert refused_reason(proc, f"http://127.0.0.1:{port}/") == "address-blocked"
    assert refused_reason(proc, f"http://127.0.0.2:{port}/") == "address-blocked"
