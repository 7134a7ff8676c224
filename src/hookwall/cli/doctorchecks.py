"""What ``hookwall doctor`` checks, the pure part: a sender's environment and the answers of the
probes, into findings, each problem with the line that fixes it.

``diagnose`` reads the environment as a mapping and asks ``Probes`` (``cli/doctorprobe.py`` in
real life, a table in the tests) what the proxy answered; everything else here is plain
functions over those values. Nothing here prints, and nothing here ever holds a token in a
string it returns: proxy URLs are shown through ``mask``.

What is checked, and why:

- the proxy variables in both cases (``http_proxy``/``HTTP_PROXY``, ``https_proxy``/
  ``HTTPS_PROXY``, ``all_proxy``/``ALL_PROXY``): clients disagree on which case they read
  (curl ignores upper-case ``HTTP_PROXY``, wget reads lower-case only, Go ignores
  ``ALL_PROXY``), so a variable set in one case only, or the two cases disagreeing, sends some
  clients' webhooks around hookwall;
- each proxy URL: parseable, ``http://`` (hookwall's listener speaks plain HTTP; the CONNECT
  tunnel carries the TLS), with credentials when hookwall asks for them (its 407);
- ``NO_PROXY``: ``*``, a whole public suffix (``.com``), hookwall.invalid or a ``--destination``
  exempted means those requests never reach hookwall; internal names and addresses are noted
  (a webhook to them would bypass hookwall's SSRF checks);
- one request through the proxy to ``http://hookwall.invalid/whoami``, which hookwall answers
  itself: is it hookwall, as which sender, over which mode;
- every CA bundle variable a stack reads, and the system's store: each is tried in a real TLS
  handshake through the proxy with ``https://hookwall.invalid`` trusting that bundle only, so a
  bundle holding some other CA is caught.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

from hookwall.destinations.hostname import InvalidHost, canonicalize_host
from hookwall.selfanswer.answer import NAME as SELF_NAME

Status = Literal["ok", "problem", "note", "info"]
Topic = Literal["proxy", "no_proxy", "credentials", "whoami", "ca"]

PLACEHOLDER_PROXY = "http://HOOKWALL_HOST:8080"
WHOAMI_HTTP = f"http://{SELF_NAME}/whoami"
WHOAMI_HTTPS = f"https://{SELF_NAME}/whoami"
CA_PEM_URL = f"http://{SELF_NAME}/ca.pem"
MASK = "****"


@dataclass(frozen=True, slots=True)
class Finding:
    topic: Topic
    status: Status
    subject: str  # what it is about: a variable, a probe, a bundle
    message: str  # in hookwall's words; never a token
    fix: str | None = None  # the line (or lines) that fix a problem

    def document(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "status": self.status,
            "subject": self.subject,
            "message": self.message,
            "fix": self.fix,
        }


# -- the proxy URL ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxyURL:
    """One proxy variable's value, read the way HTTP clients read it."""

    variable: str  # where it came from: "HTTPS_PROXY", "--proxy"
    masked: str  # the value with any token replaced by ****
    scheme: str | None  # None: written without one (host:port)
    host: str | None
    port: int | None
    user: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)  # never printed, never in a finding
    error: str | None = None  # why it cannot be used at all

    @property
    def usable(self) -> bool:
        """Something can be sent to it (an https:// or scheme-less URL is tried as http://)."""
        return self.error is None and self.host is not None and self.port is not None

    @property
    def endpoint(self) -> str:
        """``http://host:port``: where hookwall listens, without credentials."""
        assert self.host is not None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def has_credentials(self) -> bool:
        return self.user is not None


def mask(text: str) -> str:
    """``text`` with the userinfo's secret (or, without a ``:``, all of it: a bare token)
    replaced by ****; the sender's name is kept when it is followed by a token."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return text
    name, colon, _ = userinfo.partition(":")
    shown = f"{name}:{MASK}" if colon else MASK
    return f"{scheme}{sep}{shown}@{hostpart}"


def parse_proxy_url(variable: str, text: str) -> ProxyURL:
    """Read a proxy variable the way clients do; ``error`` says why none could use it."""
    masked = mask(text.strip())
    value = text.strip()
    if not value:
        return ProxyURL(variable, masked, None, None, None, error="it is empty")
    has_scheme = "://" in value
    try:
        parts = urlsplit(value if has_scheme else f"http://{value}")
        port = parts.port
    except ValueError:
        return ProxyURL(variable, masked, None, None, None, error="it is not a URL")
    scheme = parts.scheme.lower() if has_scheme else None
    host = parts.hostname
    if not host:
        return ProxyURL(variable, masked, scheme, None, None, error="it names no host")
    if scheme is not None and scheme not in ("http", "https"):
        why = f"{scheme}:// is not an HTTP proxy URL (hookwall is an HTTP proxy)"
        return ProxyURL(variable, masked, scheme, host, port, error=why)
    user = unquote(parts.username) if parts.username is not None else None
    token = unquote(parts.password) if parts.password is not None else None
    return ProxyURL(variable, masked, scheme, host, port or 80, user, token)


# -- the proxy variables -----------------------------------------------------------------------

PAIRS: tuple[tuple[str, str], ...] = (
    ("http_proxy", "HTTP_PROXY"),
    ("https_proxy", "HTTPS_PROXY"),
    ("all_proxy", "ALL_PROXY"),
)
NO_PROXY_PAIR = ("no_proxy", "NO_PROXY")
_WHY_BOTH = {
    "http_proxy": "curl, libcurl and wget ignore upper-case HTTP_PROXY for http:// URLs "
    "(HTTP_PROXY can come from a request's Proxy header in CGI: 'httpoxy')",
    "https_proxy": "wget reads only https_proxy, and some clients only HTTPS_PROXY",
    "all_proxy": "some clients read only one case",
    "no_proxy": "wget reads only no_proxy, and some clients only NO_PROXY",
}


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value is not None and value.strip() else None


def case_findings(env: Mapping[str, str], pair: tuple[str, str], topic: Topic) -> list[Finding]:
    """One variable in both cases: set in one only, or set to different values."""
    lower, upper = pair
    low, up = _get(env, lower), _get(env, upper)
    subject = f"{lower} / {upper}"
    if low is None and up is None:
        return []
    if low is not None and up is not None:
        if low.strip() == up.strip():
            return []
        shown = (mask(low), mask(up)) if topic == "proxy" else (low, up)
        message = (
            f"{lower} ({shown[0]}) and {upper} ({shown[1]}) disagree: which one a client "
            f"uses depends on the client ({_WHY_BOTH[lower]})"
        )
        return [Finding(topic, "problem", subject, message, f'export {upper}="${lower}"')]
    have, missing = (lower, upper) if up is None else (upper, lower)
    message = f"{have} is set but {missing} is not: {_WHY_BOTH[lower]}"
    return [Finding(topic, "problem", subject, message, f'export {missing}="${have}"')]


def url_findings(proxy: ProxyURL, also: Sequence[str] = ()) -> list[Finding]:
    """What is wrong with one proxy URL, whoever reads it; ``also``: the other variables that
    hold the same value (the fix sets them all)."""
    names = [proxy.variable, *also]
    subject = f"{', '.join(names)}={proxy.masked}"
    option = proxy.variable.startswith("--")  # --proxy: the fix is an argument, not an export
    if proxy.error is not None:
        message = f"hookwall cannot be reached through it: {proxy.error}"
        fix = _exports(names, PLACEHOLDER_PROXY) if not option else f"--proxy {PLACEHOLDER_PROXY}"
        return [Finding("proxy", "problem", subject, message, fix)]
    if proxy.scheme == "https":
        message = (
            "https:// makes clients that support it start TLS with the proxy itself; "
            "hookwall's listener speaks plain HTTP (the CONNECT tunnel carries the TLS to the "
            "receiver), so use http://"
        )
        # The shell rewrites the scheme: the token stays in the variable, never on screen.
        fix = (
            _exports(names, '"${%s/#https:/http:}"') if not option else f"--proxy {proxy.endpoint}"
        )
        return [Finding("proxy", "problem", subject, message, fix)]
    if proxy.scheme is None:
        message = (
            "written without http://: curl and Python assume it, but some clients (Node's) "
            "cannot parse a proxy URL without a scheme"
        )
        fix = _exports(names, '"http://$%s"') if not option else f"--proxy {proxy.endpoint}"
        return [Finding("proxy", "problem", subject, message, fix)]
    return [Finding("proxy", "ok", subject, "an http:// proxy URL")]


def _exports(names: Sequence[str], value: str) -> str:
    """``export A=... B=...``; ``%s`` in ``value`` stands for each variable's own name."""
    return "export " + " ".join(f"{n}={value % n if '%s' in value else value}" for n in names)


@dataclass(frozen=True, slots=True)
class Chosen:
    """The proxy a client would use for http:// and for https:// URLs (None: none)."""

    http: ProxyURL | None
    https: ProxyURL | None


def _first(env: Mapping[str, str], names: Sequence[str]) -> ProxyURL | None:
    for name in names:
        value = _get(env, name)
        if value is not None:
            return parse_proxy_url(name, value)
    return None


def chosen(env: Mapping[str, str], override: str | None = None) -> Chosen:
    """Lower case first (curl, wget, Python's urllib prefer it), then upper, then ALL_PROXY;
    ``--proxy`` replaces both."""
    if override is not None:
        proxy = parse_proxy_url("--proxy", override)
        return Chosen(proxy, proxy)
    http = _first(env, ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"))
    https = _first(env, ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"))
    return Chosen(http, https)


def proxy_findings(env: Mapping[str, str], override: str | None = None) -> list[Finding]:
    """The proxy variables: both cases, each URL, and whether both schemes are covered."""
    found: list[Finding] = []
    for pair in PAIRS:
        found += case_findings(env, pair, "proxy")
    holders: dict[str, list[str]] = {}  # each distinct value -> the variables holding it
    for pair in PAIRS:
        for name in pair:
            value = _get(env, name)
            if value is not None:
                holders.setdefault(value.strip(), []).append(name)
    for value, names in holders.items():
        found += url_findings(parse_proxy_url(names[0], value), names[1:])
    if override is not None:
        return found  # --proxy: the probes go there, whatever the environment says
    http = any(_get(env, n) is not None for n in ("http_proxy", "HTTP_PROXY"))
    https = any(_get(env, n) is not None for n in ("https_proxy", "HTTPS_PROXY"))
    every = next((n for n in ("all_proxy", "ALL_PROXY") if _get(env, n) is not None), None)
    if not http and not https and every is None:
        message = "no proxy is set: this environment's requests go straight to receivers"
        fix = (
            f"export http_proxy={PLACEHOLDER_PROXY} https_proxy={PLACEHOLDER_PROXY} "
            f'HTTP_PROXY="$http_proxy" HTTPS_PROXY="$https_proxy"  # hookwall\'s address'
        )
        return [*found, Finding("proxy", "problem", "http_proxy, https_proxy", message, fix)]
    for scheme, covered, other in (("http", http, https), ("https", https, http)):
        if covered:
            continue
        if other:
            name = "https" if scheme == "http" else "http"
            source = f"{name}_proxy" if _get(env, f"{name}_proxy") else f"{name.upper()}_PROXY"
            message = f"no {scheme}_proxy: {scheme}:// webhooks would not go through hookwall"
        else:
            source = every or "ALL_PROXY"
            message = f"only ALL_PROXY covers {scheme}:// URLs; Go, wget and others ignore it"
        fix = f'export {scheme}_proxy="${source}" {scheme.upper()}_PROXY="${source}"'
        subject = f"{scheme}_proxy / {scheme.upper()}_PROXY"
        found.append(Finding("proxy", "problem", subject, message, fix))
    pick = chosen(env)
    if (
        pick.http is not None
        and pick.https is not None
        and pick.http.usable
        and pick.https.usable
        and pick.http.endpoint != pick.https.endpoint
    ):
        message = (
            f"http:// goes to {pick.http.endpoint} and https:// to {pick.https.endpoint}: "
            "fine if both are hookwall"
        )
        found.append(Finding("proxy", "note", "http_proxy, https_proxy", message))
    return found


# -- NO_PROXY -----------------------------------------------------------------------------------

# Names that are internal by convention (not on the Public Suffix List, never public hosts).
_INTERNAL_SUFFIXES = (
    "localhost", "localdomain", "local", "internal", "intranet", "lan", "home", "corp",
    "private", "svc", "cluster.local", "home.arpa",
)  # fmt: skip


def no_proxy_entries(value: str) -> list[str]:
    """The entries of a NO_PROXY value (commas, and the spaces some write after them)."""
    return [e for e in value.replace(" ", ",").replace("\t", ",").split(",") if e]


def _entry_host(entry: str) -> str:
    """An entry without ``*.``/``.`` in front and without a ``:port`` after."""
    text = entry.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        text = text.partition(":")[0]
    return text.removeprefix("*").lstrip(".")


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(_entry_host(entry), strict=False)
    except ValueError:
        return None


def exempts(entry: str, host: str) -> bool:
    """Whether some client would exempt ``host`` for this entry (curl, Go, Python and wget
    differ on a bare name's subdomains, CIDRs and ports: the widest reading counts)."""
    if entry.strip() == "*":
        return True
    network = _network(entry)
    if network is not None:
        try:
            return ipaddress.ip_address(host) in network
        except ValueError:
            return False
    domain = _entry_host(entry)
    return bool(domain) and (host == domain or host.endswith("." + domain))


@cache
def _public_suffixes() -> Any:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList(accept_unknown=False, only_icann=False)


def _is_internal(entry: str) -> bool:
    network = _network(entry)
    if network is not None:
        return network.is_private or network.is_loopback or network.is_link_local
    domain = _entry_host(entry)
    if "." not in domain:  # a single label: a name on the local network, unless a TLD
        return not _public_suffixes().is_public(domain)
    return any(domain == s or domain.endswith("." + s) for s in _INTERNAL_SUFFIXES)


def _whole_suffix(entry: str) -> str | None:
    """The public suffix (``com``, ``co.uk``) this entry exempts whole, if it does."""
    if _network(entry) is not None:
        return None
    domain = _entry_host(entry)
    return domain if domain and _public_suffixes().is_public(domain) else None


def _host_of(url: str) -> str | None:
    try:
        host = urlsplit(url if "://" in url else f"http://{url}").hostname
        return canonicalize_host(host).text if host else None
    except (ValueError, InvalidHost):
        return None


def _without(entries: Sequence[str], dropped: set[str]) -> str:
    kept = [e for e in entries if e not in dropped]
    if not kept:
        return "unset no_proxy NO_PROXY"
    value = shlex.quote(",".join(kept))
    return f"export no_proxy={value} NO_PROXY={value}"


def no_proxy_findings(env: Mapping[str, str], destinations: Sequence[str] = ()) -> list[Finding]:
    """What NO_PROXY exempts from hookwall, and whether it should."""
    found = case_findings(env, NO_PROXY_PAIR, "no_proxy")
    name = "no_proxy" if _get(env, "no_proxy") is not None else "NO_PROXY"
    value = _get(env, name)
    if value is None:
        return found
    entries = no_proxy_entries(value)
    subject = f"{name}={value}"
    bad: dict[str, str] = {}  # entry -> why
    for entry in entries:
        if entry.strip() == "*":
            bad[entry] = "* exempts every host: nothing goes through hookwall"
        elif (suffix := _whole_suffix(entry)) is not None:
            bad[entry] = f"{entry} exempts every host under .{suffix}: anyone can register one"
        elif exempts(entry, SELF_NAME):
            bad[entry] = f"{entry} exempts {SELF_NAME}, which only hookwall answers"
    for url in destinations:
        host = _host_of(url)
        hits = [e for e in entries if host is not None and exempts(e, host)]
        for entry in hits:
            bad.setdefault(entry, f"{entry} exempts {host} ({url}): its webhooks bypass hookwall")
    if bad:
        message = "; ".join(bad.values())
        found.append(Finding("no_proxy", "problem", subject, message, _without(entries, set(bad))))
    internal = [e for e in entries if e not in bad and _is_internal(e)]
    if internal:
        message = (
            f"{', '.join(internal)}: requests to these go straight out, unchecked by hookwall; "
            "fine for this service's own internal calls, but a webhook to one of them would "
            "bypass hookwall's SSRF protection"
        )
        found.append(Finding("no_proxy", "note", subject, message))
    if not bad and not internal:
        found.append(Finding("no_proxy", "ok", subject, "exempts no public destination"))
    return found


# -- the probes: what hookwall answered ------------------------------------------------------

Outcome = Literal["answered", "unreachable", "refused", "untrusted", "tls-failed", "bad-reply"]


@dataclass(frozen=True, slots=True)
class Probe:
    """What one request to hookwall.invalid through the proxy came back with."""

    outcome: Outcome
    status: int | None = None
    reason: str | None = None  # hookwall's X-Hookwall-Reason, when it refused
    document: Mapping[str, Any] | None = None  # the JSON answer
    detail: str = ""  # the error, in the words of the library that met it

    @property
    def whoami(self) -> Mapping[str, Any] | None:
        """hookwall's whoami answer, if this is one."""
        doc = self.document
        answered = self.outcome == "answered" and self.status == 200 and doc is not None
        return doc if answered and doc is not None and doc.get("through_hookwall") is True else None


@dataclass(frozen=True, slots=True)
class Trust:
    """What a TLS client trusts: exactly one bundle file or directory; neither: the system's
    compiled-in store (what a client that reads no variable uses)."""

    cafile: str | None = None
    capath: str | None = None


@dataclass(frozen=True, slots=True)
class Bundle:
    """A CA bundle file (or directory) as found on disk."""

    path: str
    exists: bool
    readable: bool = True
    is_dir: bool = False
    fingerprints: tuple[str, ...] = ()  # SHA-256 of each certificate, openssl's spelling
    error: str | None = None  # why it could not be read


class Probes(Protocol):
    """What diagnose asks of the world (``cli/doctorprobe.py``; a table in the tests)."""

    def whoami(self, proxy: ProxyURL) -> Probe:
        """GET http://hookwall.invalid/whoami through ``proxy``."""

    def handshake(self, proxy: ProxyURL, trust: Trust) -> Probe:
        """GET https://hookwall.invalid/whoami through ``proxy``'s CONNECT, trusting ``trust``."""

    def bundle(self, path: str, directory: bool) -> Bundle:
        """Read a bundle file (or a directory of certificates)."""


def _credentials_fix(proxy: ProxyURL) -> str:
    target = proxy.endpoint.removeprefix("http://") if proxy.usable else "HOOKWALL_HOST:8080"
    url = f"http://NAME:TOKEN@{target}"
    return (
        f'export http_proxy="{url}" https_proxy="{url}" HTTP_PROXY="{url}" HTTPS_PROXY="{url}"'
        "  # NAME and TOKEN: your sender's, from hookwall's operator (percent-encode the token)"
    )


def whoami_findings(proxy: ProxyURL, probe: Probe) -> list[Finding]:
    """The plain-HTTP probe: did hookwall answer, as which sender, and were credentials right."""
    subject = f"{WHOAMI_HTTP} via {proxy.masked}"
    found: list[Finding] = []
    if proxy.scheme != "http":
        found.append(Finding("whoami", "info", subject, f"probed as {proxy.endpoint} (http://)"))
    if probe.outcome == "unreachable":
        message = (
            f"nothing answered at {proxy.endpoint} ({probe.detail}): is hookwall running "
            "there, and is this its address?"
        )
        fix = "hookwall run --listen HOST:PORT  # on hookwall's host; or correct the proxy URL"
        return [*found, Finding("whoami", "problem", subject, message, fix)]
    if probe.status == 407:
        if proxy.has_credentials:
            message = (
                f"hookwall refused the credentials of sender {proxy.user!r} in the proxy URL "
                "(407): the token is wrong or expired, or not percent-encoded"
            )
        else:
            message = (
                "hookwall asks for proxy credentials (407: its policy defines senders) and the "
                "proxy URL has none"
            )
        return [
            *found,
            Finding("credentials", "problem", subject, message, _credentials_fix(proxy)),
        ]
    doc = probe.whoami
    if doc is None:
        return [*found, _not_hookwall(subject, probe)]
    sender, required = doc.get("sender"), doc.get("senders_required")
    summary = (
        f"answered by hookwall (request {doc.get('request_id')}): mode {doc.get('mode')}, "
        f"sender {sender or 'none'}, client {doc.get('client')}"
    )
    found.append(Finding("whoami", "ok", subject, summary))
    if proxy.has_credentials and not required:
        message = "hookwall's policy defines no senders: the credentials in the URL are not checked"
        found.append(Finding("credentials", "note", subject, message))
    elif proxy.has_credentials:
        found.append(Finding("credentials", "ok", subject, f"accepted: sender {sender}"))
    elif not required:
        found.append(Finding("credentials", "ok", subject, "hookwall asks no credentials"))
    would = doc.get("would_deny") or []
    if would:
        message = (
            f"hookwall lets this through only because enforcement is off (report-only); it "
            f"would refuse it: {', '.join(str(w) for w in would)}"
        )
        found.append(Finding("credentials", "note", subject, message, _credentials_fix(proxy)))
    return found


def _not_hookwall(subject: str, probe: Probe) -> Finding:
    if probe.reason:
        message = f"hookwall refused the probe: {probe.status} {probe.reason}"
        doc = probe.document or {}
        if doc.get("message"):
            message += f" ({doc.get('message')})"
        if probe.reason == "sender-denied":
            fix = "ask hookwall's operator to add this address to the sender's clients"
            return Finding("credentials", "problem", subject, message, fix)
        return Finding("whoami", "problem", subject, message)
    what = f"answered {probe.status}" if probe.status else probe.detail or "did not answer"
    message = (
        f"the proxy {what}, not as hookwall answers {SELF_NAME} (another proxy, or a "
        "hookwall older than hookwall.invalid)"
    )
    return Finding("whoami", "problem", subject, message)


# -- CA trust ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaVariable:
    name: str
    readers: str  # which stacks read it
    directory: bool = False
    replaces_roots: bool = True  # False: added to the stack's own roots


CA_VARIABLES: tuple[CaVariable, ...] = (
    CaVariable("SSL_CERT_FILE", "OpenSSL: Python's ssl and urllib, Ruby, curl, Go on Linux"),
    CaVariable("REQUESTS_CA_BUNDLE", "Python requests, instead of certifi's roots"),
    CaVariable("NODE_EXTRA_CA_CERTS", "Node.js, added to its own roots", replaces_roots=False),
    CaVariable("CURL_CA_BUNDLE", "curl, and Python requests when REQUESTS_CA_BUNDLE is unset"),
    CaVariable("SSL_CERT_DIR", "OpenSSL and Go, a directory of hashed certificates", True),
)
SYSTEM = "the system trust store"


def _get_ca_fix(name: str) -> str:
    return (
        f'curl -fsS --proxy "$http_proxy" {CA_PEM_URL} -o hookwall-ca.pem  '
        "# or `hookwall ca --path` on hookwall's host; compare the SHA-256\n"
        f'export {name}="$PWD/hookwall-ca.pem"'
    )


def bundle_findings(
    variable: CaVariable,
    bundle: Bundle,
    handshake: Probe | None,
    ca_sha256: str | None,
) -> list[Finding]:
    """One CA variable's bundle: there, a certificate in it, and trusted in a handshake."""
    subject = f"{variable.name}={bundle.path}"
    fix = _get_ca_fix(variable.name)
    kind = "directory" if variable.directory else "file"
    if not bundle.exists:
        message = f"no such {kind}: {variable.readers} would trust nothing from it"
        return [Finding("ca", "problem", subject, message, fix)]
    if bundle.is_dir != variable.directory:
        wanted = "a directory" if variable.directory else "a file"
        return [Finding("ca", "problem", subject, f"not {wanted}", fix)]
    if not bundle.readable or bundle.error:
        message = f"cannot be read: {bundle.error or 'permission denied'}"
        return [Finding("ca", "problem", subject, message, fix)]
    if not bundle.fingerprints:
        message = f"holds no PEM certificate: {variable.readers} would trust nothing from it"
        return [Finding("ca", "problem", subject, message, fix)]
    count = len(bundle.fingerprints)
    holds = ca_sha256 is not None and ca_sha256 in bundle.fingerprints
    if handshake is None or handshake.outcome in ("unreachable", "refused", "bad-reply"):
        if holds:
            message = "holds hookwall's CA (by its SHA-256); no handshake could be tried"
            return [Finding("ca", "note", subject, message)]
        why = "no https proxy" if handshake is None else _no_tunnel(handshake)
        message = f"{count} certificate(s); not verified: {why}"
        return [Finding("ca", "info", subject, message)]
    if handshake.outcome == "answered":
        found = [Finding("ca", "ok", subject, f"trusts hookwall's CA (read by {variable.readers})")]
        if holds and count == 1 and variable.replaces_roots:
            message = (
                "holds hookwall's CA only: receivers hookwall passes through (tls: "
                "passthrough) show their own certificates, which this bundle does not trust"
            )
            found.append(Finding("ca", "note", subject, message))
        return found
    if handshake.outcome == "untrusted":
        other = f"{count} certificate(s), none of them hookwall's CA"
        if ca_sha256:
            other += f" (SHA-256 {ca_sha256})"
        if holds:
            other = "holds hookwall's CA, yet the handshake did not verify"
            if variable.directory:
                other += " (is the directory hashed? openssl rehash DIR)"
        message = f"does not trust hookwall's CA: {other}; {handshake.detail}"
        return [Finding("ca", "problem", subject, message, fix)]
    message = f"the TLS handshake with {SELF_NAME} failed: {handshake.detail}"
    return [Finding("ca", "problem", subject, message)]


def _no_tunnel(probe: Probe) -> str:
    """Why no handshake could be tried: the CONNECT never opened a tunnel."""
    if probe.outcome == "unreachable":
        return "the proxy did not answer"
    if probe.outcome == "refused":
        said = " ".join(str(x) for x in (probe.status, probe.reason) if x)
        return f"the proxy refused the CONNECT ({said})"
    return f"the proxy's answer to the CONNECT was not HTTP ({probe.detail})"


def system_findings(handshake: Probe | None, some_bundle_trusts: bool) -> list[Finding]:
    """The system store: what clients that read none of the variables trust (Java, .NET...)."""
    if handshake is None or handshake.outcome in ("unreachable", "refused", "bad-reply"):
        return []
    if handshake.outcome == "answered":
        return [Finding("ca", "ok", SYSTEM, "trusts hookwall's CA")]
    if some_bundle_trusts:
        message = (
            "does not trust hookwall's CA: clients that read none of the variables above use it "
            "(Java, .NET, Go elsewhere than Linux); install the CA there if one of them sends "
            "webhooks"
        )
        return [Finding("ca", "note", SYSTEM, message)]
    message = "does not trust hookwall's CA, and no CA variable points at a bundle that does"
    fix = (
        f'curl -fsS --proxy "$http_proxy" {CA_PEM_URL} -o hookwall-ca.pem\n'
        'export SSL_CERT_FILE="$PWD/hookwall-ca.pem" REQUESTS_CA_BUNDLE="$PWD/hookwall-ca.pem" '
        'NODE_EXTRA_CA_CERTS="$PWD/hookwall-ca.pem" CURL_CA_BUNDLE="$PWD/hookwall-ca.pem"'
    )
    return [Finding("ca", "problem", SYSTEM, f"{message} ({handshake.detail})", fix)]


def connect_findings(proxy: ProxyURL, probe: Probe) -> list[Finding]:
    """The https:// probe could not reach a handshake: the proxy or its CONNECT said no."""
    subject = f"{WHOAMI_HTTPS} via {proxy.masked}"
    if probe.outcome == "unreachable":
        message = f"nothing answered at {proxy.endpoint} ({probe.detail})"
        return [Finding("whoami", "problem", subject, message)]
    if probe.outcome == "refused":
        what = f"{probe.status} {probe.reason}" if probe.reason else f"{probe.status}"
        message = f"hookwall refused the CONNECT to {SELF_NAME}:443: {what}"
        fix = _credentials_fix(proxy) if probe.status == 407 else None
        return [Finding("credentials" if fix else "whoami", "problem", subject, message, fix)]
    if probe.outcome == "bad-reply":
        return [_not_hookwall(subject, probe)]
    return []


# -- everything ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    findings: tuple[Finding, ...]
    proxy_http: str | None  # masked
    proxy_https: str | None
    whoami: Mapping[str, Any] | None

    @property
    def problems(self) -> int:
        return sum(1 for f in self.findings if f.status == "problem")

    def document(self) -> dict[str, Any]:
        return {
            "ok": self.problems == 0,
            "problems": self.problems,
            "proxy": {"http": self.proxy_http, "https": self.proxy_https},
            "whoami": dict(self.whoami) if self.whoami is not None else None,
            "findings": [f.document() for f in self.findings],
        }


def diagnose(
    env: Mapping[str, str],
    probes: Probes,
    *,
    override: str | None = None,
    destinations: Sequence[str] = (),
) -> Report:
    """Every check, in the order they are told: variables, the probe, CA trust."""
    found = [*proxy_findings(env, override), *no_proxy_findings(env, destinations)]
    if override is not None:
        found += url_findings(parse_proxy_url("--proxy", override))
    pick = chosen(env, override)
    whoami: Mapping[str, Any] | None = None
    http = pick.http if pick.http is not None and pick.http.usable else None
    if http is not None:
        probe = probes.whoami(http)
        found += whoami_findings(http, probe)
        whoami = probe.whoami
    https = pick.https if pick.https is not None and pick.https.usable else None
    # The https:// probe's CONNECT problems are told once: not again for the same proxy.
    told = http is not None and https is not None and whoami is None and _same(http, https)
    found += _ca(env, probes, https, whoami, connect_told=told)
    return Report(
        tuple(found),
        pick.http.masked if pick.http else None,
        pick.https.masked if pick.https else None,
        whoami,
    )


def _same(a: ProxyURL, b: ProxyURL) -> bool:
    return (a.endpoint, a.user, a.token) == (b.endpoint, b.user, b.token)


def _ca(
    env: Mapping[str, str],
    probes: Probes,
    proxy: ProxyURL | None,
    whoami: Mapping[str, Any] | None,
    *,
    connect_told: bool,
) -> list[Finding]:
    ca_sha256 = whoami.get("ca_sha256") if whoami else None
    tried: dict[Trust, Probe] = {}

    def handshake(trust: Trust) -> Probe | None:
        if proxy is None:
            return None
        if trust not in tried:
            tried[trust] = probes.handshake(proxy, trust)
        return tried[trust]

    found: list[Finding] = []
    trusting = False
    for variable in CA_VARIABLES:
        path = _get(env, variable.name)
        if path is None:
            found.append(
                Finding("ca", "info", variable.name, f"not set (read by {variable.readers})")
            )
            continue
        bundle = probes.bundle(path, variable.directory)
        usable = bundle.exists and bundle.readable and bundle.fingerprints
        trust = Trust(capath=path) if variable.directory else Trust(cafile=path)
        result = handshake(trust) if usable and bundle.is_dir == variable.directory else None
        trusting |= result is not None and result.outcome == "answered"
        found += bundle_findings(variable, bundle, result, str(ca_sha256) if ca_sha256 else None)
    system = handshake(Trust())
    found += system_findings(system, trusting)
    if proxy is None:
        message = "no https proxy to probe through: CA trust not verified"
        found.append(Finding("ca", "info", "https://hookwall.invalid", message))
    else:
        first = next(iter(tried.values()), None)
        if first is not None and not connect_told:
            found += connect_findings(proxy, first)
    return found
