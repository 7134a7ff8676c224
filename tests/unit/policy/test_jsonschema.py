"""The policy's JSON Schema (``hookwall schema``): generated from the shapes the parsers read
with, committed current, valid for editors, and giving ``hookwall check``'s answer.

Instances are read with hookwall's own YAML loader (``config/yamltree.py``), so a value is what
``check`` sees (YAML 1.1, as PyYAML reads it: ``no`` is false; the README tells editors' users
to set the YAML language server to 1.1 for the same reading).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hookwall.cli.main import main
from hookwall.config.errors import PolicyIssue
from hookwall.config.yamlnodes import YList, YMap, YNode
from hookwall.config.yamltree import load_yaml_text
from hookwall.policy import PolicyError, load_policy
from hookwall.policy.jsonschema import SCHEMA_FILE_NAME, policy_json_schema, policy_json_schema_text
from tests.support.paths import POLICIES, REPO

COMMITTED = REPO / "src" / "hookwall" / "policies" / SCHEMA_FILE_NAME
SCHEMA = policy_json_schema()
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def plain(node: YNode) -> Any:
    """A Y-node tree as the JSON an editor's schema validator sees."""
    if isinstance(node, YMap):
        return {key: plain(entry.value) for key, entry in node.entries.items()}
    if isinstance(node, YList):
        return [plain(item) for item in node.items]
    value = node.value
    return value.isoformat() if isinstance(value, datetime | date) else value


def instance(text: str) -> Any:
    issues: list[PolicyIssue] = []
    tree = load_yaml_text(text, "policy.yaml", issues)
    assert not issues and tree is not None, issues
    return plain(tree)


def schema_errors(text: str) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(instance(text))]


def check_errors(text: str, tmp_path: Path) -> str | None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    try:
        load_policy(path, read_secrets=False)
    except PolicyError as exc:
        return str(exc)
    return None


def test_the_committed_schema_is_current() -> None:
    assert COMMITTED.read_text() == policy_json_schema_text(), "run: make schema"
    assert (REPO / "policies" / SCHEMA_FILE_NAME).resolve() == COMMITTED.resolve()


def test_hookwall_schema_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == SCHEMA


def test_it_is_a_draft_7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


def test_every_pattern_is_an_ecma_262_regex_too() -> None:
    """Editors (VS Code's JSON/YAML language services) compile patterns as JavaScript regexes
    with the u flag, where Python's escapes of plain characters are syntax errors."""
    patterns = sorted(set(_patterns(SCHEMA)))
    assert len(patterns) >= 8
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the patterns are checked with Python's re only")
    script = "for (const p of JSON.parse(process.argv[1])) new RegExp(p, 'u');"
    done = subprocess.run(
        [node, "-e", script, json.dumps(patterns)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


def _policies() -> list[Path]:
    found = sorted((REPO / "policies").rglob("*.yaml"))
    assert len(found) >= 5
    return found


@pytest.mark.parametrize("path", _policies(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_policy_of_the_repository_validates_and_names_the_schema(path: Path) -> None:
    text = path.read_text()
    assert schema_errors(text) == []
    first = text.splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, f"{path}: the first line should be '# yaml-language-server: $schema=...'"
    assert (path.parent / match[1]).resolve() == COMMITTED.resolve()


@pytest.mark.parametrize(
    "path",
    [
        *sorted((POLICIES / "good").glob("*.yaml")),
        *sorted((POLICIES / "dir-good").glob("[!.]*.y*ml")),
    ],
    ids=lambda p: p.name,
)
def test_what_check_accepts_the_schema_accepts(path: Path) -> None:
    assert schema_errors(path.read_text()) == []


# Bad fixtures whose every error is one a schema cannot see: only hookwall check judges them.
ONLY_CHECK_SEES = {
    "ca-bundle.yaml": "the file must exist",
    "duplicate-hosts.yaml": "a host listed twice, across entries",
    "duplicate-keys.yaml": "a key written twice (JSON has no such thing)",
}


# Bad fixtures that are not YAML (or not one document of it) at all.
NOT_YAML = {
    "syntax.yaml",
    "indentation.yaml",
    "duplicate-keys.yaml",
    "empty.yaml",
    "unquoted-wildcard.yaml",  # YAML reads *.example as an alias
}


def _bad_fixtures() -> list[Path]:
    return sorted((POLICIES / "bad").glob("*.yaml"))


@pytest.mark.parametrize("path", _bad_fixtures(), ids=lambda p: p.name)
def test_a_bad_fixture_is_refused_by_the_schema_too(path: Path) -> None:
    """Or, for the few whose errors no schema can see, accepted: the list stays true."""
    text = path.read_text()
    issues: list[PolicyIssue] = []
    tree = load_yaml_text(text, str(path), issues)
    if issues or tree is None:
        assert path.name in NOT_YAML  # the editor's YAML parser says so before any schema
        return
    errors = list(VALIDATOR.iter_errors(plain(tree)))
    if path.name in ONLY_CHECK_SEES:
        assert errors == [], f"{path.name}: the schema refuses it now; take it off the list"
    else:
        assert errors, f"{path.name}: check refuses it, the schema accepts it"


# (policy after 'version: 1', what check says): each must be refused by both.
WRONG = [
    ("unsafe: 'no'\n", "unsafe: expected true or false"),
    ("bogus: 1\n", "unknown key 'bogus'"),
    ("dns: {servers: 1.1.1.1}\n", "dns.servers: expected a list"),
    ("dns: {timeout: 5 minutes}\n", "unknown unit 'minutes'"),
    ("dns: {timeout: 0}\n", "dns.timeout: must be longer than 0s"),
    ("dns: {timeout: 0s}\n", "dns.timeout: must be longer than 0s"),
    ("dns: {timeout: 0.000ms}\n", "dns.timeout: must be longer than 0s"),
    ("defaults: {max_response_body: 0KiB}\n", "must be more than 0 bytes"),
    ("dns: {cache_size: -1}\n", "dns.cache_size: expected a whole number >= 0"),
    ("dns: {cache_size: true}\n", "dns.cache_size: expected a whole number >= 0"),
    ("proxy: {max_connections: 0}\n", "proxy.max_connections: expected a whole number >= 1"),
    ("proxy: {max_header_bytes: 64 KiBs}\n", "unknown unit 'KiBs'"),
    ("proxy: {idle_timeout: -1s}\n", "must not be negative"),
    ("defaults: {tls: intercep}\n", "defaults.tls: expected one of intercept, passthrough"),
    ("defaults: {action: deny}\n", "defaults cannot deny"),
    ("defaults: {hosts: [a.example]}\n", "hosts belongs in an entry of destinations"),
    ("defaults: {network: {ports: []}}\n", "empty list"),
    ("defaults: {network: {ports: [70000]}}\n", "out of range"),
    ("defaults: {network: {ports: [http]}}\n", "a port 1-65535 or a range"),
    ("defaults: {network: {deny: [specal-purpose]}}\n", "unknown named set"),
    ("defaults: {network: {deny: [10.0.0.0/8]}}\n", "does not include special-purpose"),
    ("defaults: {network: {allow: [special-purpose]}}\n", "named sets can only be denied"),
    ("defaults: {tls: passthrough, connect_refusals: inside-tls}\n", "inside-tls needs tls"),
    ("defaults: {connect_refusals: inside}\n", "expected one of inside-tls, on-connect"),
    ("defaults: {limits: {concurrency: 0}}\n", "concurrency: expected a whole number >= 1"),
    ("defaults: {limits: {rate: fast}}\n", "expected a rate like"),
    ("defaults: {limits: {key: ip}}\n", "expected one of host, host-port"),
    ("defaults: {limits: {circuit: {failures: many}}}\n", "circuit.failures"),
    ("defaults: {limits: {burst: 2, bogus: 1}}\n", "unknown key 'bogus'"),
    ("defaults: {timeouts: {connect: soon}}\n", "defaults.timeouts.connect"),
    ("defaults: {timeouts: {read: 5s}}\n", "unknown key 'read'"),
    ("defaults: {max_request_body: 0}\n", "must be more than 0 bytes"),
    ("defaults: {redirects: {mode: follow, max_hops: 11}}\n", "from 1 to 10"),
    ("defaults: {redirects: {scope: anywhere}}\n", "expected one of same_host"),
    ("defaults: {retries: {attempts: 11}}\n", "from 0 to 10"),
    ("defaults: {retries: {on: [404]}}\n", "connect-error, timeout, 429 or 5xx"),
    ("defaults: {upgrade: 1}\n", "defaults.upgrade: expected true or false"),
    ("destinations: [{name: x}]\n", "missing 'hosts'"),
    ("destinations: [{hosts: []}]\n", "empty list"),
    ("destinations: [{hosts: [a.example], action: block}]\n", "expected one of allow, deny"),
    ("destinations: [{hosts: [a.example], ca_bundle: x.pem}]\n", "only allowed under defaults"),
    ("destinations: [{hosts: [a.example], name: 42}]\n", "name: expected a string"),
    ("destinations: [{hosts: [a.example], signing: {secrets: [env:X]}}]\n", "missing 'scheme'"),
    (
        "destinations: [{hosts: [a.example], signing: {scheme: github}}]\n",
        "missing 'secrets'",
    ),
    (
        "destinations: [{hosts: [a.example], signing: {scheme: github, secrets: [whsec_x]}}]\n",
        "literal secrets are not allowed",
    ),
    (
        "destinations: [{hosts: [a.example], signing: {scheme: github, secrets: [env:X],"
        " header_prefix: svix}}]\n",
        "unknown key 'header_prefix'",
    ),
    (
        "destinations: [{hosts: [a.example], signing: {scheme: hmac, secrets: [env:X]}}]\n",
        "missing required option(s): header",
    ),
    (
        "destinations: [{hosts: [a.example], signing: {scheme: hmac, header: X-Sig,"
        " encoding: base32, secrets: [env:X]}}]\n",
        "encoding",
    ),
    (
        "destinations: [{hosts: [a.example], signing: {scheme: rot13, secrets: [env:X]}}]\n",
        "expected one of standard-webhooks",
    ),
    ("destinations: [{hosts: [a.example], senders: []}]\n", "empty list"),
    ("destinations: [{hosts: [a.example], logging: {retention: 1d}}]\n", "applies to the whole"),
    ("logging: {capture_body: lots}\n", "logging.capture_body"),
    ("logging: {id_header: 'X Event'}\n", "is not a header name"),
    ("logging: {redact: {cookies: [a]}}\n", "unknown key 'cookies'"),
    ("senders: {billing: {}}\n", "missing 'credentials'"),
    ("senders: {'bill:ing': {credentials: [env:X]}}\n", "invalid sender name"),
    ("senders: {billing: {credentials: [env:X], default: maybe}}\n", "expected one of allow"),
    ("senders: {billing: {credentials: [env:X], clients: []}}\n", "empty list"),
    ("senders: {billing: {credentials: [env:X], clients: [everyone]}}\n", "is not a CIDR"),
    ("senders: nobody\n", "expected a mapping of sender names"),
    ("limits: {on_backend_failure: local}\n", "missing 'backend'"),
    ("limits: {backend: 'http://redis:6379'}\n", "limits.backend"),
    ("limits: {backend: 'redis://r:6379/0', password: hunter2}\n", "literal secrets"),
    ("limits: {backend: 'redis://r:6379/0', concurrency: 4}\n", "per-destination limits go"),
]


@pytest.mark.parametrize(("written", "says"), WRONG, ids=[w for w, _ in WRONG])
def test_the_schema_refuses_what_check_refuses(written: str, says: str, tmp_path: Path) -> None:
    text = "version: 1\n" + written
    refused = check_errors(text, tmp_path)
    assert refused is not None and says in refused, refused
    assert schema_errors(text), "check refuses it; the schema accepts it"


RIGHT = [
    "dns: {timeout: 2, max_ttl: 0, cache_size: 0, servers: ['127.0.0.1:53', '[::1]:53']}\n",
    "dns: {timeout: 0.5s, max_ttl: 0s}\n",
    "defaults: {max_request_body: 0.5KiB, timeouts: {connect: 100ms, body: 10.0s}}\n",
    "proxy: {max_header_bytes: 65536, max_buffered_bodies: 1GiB, max_idle_upstream: 0}\n",
    "proxy:\n",
    "defaults: {network: {deny: [special-purpose, 192.0.2.0/24, '2001:db8::/32'],"
    " ports: [443, '8000-8999', ' 9000 - 9001 ']}}\n",
    "defaults: {limits: {rate: null, burst: 5, queue: 0, queue_timeout: 0s}, ca_bundle: null}\n",
    "defaults: {limits: {rate: 600/m, circuit: {failures: 0, cooloff: 30s}}}\n",
    "defaults: {retries: {attempts: 3, on: [connect-error, timeout, 429, 503]}}\n",
    "unsafe: true\ndefaults: {network: {deny: [10.0.0.0/8]}}\n",
    "destinations:\n",
    "destinations: [{hosts: [a.example], signing: null}]\n",
    "destinations: [{hosts: [a.example], tls: passthrough, connect_refusals: on-connect}]\n",
    "destinations: [{hosts: [a.example], signing: {scheme: standard-webhooks,"
    " header_prefix: svix, secrets: [env:A, {secret: 'file:b.txt', not_after: 2030-01-01}]}}]\n",
    "destinations: [{hosts: [a.example], signing: {scheme: hmac, header: X-Sig,"
    " algorithm: sha512, encoding: base64, content: timestamp-body, timestamp_header: X-Ts,"
    " secrets: [env:A]}}]\n",
    "senders: none\n",
    "senders: {billing: {credentials: [env:A], clients: [10.0.0.0/8], default: deny}}\n"
    "destinations: [{hosts: [a.example], senders: [billing], enforce: false}]\n",
    "logging: {capture_body: 0, id_header: X-Event-Id, redact: {headers: [X-Pin], query: [t]}}\n",
    "limits: {backend: 'rediss://r:6379/0', password: env:P, lease: 500ms, timeout: 1s}\n",
]


@pytest.mark.parametrize("written", RIGHT)
def test_the_schema_accepts_what_check_accepts(written: str, tmp_path: Path) -> None:
    text = "version: 1\n" + written
    (tmp_path / "b.txt").write_text("x")
    assert check_errors(text, tmp_path) is None
    assert schema_errors(text) == []


def test_an_editor_sees_what_each_key_is_for() -> None:
    defaults = SCHEMA["properties"]["defaults"]["properties"]
    assert "receiver" in SCHEMA["definitions"]["timeouts"]["properties"]["connect"]["description"]
    assert defaults["limits"] == {"$ref": "#/definitions/limits"}
    text = textwrap.dedent(json.dumps(SCHEMA))
    assert text.count('"description"') > 60
