"""Which header and URL parameter values are credentials, and writing them out without them.

hookwall is a chokepoint every webhook crosses, so what it writes down (the JSON log line,
the delivery store, ``hookwall logs``) must never carry a credential in clear. One rule set,
here, used by every writer; pure functions, no mitmproxy.

A name is *normalised* first: case-insensitive, camelCase split into words, and ``-``,
``_``, ``.`` and spaces are one separator (``Api_Key`` = ``api-key`` = ``apiKey``). Its value
is a credential when the normalised name:

1. is one of ``EXACT_HEADERS`` (headers) or ``EXACT_PARAMS`` (URL parameters), or
2. has a word in ``SECRET_WORDS`` (``X-Functions-Key``, ``X-Amz-Security-Token``), or
3. contains one of ``SECRET_STEMS`` (for names written as one word: ``xapikey``,
   ``accesstoken``, ``hapikey``), or
4. was added by the policy (``logging.redact.headers`` / ``logging.redact.query``),

unless it is one of ``PUBLIC_NAMES`` (identifiers that merely contain a listed word, such as
``Idempotency-Key``). Over-redacting is the safe mistake at a chokepoint; the rules still
never match ``Host``, ``Content-Type``, ``User-Agent``, request or trace ids.

In a URL, the values of matching query parameters (and of fragment parameters, as in
OAuth's ``#access_token=``) and the password of the userinfo (all of a userinfo without a
password: it is then usually a token) are replaced. The name stays, so a reader sees the
credential was there: ``?token=[redacted]``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[redacted]"

# Whole normalised names that are credentials although no word below says so.
EXACT_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "www-authenticate",
        "proxy-authenticate",
        "x-honeycomb-team",  # Honeycomb's API key header
        "x-shopify-hmac-sha256",
        "x-line-signature",
    }
)
# Query parameters whose short names carry a credential: Azure Functions' ``?code=`` (the
# function key; also an OAuth authorization code), Azure SAS ``?sig=``, GCP ``?key=``.
EXACT_PARAMS = frozenset({"code", "sig", "key", "hash", "client-assertion"})
# A name with any of these words is a credential.
SECRET_WORDS = frozenset(
    {
        "key",
        "keys",
        "apikey",
        "token",
        "tokens",
        "secret",
        "secrets",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "pass",
        "auth",
        "authorization",
        "authentication",
        "signature",
        "signatures",
        "sig",
        "hmac",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "jwt",
        "bearer",
        "private",
        "otp",
        "totp",
        "cookie",
    }
)
# Substrings that say "credential" even inside a one-word name (``accesstoken``). Only stems
# that are never part of an ordinary word ("key" is: monkey; "auth" is: author).
SECRET_STEMS = (
    "token",
    "secret",
    "passw",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "signingkey",
    "subscriptionkey",
    "credential",
    "signature",
    "session",
    "jwt",
    "bearer",
    "cookie",
    "authoriz",
    "authent",
    "oauth",
    "hmac",
)
# Names that contain a listed word but are identifiers, not credentials.
PUBLIC_NAMES = frozenset(
    {
        "idempotency-key",
        "x-idempotency-key",
        "keep-alive",
        "token-type",  # OAuth's "bearer", next to a redacted access_token
    }
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[-_.\s]+")
# A URL inside free text (an error message): scheme://... up to whitespace or a quote, or an
# origin-form target with a query (``/hook?token=...``, as a refused request line shows it).
_URL_IN_TEXT = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+|(?<![^\s\"'(])/[^\s\"'<>?]*\?[^\s\"'<>]+"
)


@functools.lru_cache(maxsize=8192)  # header and parameter names repeat on every exchange
def normalise(name: str) -> str:
    """``X-Api_Key`` -> ``x-api-key``; ``apiKey`` -> ``api-key``."""
    return _SEPARATORS.sub("-", _CAMEL.sub("-", name.strip())).strip("-").lower()


def _by_words(normal: str) -> bool:
    if normal in PUBLIC_NAMES:
        return False
    if any(word in SECRET_WORDS for word in normal.split("-")):
        return True
    joined = normal.replace("-", "")
    return any(stem in joined for stem in SECRET_STEMS)


@functools.lru_cache(maxsize=8192)
def is_credential_header(name: str) -> bool:
    """True when a header of this name carries a credential or a signature (built-in rules)."""
    normal = normalise(name)
    return normal in EXACT_HEADERS or _by_words(normal)


@functools.lru_cache(maxsize=8192)
def is_credential_param(name: str) -> bool:
    """True when a URL query/fragment parameter of this name carries a credential."""
    normal = normalise(name)
    return normal in EXACT_PARAMS or normal in EXACT_HEADERS or _by_words(normal)


@dataclass(frozen=True, slots=True)
class Rules:
    """The built-in rules plus a policy's additions (``logging.redact``; normalised names).

    Additions can only add: nothing the built-in rules redact can be shown."""

    headers: frozenset[str] = frozenset()
    query: frozenset[str] = frozenset()

    @classmethod
    def adding(cls, headers: Iterable[str] = (), query: Iterable[str] = ()) -> Rules:
        return cls(frozenset(map(normalise, headers)), frozenset(map(normalise, query)))

    def header(self, name: str) -> bool:
        return is_credential_header(name) or normalise(name) in self.headers

    def param(self, name: str) -> bool:
        return is_credential_param(name) or normalise(name) in self.query


BUILT_IN = Rules()
# Headers a signing scheme writes that carry no secret: the event id and the timestamp.
_PUBLIC_OWNED = re.compile(r"(^|-)(id|timestamp)$")


def redact_headers(
    headers: Iterable[tuple[str, str]], rules: Rules = BUILT_IN, owned: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The headers in order, names kept, every credential value replaced by ``[redacted]``.

    ``owned``: the headers the destination's signing scheme writes (e.g. a generic HMAC
    scheme's ``X-Convoy-Sig``); they are signatures unless they are its id or timestamp."""
    signed = {normalise(name) for name in owned}
    signed = {name for name in signed if not _PUBLIC_OWNED.search(name)}
    return [
        (name, REDACTED if rules.header(name) or normalise(name) in signed else value)
        for name, value in headers
    ]


def redact_url(url: str, rules: Rules = BUILT_IN) -> str:
    """The URL with its userinfo password and credential parameters replaced; the rest of
    the text is kept byte for byte (no re-encoding), so it still reads as what was sent."""
    if "?" not in url and "#" not in url and "@" not in url:
        return url  # the common case, on every exchange
    rest, hash_, fragment = url.partition("#")
    rest, mark, query = rest.partition("?")
    rest = _redact_userinfo(rest)
    if mark:
        rest += mark + _redact_params(query, rules)
    if hash_:
        rest += hash_ + (_redact_params(fragment, rules) if "=" in fragment else fragment)
    return rest


def redact_text(text: str, rules: Rules = BUILT_IN) -> str:
    """Free text (an error message) with every URL in it redacted."""
    if "?" not in text and "#" not in text and "@" not in text:
        return text  # no query, fragment or userinfo: nothing a URL in it could leak
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0), rules), text)


def redact_event(event: dict[str, Any], rules: Rules = BUILT_IN) -> dict[str, Any]:
    """An exchange event (log line and store row) with the URLs in it redacted, in place."""
    url = event.get("url")
    if isinstance(url, str):
        event["url"] = redact_url(url, rules)
    for field in ("error", "would_deny_message"):
        value = event.get(field)
        if isinstance(value, str):
            event[field] = redact_text(value, rules)
    redirect = event.get("redirect")
    if isinstance(redirect, dict) and isinstance(redirect.get("location"), str):
        event["redirect"] = redirect | {"location": redact_url(redirect["location"], rules)}
    return event


def _redact_userinfo(head: str) -> str:
    scheme, sep, rest = head.partition("://")
    if not sep:
        return head
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return head
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{REDACTED}" if colon else REDACTED
    return f"{scheme}{sep}{shown}@{host}{slash}{path}"


def _redact_params(query: str, rules: Rules) -> str:
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        if eq and rules.param(unquote_plus(name)):
            part = f"{name}={REDACTED}"
        parts.append(part)
    return "&".join(parts)
