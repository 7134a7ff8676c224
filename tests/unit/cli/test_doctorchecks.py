"""hookwall doctor's checks, the pure part: deliberately broken environments, each mistake found,
and (for the environment's own mistakes) the fix line, run by a real shell, makes it go away.

The probes are a table (``FakeHookwall``): a hookwall that is up or not, with senders or not,
whose CA a bundle path either verifies or not. The real probes meet a real proxy in
tests/integration/test_doctor.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from hookwall.cli.doctorchecks import (
    Bundle,
    Finding,
    Probe,
    ProxyURL,
    Report,
    Trust,
    diagnose,
    exempts,
    mask,
    parse_proxy_url,
)

TOKEN = "s3cr3t-t0ken-0123456789abcdef"
URL = f"http://billing:{TOKEN}@127.0.0.1:8080"
OPEN_URL = "http://127.0.0.1:8080"
CA_SHA = "AA:BB:CC"
GOOD = "/etc/hookwall/ca.pem"  # holds hookwall's CA: the handshake verifies
OTHER = "/etc/ssl/other.pem"  # holds a CA, not hookwall's
EMPTY = "/etc/ssl/empty.pem"
BUNDLES = {
    GOOD: Bundle(GOOD, True, fingerprints=(CA_SHA,)),
    OTHER: Bundle(OTHER, True, fingerprints=("11:22", "33:44")),
    EMPTY: Bundle(EMPTY, True, fingerprints=()),
    "/etc/ssl/certs": Bundle("/etc/ssl/certs", True, is_dir=True, fingerprints=("11:22",)),
}
TRUSTED_ALL = {
    "SSL_CERT_FILE": GOOD,
    "REQUESTS_CA_BUNDLE": GOOD,
    "NODE_EXTRA_CA_CERTS": GOOD,
    "CURL_CA_BUNDLE": GOOD,
}


@dataclass
class FakeHookwall:
    """The world as the probes see it."""

    up: bool = True
    senders: dict[str, str] = field(default_factory=dict)  # name -> token; empty: none
    trusted: frozenset[str] = frozenset({GOOD})
    system_trusts: bool = False
    report_only: bool = False
    asked: list[str] = field(default_factory=list)

    def _refusal(self, proxy: ProxyURL) -> Probe | None:
        if not self.up:
            return Probe("unreachable", detail="ConnectionRefusedError: [Errno 111] refused")
        known = proxy.user is not None and self.senders.get(proxy.user) == proxy.token
        if self.senders and not self.report_only and not known:
            body = {"error": "auth-required", "message": "...", "request_id": "req_x"}
            return Probe("answered", 407, "auth-required", body, "407")
        return None

    def _doc(self, proxy: ProxyURL, tls: bool) -> Probe:
        known = proxy.user if self.senders.get(proxy.user or "") == proxy.token else None
        doc: dict[str, Any] = {
            "through_hookwall": True,
            "request_id": "req_1",
            "sender": known,
            "senders_required": bool(self.senders),
            "would_deny": ["auth-required"] if self.report_only and not known else [],
            "mode": "regular",
            "client": "127.0.0.1:5000",
            "tls": tls,
            "ca": "handshake completed" if tls else None,
            "ca_sha256": CA_SHA,
        }
        return Probe("answered", 200, None, doc, "200 OK")

    def whoami(self, proxy: ProxyURL) -> Probe:
        self.asked.append(f"whoami {proxy.endpoint}")
        return self._refusal(proxy) or self._doc(proxy, tls=False)

    def handshake(self, proxy: ProxyURL, trust: Trust) -> Probe:
        self.asked.append(f"handshake {trust}")
        refused = self._refusal(proxy)
        if refused is not None:
            if refused.outcome == "unreachable":
                return refused
            return Probe("refused", 407, "auth-required", refused.document, "407")
        path = trust.cafile or trust.capath
        if (path in self.trusted) if path else self.system_trusts:
            return self._doc(proxy, tls=True)
        return Probe("untrusted", detail="certificate verify failed: unable to get local issuer")

    def bundle(self, path: str, directory: bool) -> Bundle:
        return BUNDLES.get(path, Bundle(path, exists=False))


def good_env(**changes: str | None) -> dict[str, str]:
    env = {
        "http_proxy": OPEN_URL,
        "HTTP_PROXY": OPEN_URL,
        "https_proxy": OPEN_URL,
        "HTTPS_PROXY": OPEN_URL,
        **TRUSTED_ALL,
    }
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(env: Mapping[str, str], world: FakeHookwall | None = None, **kwargs: Any) -> Report:
    return diagnose(env, world or FakeHookwall(), **kwargs)


def problems(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.status == "problem"]


def only_problem(report: Report, topic: str) -> Finding:
    found = problems(report)
    assert [f.topic for f in found] == [topic], [(f.subject, f.message) for f in found]
    return found[0]


def never_shows_the_token(report: Report) -> None:
    assert TOKEN not in json.dumps(report.document())


BASH = shutil.which("bash")


def fixed(env: Mapping[str, str], fix: str) -> dict[str, str]:
    """The environment after a real shell ran the fix line(s)."""
    assert BASH is not None
    script = f"{fix}\nenv -0"
    out = subprocess.run(
        [BASH, "-c", script], env=dict(env), capture_output=True, check=True, timeout=10
    ).stdout
    after = dict(line.split("=", 1) for line in out.decode().split("\0") if "=" in line)
    return {k: v for k, v in after.items() if k in env or k.lower().endswith("proxy")}


def assert_all_fixed(env: Mapping[str, str], found: list[Finding], **kwargs: Any) -> None:
    """Every fix line run, one after the other: no problem is left."""
    after = dict(env)
    for finding in found:
        assert finding.fix is not None
        after = fixed(after, finding.fix)
    assert problems(run(after, **kwargs)) == []


def assert_fixed(env: Mapping[str, str], finding: Finding, **kwargs: Any) -> None:
    assert finding.fix is not None
    after = fixed(env, finding.fix)
    remaining = [f for f in problems(run(after, **kwargs)) if f.topic == finding.topic]
    assert remaining == [], (finding.fix, remaining)


# -- a good environment ------------------------------------------------------------------------


def test_a_good_environment_has_no_problem() -> None:
    world = FakeHookwall()
    report = run(good_env(), world)
    assert problems(report) == []
    assert report.whoami is not None and report.whoami["through_hookwall"]
    # One plain probe, one handshake per distinct bundle, and the system store's.
    assert world.asked == [
        "whoami http://127.0.0.1:8080",
        f"handshake {Trust(cafile=GOOD)}",
        f"handshake {Trust()}",
    ]
    statuses = {(f.subject, f.status) for f in report.findings if f.topic == "ca"}
    assert (f"SSL_CERT_FILE={GOOD}", "ok") in statuses
    assert ("the system trust store", "note") in statuses  # Java and friends: not trusted


def test_a_good_environment_with_senders_is_authenticated() -> None:
    world = FakeHookwall(senders={"billing": TOKEN})
    report = run(
        good_env(**dict.fromkeys(("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"), URL)),
        world,
    )
    assert problems(report) == []
    assert any(f.topic == "credentials" and "billing" in f.message for f in report.findings)
    never_shows_the_token(report)


# -- the proxy variables --------------------------------------------------------------------


def test_upper_case_only_is_a_problem_curl_ignores_upper_case_http_proxy() -> None:
    env = good_env(http_proxy=None, https_proxy=None)
    report = run(env)
    found = problems(report)
    assert {f.fix for f in found} == {
        'export http_proxy="$HTTP_PROXY"',
        'export https_proxy="$HTTPS_PROXY"',
    }
    assert any("curl" in f.message for f in found)
    assert_all_fixed(env, found)


def test_lower_case_only_is_a_problem_too() -> None:
    env = good_env(HTTP_PROXY=None, HTTPS_PROXY=None)
    found = problems(run(env))
    assert {f.fix for f in found} == {
        'export HTTP_PROXY="$http_proxy"',
        'export HTTPS_PROXY="$https_proxy"',
    }


def test_cases_that_disagree_are_a_problem_and_the_token_is_masked() -> None:
    env = good_env(http_proxy=URL, HTTP_PROXY="http://127.0.0.1:9999")
    report = run(env)
    finding = only_problem(report, "proxy")
    assert "disagree" in finding.message and "billing:****@" in finding.message
    assert finding.fix == 'export HTTP_PROXY="$http_proxy"'
    never_shows_the_token(report)
    assert_fixed(env, finding)


def test_no_proxy_at_all_is_a_problem_and_nothing_is_probed() -> None:
    world = FakeHookwall()
    env = {k: v for k, v in good_env().items() if "proxy" not in k.lower()}
    report = run(env, world)
    finding = only_problem(report, "proxy")
    assert "no proxy is set" in finding.message and finding.fix is not None
    assert "export http_proxy=" in finding.fix
    assert world.asked == [] and report.whoami is None


def test_https_proxy_missing_is_a_problem() -> None:
    env = good_env(https_proxy=None, HTTPS_PROXY=None)
    finding = only_problem(run(env), "proxy")
    assert "https:// webhooks would not go through hookwall" in finding.message
    assert_fixed(env, finding)


def test_all_proxy_alone_is_a_problem_go_ignores_it() -> None:
    env = {**TRUSTED_ALL, "all_proxy": OPEN_URL, "ALL_PROXY": OPEN_URL}
    report = run(env)
    found = problems(report)
    assert len(found) == 2 and all("ALL_PROXY" in f.message for f in found)
    assert report.whoami is not None  # still probed, through ALL_PROXY
    assert_all_fixed(env, found)


def test_an_https_proxy_url_is_a_problem_and_probed_as_http() -> None:
    https_url = "https://billing:" + TOKEN + "@127.0.0.1:8080"
    env = good_env(https_proxy=https_url, HTTPS_PROXY=https_url)
    world = FakeHookwall(senders={"billing": TOKEN})
    env |= {"http_proxy": URL, "HTTP_PROXY": URL}
    report = run(env, world)
    finding = only_problem(report, "proxy")
    assert "plain HTTP" in finding.message and "billing:****@" in finding.subject
    assert finding.fix == (
        'export https_proxy="${https_proxy/#https:/http:}" '
        'HTTPS_PROXY="${HTTPS_PROXY/#https:/http:}"'
    )
    never_shows_the_token(report)
    after = fixed(env, finding.fix)
    assert after["https_proxy"] == after["HTTPS_PROXY"] == URL  # the token kept, never shown
    assert problems(run(after, world)) == []


def test_a_proxy_url_without_a_scheme_is_a_problem() -> None:
    env = good_env(**dict.fromkeys(("http_proxy", "HTTP_PROXY"), "127.0.0.1:8080"))
    found = problems(run(env))
    assert len(found) == 1 and "without http://" in found[0].message
    assert found[0].subject == "http_proxy, HTTP_PROXY=127.0.0.1:8080"
    assert_all_fixed(env, found)


@pytest.mark.parametrize("value", ["socks5://127.0.0.1:1080", "http://", "http://h:port"])
def test_a_proxy_url_no_client_can_use_is_a_problem_and_not_probed(value: str) -> None:
    world = FakeHookwall()
    env = good_env(**dict.fromkeys(("http_proxy", "HTTP_PROXY"), value))
    found = problems(run(env, world))
    assert any("cannot be reached through it" in f.message for f in found)
    assert not any(a.startswith("whoami") for a in world.asked)


# -- NO_PROXY -----------------------------------------------------------------------------------


def test_no_proxy_star_exempts_everything() -> None:
    env = good_env(no_proxy="*", NO_PROXY="*")
    finding = only_problem(run(env), "no_proxy")
    assert "every host" in finding.message and finding.fix == "unset no_proxy NO_PROXY"
    assert_fixed(env, finding)


def test_no_proxy_with_a_whole_public_suffix_keeps_the_internal_entries() -> None:
    env = good_env(no_proxy="localhost,.com,10.0.0.0/8", NO_PROXY="localhost,.com,10.0.0.0/8")
    report = run(env)
    finding = only_problem(report, "no_proxy")
    assert ".com" in finding.message and "anyone can register" in finding.message
    assert finding.fix == "export no_proxy=localhost,10.0.0.0/8 NO_PROXY=localhost,10.0.0.0/8"
    notes = [f for f in report.findings if f.topic == "no_proxy" and f.status == "note"]
    assert notes and "SSRF" in notes[0].message and "10.0.0.0/8" in notes[0].message
    assert_fixed(env, finding)


@pytest.mark.parametrize("entry", [".invalid", "invalid", "hookwall.invalid", "*.invalid"])
def test_no_proxy_exempting_hookwall_invalid_is_a_problem(entry: str) -> None:
    env = good_env(no_proxy=entry, NO_PROXY=entry)
    assert "hookwall.invalid" in only_problem(run(env), "no_proxy").message


def test_no_proxy_exempting_a_destination_is_a_problem() -> None:
    env = good_env(no_proxy="acme.com", NO_PROXY="acme.com")
    assert problems(run(env)) == []  # acme.com alone: a name, not a suffix
    finding = only_problem(run(env, destinations=["https://hooks.acme.com/x"]), "no_proxy")
    assert "hooks.acme.com" in finding.message
    assert_fixed(env, finding, destinations=["https://hooks.acme.com/x"])


def test_no_proxy_in_one_case_only_is_a_problem() -> None:
    env = good_env(NO_PROXY="localhost")
    finding = only_problem(run(env), "no_proxy")
    assert finding.fix == 'export no_proxy="$NO_PROXY"'


@pytest.mark.parametrize(
    ("entry", "host", "expected"),
    [
        ("example.com", "hooks.example.com", True),
        (".example.com", "example.com", True),  # curl and Python read it so
        ("*.example.com", "a.example.com", True),
        ("example.com:8443", "example.com", True),
        ("notexample.com", "example.com", False),
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "hooks.example.com", False),
        ("[::1]:80", "::1", True),
        ("*", "anything", True),
    ],
)
def test_what_a_no_proxy_entry_exempts(entry: str, host: str, expected: bool) -> None:
    assert exempts(entry, host) is expected


# -- credentials and the probe ----------------------------------------------------------------


def test_missing_credentials_are_found_by_the_407() -> None:
    report = run(good_env(), FakeHookwall(senders={"billing": TOKEN}))
    found = problems(report)
    assert found and found[0].topic == "credentials" and "has none" in found[0].message
    assert found[0].fix is not None and "NAME:TOKEN@127.0.0.1:8080" in found[0].fix
    # The https:// probe met the same 407 on the same proxy: told once.
    assert len(found) == 1, [f.message for f in found]


def test_wrong_credentials_are_found_by_the_407_and_never_printed() -> None:
    wrong = "http://billing:not-the-token@127.0.0.1:8080"
    env = good_env(
        **dict.fromkeys(("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"), wrong)
    )
    report = run(env, FakeHookwall(senders={"billing": TOKEN}))
    finding = problems(report)[0]
    assert finding.topic == "credentials" and "'billing'" in finding.message
    assert "not-the-token" not in json.dumps(report.document())


def test_credentials_hookwall_does_not_check_are_noted() -> None:
    env = good_env(**dict.fromkeys(("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"), URL))
    report = run(env, FakeHookwall())
    assert problems(report) == []
    assert any(f.status == "note" and "not checked" in f.message for f in report.findings)


def test_report_only_senders_are_noted() -> None:
    report = run(good_env(), FakeHookwall(senders={"billing": TOKEN}, report_only=True))
    assert problems(report) == []
    notes = [f for f in report.findings if f.topic == "credentials" and f.status == "note"]
    assert notes and "auth-required" in notes[0].message


def test_a_proxy_not_listening_is_a_problem_said_once() -> None:
    report = run(good_env(), FakeHookwall(up=False))
    finding = only_problem(report, "whoami")
    assert "nothing answered at http://127.0.0.1:8080" in finding.message
    ca = {f.subject: f for f in report.findings if f.topic == "ca"}
    assert ca[f"SSL_CERT_FILE={GOOD}"].status == "info"  # not verified, not blamed


def test_something_that_is_not_hookwall_is_a_problem() -> None:
    class NotHookwall(FakeHookwall):
        def whoami(self, proxy: ProxyURL) -> Probe:
            return Probe("answered", 200, None, {"hello": "world"}, "200 OK")

    finding = problems(run(good_env(), NotHookwall()))[0]
    assert "not as hookwall answers" in finding.message


# -- CA bundles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TRUSTED_ALL))
def test_a_bundle_variable_pointing_at_a_missing_file(name: str) -> None:
    env = good_env(**{name: "/nonexistent/ca.pem"})
    finding = only_problem(run(env), "ca")
    assert finding.subject == f"{name}=/nonexistent/ca.pem" and "no such file" in finding.message
    assert finding.fix is not None and f'export {name}="$PWD/hookwall-ca.pem"' in finding.fix
    assert "http://hookwall.invalid/ca.pem" in finding.fix


@pytest.mark.parametrize("name", list(TRUSTED_ALL))
def test_a_bundle_with_another_ca_is_caught_by_the_handshake(name: str) -> None:
    finding = only_problem(run(good_env(**{name: OTHER})), "ca")
    assert "does not trust hookwall's CA" in finding.message
    assert "none of them hookwall's CA" in finding.message and CA_SHA in finding.message


def test_a_bundle_without_certificates() -> None:
    finding = only_problem(run(good_env(SSL_CERT_FILE=EMPTY)), "ca")
    assert "no PEM certificate" in finding.message


def test_a_cert_dir_that_does_not_trust_hookwall() -> None:
    finding = only_problem(run(good_env(SSL_CERT_DIR="/etc/ssl/certs")), "ca")
    assert finding.subject == "SSL_CERT_DIR=/etc/ssl/certs"


def test_a_file_where_a_directory_belongs() -> None:
    finding = only_problem(run(good_env(SSL_CERT_DIR=GOOD)), "ca")
    assert "not a directory" in finding.message


def test_no_bundle_and_a_system_store_without_hookwalls_ca() -> None:
    env = {k: v for k, v in good_env().items() if k not in TRUSTED_ALL}
    finding = only_problem(run(env), "ca")
    assert finding.subject == "the system trust store" and finding.fix is not None
    assert "SSL_CERT_FILE=" in finding.fix and "NODE_EXTRA_CA_CERTS=" in finding.fix
    assert problems(run(env, FakeHookwall(system_trusts=True))) == []


def test_a_bundle_of_hookwalls_ca_only_is_noted_for_passthrough() -> None:
    report = run(good_env())
    notes = [f for f in report.findings if f.status == "note" and "passthrough" in f.message]
    assert {f.subject for f in notes} == {
        f"{n}={GOOD}" for n in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }  # not NODE_EXTRA_CA_CERTS: Node adds it to its own roots


# -- masking and parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (URL, "http://billing:****@127.0.0.1:8080"),
        (f"http://{TOKEN}@127.0.0.1:8080", "http://****@127.0.0.1:8080"),  # a bare token
        (f"http://billing:{TOKEN}@x@127.0.0.1", "http://billing:****@127.0.0.1"),
        (f"billing:{TOKEN}@127.0.0.1:8080", "billing:****@127.0.0.1:8080"),
        (OPEN_URL, OPEN_URL),
    ],
)
def test_tokens_are_masked(text: str, shown: str) -> None:
    assert mask(text) == shown


def test_a_percent_encoded_token_is_decoded_as_clients_do() -> None:
    proxy = parse_proxy_url("HTTP_PROXY", "http://billing:a%2Fb%40c@127.0.0.1:8080")
    assert (proxy.user, proxy.token, proxy.endpoint) == ("billing", "a/b@c", OPEN_URL)
    assert proxy.masked == "http://billing:****@127.0.0.1:8080"


def test_the_json_document_is_the_findings() -> None:
    report = run(good_env(http_proxy=None))
    doc = report.document()
    assert doc["ok"] is False and doc["problems"] == 1
    assert doc["proxy"] == {"http": OPEN_URL, "https": OPEN_URL}
    assert {"topic", "status", "subject", "message", "fix"} == set(doc["findings"][0])
    assert os.fspath(GOOD) in json.dumps(doc)
