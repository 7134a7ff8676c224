"""The receiver-side examples in docs/examples/ verify what hookwall.signing produces, and
docs/verifying.md quotes each of them verbatim (so the doc cannot drift from tested code).

Python examples always run; Node.js ones when `node` is on PATH; Go ones when `go` is.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args, get_type_hints

import pytest

from hookwall.signing import (
    GenericHmac,
    GitHub,
    Scheme,
    SigningKey,
    StandardWebhooks,
    Stripe,
    generate_key,
    parse_secret,
)
from tests.support.paths import REPO

ROOT = REPO
EXAMPLES = ROOT / "docs" / "examples"
DOC = ROOT / "docs" / "verifying.md"
SCHEME_FILES = ["verify_standard_webhooks", "verify_github", "verify_stripe", "verify_generic_hmac"]
LANGUAGES = {"python": ".py", "node": ".js", "go": ".go"}

BODY = b'{"event": "invoice.paid", "note": "caf\xc3\xa9", "amount": 1200}\n'
BINARY_BODY = b"\x00\xff\xfe raw bytes, not UTF-8 \x80"
STALE = 10 * 60  # seconds: beyond the examples' 5-minute tolerance


@dataclass(frozen=True)
class Case:
    name: str
    example: str  # file stem in docs/examples
    body: bytes
    headers: Callable[[], dict[str, str | list[str]]]  # signed when the test runs
    secret: str
    expect: str  # "ok" or "bad"
    options: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> str:
        case: dict[str, object] = {
            "body_b64": base64.b64encode(self.body).decode(),
            "headers": self.headers(),
            "secret": self.secret,
        }
        if self.options:
            case["options"] = self.options
        return json.dumps(case)


def _sign(
    scheme: Scheme, keys: list[SigningKey], body: bytes = BODY, age: int = 0
) -> list[tuple[str, str]]:
    return scheme.sign(body, msg_id="msg_docs1", timestamp=int(time.time()) - age, keys=keys)


def _as_dict(headers: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Header lines as the JSON case carries them: repeated names become a list."""
    out: dict[str, str | list[str]] = {}
    for name, value in headers:
        if name in out:
            previous = out[name]
            out[name] = [*([previous] if isinstance(previous, str) else previous), value]
        else:
            out[name] = value
    return out


def _signed(
    scheme: Scheme, keys: list[SigningKey], body: bytes = BODY, age: int = 0
) -> Callable[[], dict[str, str | list[str]]]:
    return lambda: _as_dict(_sign(scheme, keys, body, age))


def _as_webhook(
    scheme: StandardWebhooks, keys: list[SigningKey]
) -> Callable[[], dict[str, str | list[str]]]:
    """svix-* headers read back under the webhook-* names the examples use."""

    def headers() -> dict[str, str | list[str]]:
        lines = _sign(scheme, keys)
        assert [name for name, _ in lines] == list(scheme.owned_headers)
        return _as_dict([(name.replace("svix-", "webhook-", 1), v) for name, v in lines])

    return headers


def _joined_github(keys: list[SigningKey]) -> Callable[[], dict[str, str | list[str]]]:
    """Several X-Hub-Signature-256 lines joined into one, as some servers present them."""

    def headers() -> dict[str, str | list[str]]:
        lines = _sign(GitHub(), keys)
        return {"X-Hub-Signature-256": ", ".join(v for _, v in lines)}

    return headers


def _cases() -> list[Case]:
    cases: list[Case] = []

    # standard webhooks, v1 and v1a
    sw = StandardWebhooks()
    g1, g2 = generate_key("standard-webhooks"), generate_key("standard-webhooks")
    ge = generate_key("standard-webhooks", ed25519=True)
    k1, k2, ke = (parse_secret("standard-webhooks", g.secret) for g in (g1, g2, ge))
    assert ge.public_key is not None
    other_pub = generate_key("standard-webhooks", ed25519=True).public_key
    assert other_pub is not None
    both = _signed(sw, [k1, k2, ke])
    svix = StandardWebhooks(header_prefix="svix")
    ex = "verify_standard_webhooks"
    cases += [
        Case("sw-v1-good", ex, BODY, _signed(sw, [k1]), g1.secret, "ok"),
        Case(
            "sw-v1-binary-body",
            ex,
            BINARY_BODY,
            _signed(sw, [k1], BINARY_BODY),
            g1.secret,
            "ok",
        ),
        Case("sw-v1-rotation-first", ex, BODY, both, g1.secret, "ok"),
        Case("sw-v1-rotation-second", ex, BODY, both, g2.secret, "ok"),
        Case("sw-v1a-rotation", ex, BODY, both, ge.public_key, "ok"),
        Case("sw-v1a-good", ex, BODY, _signed(sw, [ke]), ge.public_key, "ok"),
        Case("sw-v1-tampered", ex, BODY + b" ", _signed(sw, [k1]), g1.secret, "bad"),
        Case("sw-v1-wrong-secret", ex, BODY, _signed(sw, [k1]), g2.secret, "bad"),
        Case("sw-v1-stale", ex, BODY, _signed(sw, [k1], age=STALE), g1.secret, "bad"),
        Case("sw-v1-future", ex, BODY, _signed(sw, [k1], age=-STALE), g1.secret, "bad"),
        Case("sw-v1a-tampered", ex, BODY[:-1], _signed(sw, [ke]), ge.public_key, "bad"),
        Case("sw-v1a-wrong-key", ex, BODY, _signed(sw, [ke]), other_pub, "bad"),
        Case("sw-v1a-stale", ex, BODY, _signed(sw, [ke], age=STALE), ge.public_key, "bad"),
        Case("sw-v1-only-v1a-sent", ex, BODY, _signed(sw, [ke]), g1.secret, "bad"),
        # header_prefix: svix sends the same values under svix- names (the doc says so).
        Case("sw-svix-names-same-values", ex, BODY, _as_webhook(svix, [k1, ke]), g1.secret, "ok"),
        Case("sw-v1a-svix-names", ex, BODY, _as_webhook(svix, [ke]), ge.public_key, "ok"),
    ]

    # github
    gh = GitHub(legacy_sha1=True)
    s1, s2 = generate_key("github").secret, "a human-chosen secret"
    h1, h2 = parse_secret("github", s1), parse_secret("github", s2)
    two = _signed(gh, [h1, h2])
    joined = _joined_github([h1, h2])
    ex = "verify_github"
    cases += [
        Case("gh-good", ex, BODY, _signed(gh, [h1]), s1, "ok"),
        Case("gh-binary-body", ex, BINARY_BODY, _signed(gh, [h1], BINARY_BODY), s1, "ok"),
        Case("gh-rotation-first", ex, BODY, two, s1, "ok"),
        Case("gh-rotation-second", ex, BODY, two, s2, "ok"),
        Case("gh-rotation-joined", ex, BODY, joined, s2, "ok"),
        Case("gh-tampered", ex, BODY + b" ", _signed(gh, [h1]), s1, "bad"),
        Case("gh-wrong-secret", ex, BODY, _signed(gh, [h1]), s2, "bad"),
    ]

    # stripe
    st = Stripe()
    t1, t2 = generate_key("stripe").secret, generate_key("stripe").secret
    p1, p2 = parse_secret("stripe", t1), parse_secret("stripe", t2)
    ex = "verify_stripe"
    cases += [
        Case("stripe-good", ex, BODY, _signed(st, [p1]), t1, "ok"),
        Case("stripe-binary-body", ex, BINARY_BODY, _signed(st, [p1], BINARY_BODY), t1, "ok"),
        Case("stripe-rotation-second", ex, BODY, _signed(st, [p1, p2]), t2, "ok"),
        Case("stripe-tampered", ex, BODY + b" ", _signed(st, [p1]), t1, "bad"),
        Case("stripe-wrong-secret", ex, BODY, _signed(st, [p1]), t2, "bad"),
        Case("stripe-stale", ex, BODY, _signed(st, [p1], age=STALE), t1, "bad"),
        Case("stripe-future", ex, BODY, _signed(st, [p1], age=-STALE), t1, "bad"),
    ]

    # generic hmac: body only (prefix, hex) and timestamp-body (header, base64, sha512)
    ex = "verify_generic_hmac"
    plain = GenericHmac(header="X-Signature", value="sha256={signature}")
    plain_opts = {"header": "X-Signature", "prefix": "sha256="}
    stamped = GenericHmac(
        header="X-Webhook-Signature",
        algorithm="sha512",
        encoding="base64",
        content="timestamp-body",
        separator=",",
        timestamp_header="X-Webhook-Timestamp",
    )
    stamped_opts = {
        "header": "X-Webhook-Signature",
        "algorithm": "sha512",
        "encoding": "base64",
        "timestamp_header": "X-Webhook-Timestamp",
        "separator": ",",
    }
    m1, m2 = generate_key("hmac").secret, generate_key("hmac").secret
    a1, a2 = parse_secret("hmac", m1), parse_secret("hmac", m2)
    b1, b2 = (parse_secret("hmac", m, hmac_algorithm="sha512") for m in (m1, m2))
    cases += [
        Case("hmac-good", ex, BODY, _signed(plain, [a1]), m1, "ok", plain_opts),
        Case(
            "hmac-binary-body",
            ex,
            BINARY_BODY,
            _signed(plain, [a1], BINARY_BODY),
            m1,
            "ok",
            plain_opts,
        ),
        Case("hmac-rotation", ex, BODY, _signed(plain, [a1, a2]), m2, "ok", plain_opts),
        Case("hmac-tampered", ex, b"x" + BODY, _signed(plain, [a1]), m1, "bad", plain_opts),
        Case("hmac-wrong-secret", ex, BODY, _signed(plain, [a1]), m2, "bad", plain_opts),
        Case("hmac-ts-good", ex, BODY, _signed(stamped, [b1]), m1, "ok", stamped_opts),
        Case("hmac-ts-rotation", ex, BODY, _signed(stamped, [b1, b2]), m2, "ok", stamped_opts),
        Case(
            "hmac-ts-tampered",
            ex,
            BODY + b"\n",
            _signed(stamped, [b1]),
            m1,
            "bad",
            stamped_opts,
        ),
        Case(
            "hmac-ts-wrong-secret",
            ex,
            BODY,
            _signed(stamped, [b1]),
            m2,
            "bad",
            stamped_opts,
        ),
        Case(
            "hmac-ts-stale",
            ex,
            BODY,
            _signed(stamped, [b1], age=STALE),
            m1,
            "bad",
            stamped_opts,
        ),
    ]
    return cases


CASES = _cases()


# ---------------------------------------------------------------------------------------
# runners


@pytest.fixture(scope="session")
def go_binaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Build each Go example once (stdlib only; no module download is ever needed)."""
    if shutil.which("go") is None:
        pytest.skip("go is not on PATH")
    out = tmp_path_factory.mktemp("go-examples")
    env = dict(os.environ, GOTOOLCHAIN="local", GOPROXY="off", GOFLAGS="-mod=mod")
    env.setdefault("HOME", str(out))
    if not env.get("GOCACHE") and not Path(env["HOME"]).is_dir():
        env["GOCACHE"] = str(out / "cache")
    binaries = {}
    for stem in SCHEME_FILES:
        target = out / stem
        subprocess.run(
            ["go", "build", "-o", str(target), str(EXAMPLES / f"{stem}.go")],
            check=True,
            capture_output=True,
            env=env,
            cwd=out,
            timeout=300,
        )
        binaries[stem] = target
    yield binaries


def _command(language: str, stem: str, request: pytest.FixtureRequest) -> list[str]:
    if language == "python":
        return [sys.executable, str(EXAMPLES / f"{stem}.py")]
    if language == "node":
        if shutil.which("node") is None:
            pytest.skip("node is not on PATH")
        return ["node", str(EXAMPLES / f"{stem}.js")]
    binaries: dict[str, Path] = request.getfixturevalue("go_binaries")
    return [str(binaries[stem])]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("language", list(LANGUAGES))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_example_verifies_hookwall_signatures(
    language: str, case: Case, request: pytest.FixtureRequest
) -> None:
    result = subprocess.run(
        _command(language, case.example, request),
        input=case.as_json(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == case.expect, (case.name, result.stdout, result.stderr)


# ---------------------------------------------------------------------------------------
# the doc


def test_every_example_is_tested() -> None:
    present = {p.name for p in EXAMPLES.iterdir() if p.is_file()}
    expected = {stem + ext for stem in SCHEME_FILES for ext in LANGUAGES.values()}
    assert present == expected
    assert {c.example for c in CASES} == set(SCHEME_FILES)


def test_every_policy_snippet_in_the_doc_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the doc tells an operator to write is a policy hookwall accepts, and it does what
    the doc says (the svix- header names)."""
    from hookwall.policy import load_policy
    from hookwall.signing.settings import HEADER_PREFIXES

    doc = DOC.read_text(encoding="utf-8")
    snippets = [block.split("```", 1)[0] for block in doc.split("```yaml\n")[1:]]
    assert snippets, "docs/verifying.md shows how to set the svix- header names"
    monkeypatch.setenv("ACME_WHSEC", generate_key("standard-webhooks").secret)
    for n, snippet in enumerate(snippets):
        policy_file = tmp_path / f"snippet{n}.yaml"
        body = "".join(f"      {line}\n" for line in snippet.strip().splitlines())
        policy_file.write_text(
            f"version: 1\ndestinations:\n  - hosts: [hooks.acme.test]\n    {body.strip()}\n"
        )
        signing = load_policy(policy_file).settings_for("hooks.acme.test").signing
        assert signing is not None
        for name in signing.scheme.owned_headers:
            assert f"`{name}`" in doc, name
    accepted = get_args(get_type_hints(StandardWebhooks)["header_prefix"])
    assert set(accepted) == set(HEADER_PREFIXES)  # what a policy may choose, the scheme takes
    for prefix in accepted:  # every name a policy can choose is documented
        for name in StandardWebhooks(header_prefix=prefix).owned_headers:
            assert f"`{name}`" in doc, name


@pytest.mark.parametrize(
    "name", sorted(stem + ext for stem in SCHEME_FILES for ext in LANGUAGES.values())
)
def test_doc_quotes_each_example_verbatim(name: str) -> None:
    code = (EXAMPLES / name).read_text(encoding="utf-8")
    doc = DOC.read_text(encoding="utf-8")
    assert code.rstrip("\n") + "\n```" in doc, f"docs/verifying.md does not quote {name} verbatim"
    assert f"docs/examples/{name}" in doc or f"examples/{name}" in doc
