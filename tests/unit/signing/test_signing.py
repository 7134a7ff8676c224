"""hookwall.signing: the published vectors, stock verifiers, rotation, expiry, bad secrets,
and property tests checking every scheme against independent verifiers written here."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import pickle
import re
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks.webhooks
import stripe
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hookwall.signing import (
    BadSecret,
    GeneratedKey,
    GenericHmac,
    GitHub,
    Scheme,
    SigningError,
    SigningKey,
    StandardWebhooks,
    Stripe,
    generate_key,
    is_valid_message_id,
    key_fingerprint,
    make_scheme,
    new_message_id,
    parse_secret,
    parse_secret_for,
    sign_request,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SW_VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GH_VECTOR_SECRET = "It's a Secret to Everybody"
# Fixed secrets for the tests (parsed once: an HMAC key id costs one scrypt run).
SW_SECRET_2 = "whsec_" + base64.b64encode(bytes(range(32))).decode()
SW_ED_SEED = bytes(range(100, 132))
SW_ED_SECRET = "whsk_" + base64.b64encode(SW_ED_SEED).decode()
STRIPE_SECRET = "whsec_abcdefghijklmnopqrstuvwxyz012345"
STRIPE_SECRET_2 = "whsec_ZYXWVUTSRQPONMLKJIHGFEDCBA987654"
HMAC_SECRET = "generic-secret-\N{SNOWMAN}"

SW_KEY = parse_secret("standard-webhooks", SW_VECTOR_SECRET)
SW_KEY_2 = parse_secret("standard-webhooks", SW_SECRET_2)
SW_ED_KEY = parse_secret("standard-webhooks", SW_ED_SECRET)
GH_KEY = parse_secret("github", GH_VECTOR_SECRET)
GH_KEY_2 = parse_secret("github", "another secret")
STRIPE_KEY = parse_secret("stripe", STRIPE_SECRET)
STRIPE_KEY_2 = parse_secret("stripe", STRIPE_SECRET_2)
HMAC_KEY = parse_secret("hmac", HMAC_SECRET)
HMAC_KEY_512 = parse_secret("hmac", HMAC_SECRET, hmac_algorithm="sha512")


def _header(headers: list[tuple[str, str]], name: str) -> str:
    values = [v for k, v in headers if k.lower() == name.lower()]
    assert len(values) == 1, (name, headers)
    return values[0]


def _all(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


# ---------------------------------------------------------------------------------------
# independent verifiers (hmac/hashlib/cryptography only; no hookwall code)


def _sw_verify_v1(body: bytes, headers: list[tuple[str, str]], secret: str) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = _header(headers, "webhook-id")
    ts = _header(headers, "webhook-timestamp")
    expected = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    for entry in _header(headers, "webhook-signature").split(" "):
        version, sig = entry.split(",")
        if version == "v1" and hmac.compare_digest(base64.b64decode(sig), expected):
            return True
    return False


def _sw_verify_v1a(body: bytes, headers: list[tuple[str, str]], public: str) -> bool:
    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(public.removeprefix("whpk_")))
    msg_id = _header(headers, "webhook-id")
    ts = _header(headers, "webhook-timestamp")
    for entry in _header(headers, "webhook-signature").split(" "):
        version, sig = entry.split(",")
        if version != "v1a":
            continue
        try:
            pub.verify(base64.b64decode(sig), f"{msg_id}.{ts}.".encode() + body)
            return True
        except InvalidSignature:
            pass
    return False


def _gh_verify(body: bytes, headers: list[tuple[str, str]], secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(v, expected) for v in _all(headers, "x-hub-signature-256"))


def _gh_verify_sha1(body: bytes, headers: list[tuple[str, str]], secret: str) -> bool:
    expected = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return any(hmac.compare_digest(v, expected) for v in _all(headers, "x-hub-signature"))


def _stripe_verify(body: bytes, headers: list[tuple[str, str]], secret: str) -> bool:
    pairs = [item.split("=", 1) for item in _header(headers, "stripe-signature").split(",")]
    assert pairs[0][0] == "t"
    ts = pairs[0][1]
    expected = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(k == "v1" and hmac.compare_digest(v, expected) for k, v in pairs[1:])


def _generic_expected(scheme: GenericHmac, body: bytes, secret: str, timestamp: int) -> list[str]:
    content = body
    if scheme.content == "timestamp-body":
        content = str(timestamp).encode() + scheme.separator.encode() + body
    raw = hmac.new(secret.encode(), content, getattr(hashlib, scheme.algorithm)).digest()
    sig = raw.hex() if scheme.encoding == "hex" else base64.b64encode(raw).decode()
    return [scheme.value.replace("{signature}", sig).replace("{timestamp}", str(timestamp))]


# ---------------------------------------------------------------------------------------
# the published vectors


def test_standard_webhooks_vector() -> None:
    headers = StandardWebhooks().sign(
        b'{"test": 2432232314}',
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        keys=[SW_KEY],
    )
    assert headers == [
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    ]


def test_github_vector() -> None:
    headers = GitHub().sign(b"Hello, World!", msg_id="m", timestamp=1, keys=[GH_KEY])
    assert headers == [
        (
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )
    ]


def test_github_legacy_sha1_cross_check() -> None:
    headers = GitHub(legacy_sha1=True).sign(
        b"Hello, World!", msg_id="m", timestamp=1, keys=[GH_KEY]
    )
    expected = hmac.new(GH_VECTOR_SECRET.encode(), b"Hello, World!", hashlib.sha1).hexdigest()
    assert _header(headers, "X-Hub-Signature") == "sha1=" + expected
    assert _header(headers, "X-Hub-Signature-256").startswith("sha256=757107ea")


def test_stripe_cross_check() -> None:
    body = b'{"id": "evt_1", "object": "event"}'
    headers = Stripe().sign(body, msg_id="m", timestamp=1700000000, keys=[STRIPE_KEY])
    # The secret is used as is, whsec_ prefix included, not base64-decoded.
    mac = hmac.new(STRIPE_SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers == [("Stripe-Signature", f"t=1700000000,v1={mac}")]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # Outpost default
        (
            {"header": "x-outpost-signature", "value": "v0={signature}"},
            lambda b, t: "v0=" + hmac.new(HMAC_SECRET.encode(), b, hashlib.sha256).hexdigest(),
        ),
        # Convoy "advanced": "<ts>,<body>" signed, t=...,v1=... shown
        (
            {
                "header": "X-Convoy-Signature",
                "value": "t={timestamp},v1={signature}",
                "content": "timestamp-body",
                "separator": ",",
            },
            lambda b, t: (
                f"t={t},v1="
                + hmac.new(HMAC_SECRET.encode(), f"{t},".encode() + b, hashlib.sha256).hexdigest()
            ),
        ),
        # base64 SHA-256 of the body, bare
        (
            {"header": "X-Signature", "encoding": "base64"},
            lambda b, t: base64.b64encode(
                hmac.new(HMAC_SECRET.encode(), b, hashlib.sha256).digest()
            ).decode(),
        ),
        # GitHub-like with a custom header
        (
            {"header": "X-Signature", "value": "sha256={signature}"},
            lambda b, t: "sha256=" + hmac.new(HMAC_SECRET.encode(), b, hashlib.sha256).hexdigest(),
        ),
    ],
)
def test_generic_hmac_cross_checks(
    options: dict[str, object], expected: Callable[[bytes, int], str]
) -> None:
    scheme = make_scheme("hmac", **options)
    body = b'{"a": 1}'
    headers = scheme.sign(body, msg_id="m", timestamp=1700000123, keys=[HMAC_KEY])
    assert headers == [(str(options["header"]), expected(body, 1700000123))]


def test_generic_hmac_sha512_and_timestamp_header() -> None:
    scheme = GenericHmac(
        header="X-Sig",
        algorithm="sha512",
        content="timestamp-body",
        timestamp_header="X-Sig-Timestamp",
    )
    headers = scheme.sign(b"abc", msg_id="m", timestamp=42, keys=[HMAC_KEY_512])
    mac = hmac.new(HMAC_SECRET.encode(), b"42.abc", hashlib.sha512).hexdigest()
    assert headers == [("X-Sig", mac), ("X-Sig-Timestamp", "42")]
    assert scheme.owned_headers == ("x-sig", "x-sig-timestamp")


# ---------------------------------------------------------------------------------------
# stock verifiers


def test_standard_webhooks_library_verifies_v1() -> None:
    body = b'{"event": "invoice.paid", "amount": 1200}'
    ts = int(time.time())
    headers = StandardWebhooks().sign(body, msg_id=new_message_id(), timestamp=ts, keys=[SW_KEY])
    wh = standardwebhooks.webhooks.Webhook(SW_VECTOR_SECRET)
    assert wh.verify(body, dict(headers)) == {"event": "invoice.paid", "amount": 1200}
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        wh.verify(body + b" ", dict(headers))
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.webhooks.Webhook(SW_SECRET_2).verify(body, dict(headers))


def test_stripe_library_verifies() -> None:
    body = '{"id": "evt_1", "object": "event", "note": "caf\N{LATIN SMALL LETTER E WITH ACUTE}"}'
    headers = Stripe().sign(
        body.encode(), msg_id="m", timestamp=int(time.time()), keys=[STRIPE_KEY]
    )
    header = _header(headers, "Stripe-Signature")
    assert stripe.WebhookSignature.verify_header(body, header, STRIPE_SECRET, 300) is True
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body + " ", header, STRIPE_SECRET, 300)
    stale = Stripe().sign(
        body.encode(), msg_id="m", timestamp=int(time.time()) - 3600, keys=[STRIPE_KEY]
    )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, stale[0][1], STRIPE_SECRET, 300)


def test_ed25519_v1a_verifies_with_cryptography() -> None:
    body = b"\x00binary\xff body"
    headers = StandardWebhooks().sign(body, msg_id="msg_x", timestamp=1700000000, keys=[SW_ED_KEY])
    sig_header = _header(headers, "webhook-signature")
    assert re.fullmatch(r"v1a,[A-Za-z0-9+/]{86}==", sig_header)
    assert SW_ED_KEY.public_key is not None
    assert _sw_verify_v1a(body, headers, SW_ED_KEY.public_key)
    assert not _sw_verify_v1a(body + b"!", headers, SW_ED_KEY.public_key)
    other = generate_key("standard-webhooks", ed25519=True).public_key
    assert other is not None
    assert not _sw_verify_v1a(body, headers, other)


# ---------------------------------------------------------------------------------------
# rotation and expiry


def test_standard_webhooks_rotation_each_key_alone_verifies() -> None:
    body = b'{"rotating": true}'
    ts = int(time.time())
    result = sign_request(
        StandardWebhooks(),
        body,
        msg_id="msg_rot",
        timestamp=ts,
        keys=[SW_KEY, SW_KEY_2, SW_ED_KEY],
        now=NOW,
    )
    assert result.key_ids == (SW_KEY.key_id, SW_KEY_2.key_id, SW_ED_KEY.key_id)
    entries = _header(result.headers, "webhook-signature").split(" ")
    assert [e.split(",")[0] for e in entries] == ["v1", "v1", "v1a"]
    for secret in (SW_VECTOR_SECRET, SW_SECRET_2):
        standardwebhooks.webhooks.Webhook(secret).verify(body, dict(result.headers))
    assert SW_ED_KEY.public_key is not None
    assert _sw_verify_v1a(body, result.headers, SW_ED_KEY.public_key)


def test_github_rotation_one_line_per_key() -> None:
    body = b"payload"
    headers = GitHub(legacy_sha1=True).sign(body, msg_id="m", timestamp=1, keys=[GH_KEY, GH_KEY_2])
    assert [k for k, _ in headers] == ["X-Hub-Signature-256"] * 2 + ["X-Hub-Signature"] * 2
    for secret in (GH_VECTOR_SECRET, "another secret"):
        assert _gh_verify(body, headers, secret)
        assert _gh_verify_sha1(body, headers, secret)
    assert not _gh_verify(body, headers, "third")


def test_stripe_rotation_each_secret_verifies_with_library() -> None:
    body = '{"id": "evt_rot"}'
    headers = Stripe().sign(
        body.encode(), msg_id="m", timestamp=int(time.time()), keys=[STRIPE_KEY, STRIPE_KEY_2]
    )
    header = _header(headers, "stripe-signature")
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64},v1=[0-9a-f]{64}", header)
    for secret in (STRIPE_SECRET, STRIPE_SECRET_2):
        stripe.WebhookSignature.verify_header(body, header, secret, 300)


def test_generic_rotation_joins_values_in_one_header() -> None:
    scheme = GenericHmac(header="X-Sig", value="sha256={signature}")
    key_2 = parse_secret("hmac", "second")
    headers = scheme.sign(b"x", msg_id="m", timestamp=1, keys=[HMAC_KEY, key_2])
    value = _header(headers, "x-sig")
    parts = value.split(", ")
    assert parts == [
        _generic_expected(scheme, b"x", HMAC_SECRET, 1)[0],
        _generic_expected(scheme, b"x", "second", 1)[0],
    ]


def test_expired_keys_do_not_sign() -> None:
    expired = parse_secret("standard-webhooks", SW_SECRET_2, not_after=NOW - timedelta(seconds=1))
    at_boundary = parse_secret("github", "boundary", not_after=NOW)
    later = parse_secret("github", "later", not_after=NOW + timedelta(days=1))
    result = sign_request(
        StandardWebhooks(), b"b", msg_id="m", timestamp=1, keys=[expired, SW_KEY], now=NOW
    )
    assert result.key_ids == (SW_KEY.key_id,)
    assert len(_header(result.headers, "webhook-signature").split(" ")) == 1
    assert not at_boundary.active(NOW)  # the key stops signing AT not_after
    assert at_boundary.active(NOW - timedelta(microseconds=1))
    result = sign_request(
        GitHub(), b"b", msg_id="m", timestamp=1, keys=[at_boundary, later], now=NOW
    )
    assert result.key_ids == (later.key_id,)
    assert _gh_verify(b"b", result.headers, "later")
    assert not _gh_verify(b"b", result.headers, "boundary")


def test_all_keys_expired_is_a_signing_error() -> None:
    expired = parse_secret("stripe", STRIPE_SECRET, not_after=NOW - timedelta(hours=1))
    with pytest.raises(SigningError, match=r"every key of this destination has expired"):
        sign_request(Stripe(), b"b", msg_id="m", timestamp=1, keys=[expired], now=NOW)
    with pytest.raises(SigningError):
        sign_request(Stripe(), b"b", msg_id="m", timestamp=1, keys=[], now=NOW)


def test_duplicate_keys_sign_once() -> None:
    result = sign_request(
        Stripe(), b"b", msg_id="m", timestamp=1, keys=[STRIPE_KEY, STRIPE_KEY], now=NOW
    )
    assert result.key_ids == (STRIPE_KEY.key_id,)
    assert _header(result.headers, "stripe-signature").count("v1=") == 1


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SW_KEY.active(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_secret("github", "x", not_after=datetime(2026, 1, 1))


def test_scheme_sign_with_no_keys_is_a_signing_error() -> None:
    for scheme in (StandardWebhooks(), GitHub(), Stripe(), GenericHmac(header="X-S")):
        with pytest.raises(SigningError):
            scheme.sign(b"", msg_id="m", timestamp=1, keys=[])


# ---------------------------------------------------------------------------------------
# schemes refuse what they cannot sign


@pytest.mark.parametrize(
    "msg_id", ["", "msg.1", "msg_\N{SNOWMAN}", "a b", "a\r\nX-Evil: 1", "a\x00", "m" * 257]
)
def test_standard_webhooks_refuses_bad_message_ids(msg_id: str) -> None:
    assert not is_valid_message_id(msg_id)
    with pytest.raises(SigningError):
        StandardWebhooks().sign(b"b", msg_id=msg_id, timestamp=1, keys=[SW_KEY])


@pytest.mark.parametrize("timestamp", [-1, True])
def test_bad_timestamps_are_refused(timestamp: int) -> None:
    with pytest.raises(SigningError):
        StandardWebhooks().sign(b"b", msg_id="m", timestamp=timestamp, keys=[SW_KEY])
    with pytest.raises(SigningError):
        Stripe().sign(b"b", msg_id="m", timestamp=timestamp, keys=[STRIPE_KEY])


@pytest.mark.parametrize(
    ("scheme", "key"),
    [
        (GitHub(), SW_ED_KEY),
        (Stripe(), SW_ED_KEY),
        (StandardWebhooks(), HMAC_KEY_512),
        (GenericHmac(header="X-S", algorithm="sha512"), HMAC_KEY),
        (GenericHmac(header="X-S"), HMAC_KEY_512),
        (GenericHmac(header="X-S"), SW_ED_KEY),
    ],
)
def test_schemes_refuse_keys_of_the_wrong_algorithm(scheme: Scheme, key: SigningKey) -> None:
    with pytest.raises(SigningError) as info:
        scheme.sign(b"b", msg_id="m", timestamp=1, keys=[key])
    assert key.key_id in str(info.value)
    assert key.material.hex() not in str(info.value)


def test_owned_headers_cover_everything_written() -> None:
    cases: list[tuple[Scheme, SigningKey]] = [
        (StandardWebhooks(), SW_KEY),
        (StandardWebhooks(header_prefix="svix"), SW_KEY),
        (GitHub(legacy_sha1=True), GH_KEY),
        (Stripe(), STRIPE_KEY),
        (GenericHmac(header="X-Sig", content="timestamp-body", timestamp_header="X-Ts"), HMAC_KEY),
    ]
    for scheme, key in cases:
        headers = scheme.sign(b"b", msg_id="msg_1", timestamp=1, keys=[key])
        assert all(h == h.lower() for h in scheme.owned_headers)
        assert {k.lower() for k, _ in headers} == set(scheme.owned_headers)
    assert StandardWebhooks(header_prefix="svix").owned_headers == (
        "svix-id",
        "svix-timestamp",
        "svix-signature",
    )


def test_schemes_satisfy_the_protocol() -> None:
    schemes: list[Scheme] = [StandardWebhooks(), GitHub(), Stripe(), GenericHmac(header="X-S")]
    assert [s.name for s in schemes] == ["standard-webhooks", "github", "stripe", "hmac"]


# ---------------------------------------------------------------------------------------
# make_scheme


def test_make_scheme_builds_each_scheme() -> None:
    assert make_scheme("standard-webhooks") == StandardWebhooks()
    assert make_scheme("github", legacy_sha1=True) == GitHub(legacy_sha1=True)
    assert make_scheme("github", **{"legacy-sha1": True}) == GitHub(legacy_sha1=True)
    assert make_scheme("stripe") == Stripe()
    assert make_scheme(
        "hmac", header="X-S", algorithm="sha512", encoding="base64", timestamp_header=None
    ) == GenericHmac(header="X-S", algorithm="sha512", encoding="base64")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("nope", {}, r"unknown signing scheme 'nope'"),
        ("github", {"legacy": True}, r"unknown option 'legacy'.*legacy_sha1"),
        ("github", {"legacy_sha1": "yes"}, r"legacy_sha1 must be true or false"),
        ("stripe", {"header": "X"}, r"unknown option 'header' \(allowed: none\)"),
        ("hmac", {}, r"missing required option\(s\): header"),
        ("hmac", {"header": "X-S", "algorithm": "md5"}, r"algorithm must be one of sha256"),
        ("hmac", {"header": "X-S", "encoding": "hexa"}, r"encoding must be one of"),
        ("hmac", {"header": "X-S", "content": "all"}, r"content must be one of"),
        ("hmac", {"header": "X S"}, r"valid HTTP header name"),
        ("hmac", {"header": ""}, r"valid HTTP header name"),
        ("hmac", {"header": "Content-Length"}, r"reserved"),
        ("hmac", {"header": "X-S", "timestamp_header": "x-s"}, r"must differ"),
        ("hmac", {"header": "X-S", "value": "sha256="}, r"no \{signature\} placeholder"),
        ("hmac", {"header": "X-S", "value": "{sig}"}, r"unknown placeholder \{sig\}"),
        ("hmac", {"header": "X-S", "value": "{}"}, r"unknown placeholder"),
        ("hmac", {"header": "X-S", "value": "{signature:>9}"}, r"unknown placeholder"),
        ("hmac", {"header": "X-S", "value": "{signature!r}"}, r"unknown placeholder"),
        ("hmac", {"header": "X-S", "value": "{signature.x}"}, r"unknown placeholder"),
        ("hmac", {"header": "X-S", "value": "{signature"}, r"malformed"),
        ("hmac", {"header": "X-S", "value": "a\r\n{signature}"}, r"visible ASCII"),
        ("hmac", {"header": "X-S", "value": "t={timestamp},{signature}"}, r"not be signed"),
        ("hmac", {"header": "X-S", "value": 5}, r"must be a string"),
        ("hmac", {"header": "X-S", "timestamp_header": 5}, r"timestamp_header"),
    ],
)
def test_make_scheme_rejects_bad_options(
    name: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_scheme(name, **options)


def test_generic_template_literal_braces() -> None:
    scheme = make_scheme("hmac", header="X-S", value="{{v1}}={signature}")
    headers = scheme.sign(b"x", msg_id="m", timestamp=1, keys=[HMAC_KEY])
    mac = hmac.new(HMAC_SECRET.encode(), b"x", hashlib.sha256).hexdigest()
    assert headers == [("X-S", "{v1}=" + mac)]


def test_parse_secret_for_uses_the_scheme_algorithm() -> None:
    key = parse_secret_for(GenericHmac(header="X-S", algorithm="sha512"), HMAC_SECRET)
    assert key.algorithm == "hmac-sha512"
    assert key.key_id == HMAC_KEY.key_id  # same material, same id
    assert parse_secret_for(Stripe(), STRIPE_SECRET).key_id == STRIPE_KEY.key_id


# ---------------------------------------------------------------------------------------
# secrets and keys

_SEED_A = bytes(32)
_SEED_B = bytes([1]) * 32


def _pub(seed: bytes) -> bytes:
    from hookwall.signing.keys import ed25519_public_key

    return ed25519_public_key(seed)


BAD_SECRETS = [
    ("standard-webhooks", "whsec_MfKQ9r8GKYqrTwjU!D8ILPZIo2LaLaSw", "base64"),
    ("standard-webhooks", "whsec_MfKQ9r8GKYqrTwjU-D8ILPZIo2LaLaSw", "base64"),  # URL-safe
    ("standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwA", "base64"),  # bad length
    ("standard-webhooks", "whsec_c2hvcnRzZWNyZXQ=", "16..128 bytes"),  # 11 bytes
    ("standard-webhooks", "whsec_" + base64.b64encode(b"k" * 129).decode(), "16..128"),
    ("standard-webhooks", "whsec_", "16..128"),
    ("standard-webhooks", "whsk_" + base64.b64encode(b"s" * 31).decode(), "32-byte"),
    ("standard-webhooks", "whsk_" + base64.b64encode(b"s" * 48).decode(), "32-byte"),
    (
        "standard-webhooks",
        "whsk_" + base64.b64encode(_SEED_A + _pub(_SEED_B)).decode(),
        "not the public key",
    ),
    ("standard-webhooks", "whpk_" + base64.b64encode(_pub(_SEED_A)).decode(), "public key"),
    ("standard-webhooks", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "start with whsec_"),
    ("standard-webhooks", "", "empty"),
    ("github", "", "empty"),
    ("github", "   ", "empty"),
    ("github", " padded-secret", "whitespace"),
    ("stripe", "whsec_padded\n", "whitespace"),
    ("hmac", "lone-surrogate-\udc80", "Unicode"),
]


@pytest.mark.parametrize(("scheme", "secret", "message"), BAD_SECRETS)
def test_bad_secrets_never_echo_the_secret(scheme: str, secret: str, message: str) -> None:
    with pytest.raises(BadSecret, match=message) as info:
        parse_secret(scheme, secret)
    text = str(info.value) + repr(info.value)
    core = secret.strip().removeprefix("whsec_").removeprefix("whsk_").removeprefix("whpk_")
    if core.strip():
        assert core not in text
        # not even a recognisable chunk of it
        for i in range(0, max(len(core) - 8, 1)):
            assert core[i : i + 8] not in text
    assert (info.value.__cause__ is None and info.value.__suppress_context__ is True) or (
        info.value.__context__ is None
    )


def test_unknown_scheme_and_algorithm_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown signing scheme"):
        parse_secret("svix", "whsec_x")
    with pytest.raises(ValueError, match="'sha256' or 'sha512'"):
        parse_secret("hmac", "x", hmac_algorithm="md5")
    with pytest.raises(ValueError, match="only to the hmac scheme"):
        parse_secret("github", "x", hmac_algorithm="sha512")


def test_accepted_secret_forms() -> None:
    unpadded = "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("=")
    assert parse_secret("standard-webhooks", unpadded).material == b"k" * 32
    full = "whsk_" + base64.b64encode(SW_ED_SEED + _pub(SW_ED_SEED)).decode()
    key = parse_secret("standard-webhooks", full)
    assert key.material == SW_ED_SEED
    assert key.key_id == SW_ED_KEY.key_id
    assert key.public_key == "whpk_" + base64.b64encode(_pub(SW_ED_SEED)).decode()
    assert SW_KEY.material == base64.b64decode(SW_VECTOR_SECRET.removeprefix("whsec_"))
    assert STRIPE_KEY.material == STRIPE_SECRET.encode()  # as is, prefix included
    assert GH_KEY.material == GH_VECTOR_SECRET.encode()
    assert HMAC_KEY.material == HMAC_SECRET.encode("utf-8")


def test_repr_and_str_never_show_material() -> None:
    for key, secret in [
        (SW_KEY, SW_VECTOR_SECRET),
        (SW_ED_KEY, SW_ED_SECRET),
        (GH_KEY, GH_VECTOR_SECRET),
        (STRIPE_KEY, STRIPE_SECRET),
    ]:
        for text in (repr(key), str(key), f"{key}", repr([key]), repr({"k": key})):
            assert re.fullmatch(
                r".*SigningKey\([a-z0-9-]+, id=(hmac|ed25519):[0-9a-f]{12}\).*", text
            )
            for leak in (
                secret,
                secret.removeprefix("whsec_").removeprefix("whsk_"),
                key.material.hex(),
                base64.b64encode(key.material).decode(),
                repr(key.material),
            ):
                assert leak not in text
    assert repr(GH_KEY) == f"SigningKey(hmac-sha256, id={GH_KEY.key_id})"
    generated = generate_key("github")
    assert generated.secret not in repr(generated)


def test_keys_cannot_be_pickled_but_can_be_copied() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(GH_KEY)
    assert copy.copy(GH_KEY) is GH_KEY
    assert copy.deepcopy({"k": [GH_KEY]})["k"][0] is GH_KEY


def test_key_ids_are_stable_and_distinct() -> None:
    assert parse_secret("github", GH_VECTOR_SECRET).key_id == GH_KEY.key_id
    assert key_fingerprint("hmac-sha256", GH_KEY.material) == GH_KEY.key_id
    expected = hashlib.scrypt(
        GH_VECTOR_SECRET.encode(), salt=b"hookwall key id v1", n=2**14, r=8, p=1, dklen=16
    ).hex()[:12]
    assert GH_KEY.key_id == "hmac:" + expected
    assert GH_KEY_2.key_id != GH_KEY.key_id
    ids = {k.key_id for k in (SW_KEY, SW_KEY_2, SW_ED_KEY, GH_KEY, GH_KEY_2, STRIPE_KEY)}
    assert len(ids) == 6
    pub = _pub(SW_ED_SEED)
    assert SW_ED_KEY.key_id == "ed25519:" + hashlib.sha256(pub).hexdigest()[:12]


def test_signing_key_validates_itself() -> None:
    with pytest.raises(ValueError):
        SigningKey("ed25519", b"short", "ed25519:x")
    with pytest.raises(ValueError):
        SigningKey("hmac-sha256", b"", "hmac:x")
    with pytest.raises(ValueError):
        SigningKey("hmac-md5", b"k", "hmac:x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not belong"):
        SigningKey("ed25519", _SEED_A, "ed25519:x", public_key="whpk_AAAA")
    key = SigningKey("ed25519", _SEED_A, "ed25519:x")
    assert key.public_key == "whpk_" + base64.b64encode(_pub(_SEED_A)).decode()


# ---------------------------------------------------------------------------------------
# generate_key


@pytest.mark.parametrize(
    ("scheme", "ed25519", "pattern"),
    [
        ("standard-webhooks", False, r"whsec_[A-Za-z0-9+/]{43}="),
        ("standard-webhooks", True, r"whsk_[A-Za-z0-9+/]{43}="),
        ("stripe", False, r"whsec_[A-Za-z0-9]{32}"),
        ("github", False, r"[0-9a-f]{64}"),
        ("hmac", False, r"[0-9a-f]{64}"),
    ],
)
def test_generate_key_round_trips(scheme: str, ed25519: bool, pattern: str) -> None:
    generated = generate_key(scheme, ed25519=ed25519)
    assert isinstance(generated, GeneratedKey)
    assert re.fullmatch(pattern, generated.secret)
    key = parse_secret(scheme, generated.secret)
    assert key.key_id == generated.key_id
    assert key.public_key == generated.public_key
    if ed25519:
        assert generated.public_key is not None
        assert re.fullmatch(r"whpk_[A-Za-z0-9+/]{43}=", generated.public_key)
        assert generated.key_id.startswith("ed25519:")
    else:
        assert generated.public_key is None
        assert generated.key_id.startswith("hmac:")
    assert generate_key(scheme, ed25519=ed25519).secret != generated.secret


def test_generate_key_rejects_bad_requests() -> None:
    with pytest.raises(ValueError):
        generate_key("github", ed25519=True)
    with pytest.raises(ValueError):
        generate_key("nope")


def test_new_message_id() -> None:
    ids = {new_message_id() for _ in range(200)}
    assert len(ids) == 200
    alphabet = set(string.ascii_letters + string.digits)
    for msg_id in ids:
        assert is_valid_message_id(msg_id)
        assert msg_id.startswith("msg_") and len(msg_id) == 28
        assert set(msg_id[4:]) <= alphabet


# ---------------------------------------------------------------------------------------
# property tests: arbitrary bodies, independent verifiers

ONE_MB = bytes(range(256)) * 4096
PROPERTY = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
MSG_IDS = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=40)
TIMESTAMPS = st.integers(min_value=0, max_value=2**40)


@PROPERTY
@given(body=st.binary(max_size=4096), msg_id=MSG_IDS, ts=TIMESTAMPS)
@example(body=b"", msg_id="msg_1", ts=0)
@example(body=ONE_MB, msg_id="msg_big", ts=1614265330)
def test_property_standard_webhooks(body: bytes, msg_id: str, ts: int) -> None:
    headers = StandardWebhooks().sign(
        body, msg_id=msg_id, timestamp=ts, keys=[SW_KEY, SW_ED_KEY, SW_KEY_2]
    )
    assert _header(headers, "webhook-id") == msg_id
    assert _header(headers, "webhook-timestamp") == str(ts)
    assert _sw_verify_v1(body, headers, SW_VECTOR_SECRET)
    assert _sw_verify_v1(body, headers, SW_SECRET_2)
    assert SW_ED_KEY.public_key is not None
    assert _sw_verify_v1a(body, headers, SW_ED_KEY.public_key)
    assert not _sw_verify_v1(body + b"x", headers, SW_VECTOR_SECRET)


@PROPERTY
@given(body=st.binary(max_size=4096))
@example(body=b"")
@example(body=ONE_MB)
def test_property_github(body: bytes) -> None:
    headers = GitHub(legacy_sha1=True).sign(body, msg_id="m", timestamp=0, keys=[GH_KEY, GH_KEY_2])
    for secret in (GH_VECTOR_SECRET, "another secret"):
        assert _gh_verify(body, headers, secret)
        assert _gh_verify_sha1(body, headers, secret)
    assert not _gh_verify(body + b"x", headers, GH_VECTOR_SECRET)


@PROPERTY
@given(body=st.binary(max_size=4096), ts=TIMESTAMPS)
@example(body=b"", ts=0)
@example(body=ONE_MB, ts=1700000000)
def test_property_stripe(body: bytes, ts: int) -> None:
    headers = Stripe().sign(body, msg_id="m", timestamp=ts, keys=[STRIPE_KEY, STRIPE_KEY_2])
    assert _header(headers, "stripe-signature").startswith(f"t={ts},")
    assert _stripe_verify(body, headers, STRIPE_SECRET)
    assert _stripe_verify(body, headers, STRIPE_SECRET_2)
    assert not _stripe_verify(body + b"x", headers, STRIPE_SECRET)


GENERIC_SCHEMES = st.builds(
    GenericHmac,
    header=st.sampled_from(["X-Signature", "x-webhook-signature"]),
    algorithm=st.sampled_from(["sha256", "sha512"]),
    encoding=st.sampled_from(["hex", "base64"]),
    value=st.sampled_from(["{signature}", "sha256={signature}", "v0={signature}"]),
    content=st.just("body"),
) | st.builds(
    GenericHmac,
    header=st.just("X-Sig"),
    algorithm=st.sampled_from(["sha256", "sha512"]),
    encoding=st.sampled_from(["hex", "base64"]),
    value=st.sampled_from(["{signature}", "t={timestamp},v1={signature}"]),
    content=st.just("timestamp-body"),
    separator=st.sampled_from([".", ",", ""]),
    timestamp_header=st.sampled_from([None, "X-Sig-Timestamp"]),
)


@PROPERTY
@given(scheme=GENERIC_SCHEMES, body=st.binary(max_size=4096), ts=TIMESTAMPS)
@example(scheme=GenericHmac(header="X-S"), body=b"", ts=0)
@example(scheme=GenericHmac(header="X-S", algorithm="sha512"), body=ONE_MB, ts=1)
def test_property_generic_hmac(scheme: GenericHmac, body: bytes, ts: int) -> None:
    key = HMAC_KEY_512 if scheme.algorithm == "sha512" else HMAC_KEY
    headers = scheme.sign(body, msg_id="m", timestamp=ts, keys=[key])
    assert _header(headers, scheme.header).split(", ") == _generic_expected(
        scheme, body, HMAC_SECRET, ts
    )
    if scheme.timestamp_header:
        assert _header(headers, scheme.timestamp_header) == str(ts)
