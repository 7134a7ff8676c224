"""Senders: the services that may use hookwall, how they prove it, and whose rules apply.

```yaml
senders:
  billing:
    credentials: [env:BILLING_PROXY_TOKEN]   # tokens, as references (never literals)
    clients: [10.20.0.0/16]                  # optional: source addresses it may connect from
    default: deny                            # only the destinations scoped to it
    enforce: true                            # false: report-only (log would_deny, let through)
destinations:
  - hosts: [api.payments.example]
    senders: [billing]                       # this rule applies to billing only
```

Tokens are read at load time and kept only as keyed digests (HMAC-SHA256 under a random
per-process key): checking a credential is one HMAC and one dict lookup, the same work
whether the sender name exists or not, and the policy object never holds a token.

Which rule applies to a (host, sender) is ``policy.selection``'s.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from hookwall.config.checker import Checker
from hookwall.config.errors import Location, PolicyIssue
from hookwall.config.secrets import check_references, read_secret, references
from hookwall.config.shapes import CIDR, AnyOf, Const, Fields, Flag, ListOf, MapOf, OneOf, Text
from hookwall.config.yamlnodes import YList, YMap, YNode, YScalar

__all__ = [
    "MIN_TOKEN_LENGTH",
    "RULE_SENDERS",
    "SENDER",
    "SENDERS",
    "Credential",
    "Sender",
    "SenderRef",
    "SenderTable",
    "check_rule_senders",
    "check_senders",
    "combine_senders",
    "sender_lines",
]

SenderDefault = Literal["allow", "deny"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# No ':' (Basic credentials are name:token) and nothing a log query has to escape.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SENDER = Fields(
    {
        "credentials": references(
            "env:BILLING_PROXY_TOKEN",
            "the sender's proxy tokens (HTTP_PROXY=http://NAME:TOKEN@host:port)",
        ),
        "clients": ListOf(CIDR, min_items=1, doc="source networks it may connect from"),
        "default": OneOf(
            get_args(SenderDefault), doc="for hosts no destination scopes to it (default allow)"
        ),
        "enforce": Flag(doc="false: report-only (refusals are logged, not answered)"),
    },
    required=("credentials",),
    nullable=False,
)
SENDERS = AnyOf(
    (
        Const("none", doc="no credentials, on purpose (hookwall run keeps to loopback)"),
        MapOf(SENDER, key_pattern=f"^{_NAME.pattern}$"),
    ),
    doc="the services that may use hookwall, by name, and how they prove it",
)
RULE_SENDERS = ListOf(
    Text("a sender name"), min_items=1, unique=True, doc="the senders this entry applies to"
)
MIN_TOKEN_LENGTH = 16
# A token travels in a header (and often in a proxy URL): visible ASCII, no spaces.
_TOKEN_CHARS = re.compile(r"[!-~]+")
_GENERATE_HINT = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"

_PROCESS_KEY = secrets.token_bytes(32)  # never leaves this process, never logged


def keyed_digest(material: bytes) -> bytes:
    """HMAC-SHA256 under the per-process key: fixed size, constant-time comparable."""
    return hmac.new(_PROCESS_KEY, material, hashlib.sha256).digest()


def basic_digest(userpass: bytes) -> bytes:
    """Digest of the decoded ``name:token`` of a Basic credential."""
    return keyed_digest(b"basic\x00" + userpass)


def bearer_digest(token: bytes) -> bytes:
    return keyed_digest(b"bearer\x00" + token)


# -- the model ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Credential:
    """One token of a sender, as digests; ``reference`` (env:NAME / file:PATH) is safe to show."""

    reference: str
    location: Location
    not_after: datetime | None
    basic: bytes  # compared too: a rotated token behind the same reference is a new policy
    bearer: bytes

    def __repr__(self) -> str:
        return f"Credential({self.reference})"

    def valid_at(self, now: datetime) -> bool:
        return self.not_after is None or now < self.not_after


@dataclass(frozen=True, slots=True)
class Sender:
    name: str
    credentials: tuple[Credential, ...]
    location: Location
    clients: tuple[IPNetwork, ...] = ()  # empty: any source address
    default: SenderDefault = "allow"
    enforce: bool = True  # False: report-only

    def allows_client(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if not self.clients:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # an IPv4 client on a dual-stack listener
        return any(address in network for network in self.clients)


@dataclass(frozen=True)
class SenderTable:
    """Every sender of a policy, and the credential indexes the proxy checks against."""

    senders: tuple[Sender, ...] = ()
    by_name: Mapping[str, Sender] = field(init=False, compare=False, repr=False)
    _basic: Mapping[bytes, tuple[Sender, Credential]] = field(init=False, compare=False, repr=False)
    _bearer: Mapping[bytes, tuple[Sender, Credential]] = field(
        init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {s.name: s for s in self.senders})
        basic: dict[bytes, tuple[Sender, Credential]] = {}
        bearer: dict[bytes, tuple[Sender, Credential]] = {}
        for sender in self.senders:
            for credential in sender.credentials:
                basic.setdefault(credential.basic, (sender, credential))
                bearer.setdefault(credential.bearer, (sender, credential))
        object.__setattr__(self, "_basic", basic)
        object.__setattr__(self, "_bearer", bearer)

    def __bool__(self) -> bool:
        return bool(self.senders)

    def __len__(self) -> int:
        return len(self.senders)

    def __iter__(self) -> Iterator[Sender]:
        return iter(self.senders)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def get(self, name: str) -> Sender | None:
        return self.by_name.get(name)

    def verify_basic(self, userpass: bytes, now: datetime) -> Sender | None:
        """The sender whose ``name:token`` this is, if any (one HMAC, one lookup)."""
        digest = basic_digest(userpass)
        found = self._basic.get(digest)
        return _confirm(found, digest, found[1].basic if found else _NO_DIGEST, now)

    def verify_bearer(self, token: bytes, now: datetime) -> Sender | None:
        """The sender whose token this is, if any (one HMAC, one lookup)."""
        digest = bearer_digest(token)
        found = self._bearer.get(digest)
        return _confirm(found, digest, found[1].bearer if found else _NO_DIGEST, now)


_NO_DIGEST = bytes(32)


def _confirm(
    found: tuple[Sender, Credential] | None, digest: bytes, expected: bytes, now: datetime
) -> Sender | None:
    # The digests are keyed with a secret of this process, so a dict hit or miss tells an
    # attacker nothing they could aim; the final compare is constant-time all the same.
    same = hmac.compare_digest(expected, digest)
    if found is None or not same or not found[1].valid_at(now):
        return None
    return found[0]


# -- the policy section ---------------------------------------------------------------------


def check_senders(checker: Checker, node: YNode) -> list[Sender]:
    """Validate a top-level ``senders`` mapping and read its tokens; issues are recorded."""
    mapping = checker.mapping(
        node, "senders", "a mapping of sender names (or none: no credentials, on purpose)"
    )
    if mapping is None:
        return []
    result: list[Sender] = []
    for name, entry in mapping.entries.items():
        path = f"senders.{name}"
        if not _NAME.fullmatch(name):
            checker.issue(
                entry.key_location,
                f"{path}: invalid sender name; use 1-64 letters, digits, '.', '_' or '-' "
                "(no ':' - senders authenticate as name:token)",
            )
            continue
        sender = _sender(checker, name, entry.value, path)
        if sender is not None:
            result.append(sender)
    return result


def _sender(checker: Checker, name: str, node: YNode, path: str) -> Sender | None:
    if not isinstance(node, YMap):
        checker.expected(node, path, "a mapping with credentials: [env:NAME]")
        return None
    checker.keys(node, path, SENDER.names)
    entries = node.entries
    credentials_entry = entries.get("credentials")
    refs = check_references(
        checker,
        credentials_entry.value if credentials_entry else None,
        node,
        path,
        "credentials",
        f"env:{name.upper().replace('-', '_').replace('.', '_')}_PROXY_TOKEN",
    )
    credentials: list[Credential] = []
    for ref in refs:
        token = read_secret(checker, ref)
        if token is None:
            continue
        if len(token) < MIN_TOKEN_LENGTH:
            checker.issue(
                ref.location,
                f"secret {ref.text}: a sender token must be at least {MIN_TOKEN_LENGTH} "
                f"characters; {_GENERATE_HINT}",
            )
            continue
        if not _TOKEN_CHARS.fullmatch(token):
            checker.issue(
                ref.location,
                f"secret {ref.text}: a sender token may contain only visible ASCII characters "
                f"(no spaces); {_GENERATE_HINT}",
            )
            continue
        raw = token.encode("ascii")
        credentials.append(
            Credential(
                reference=ref.text,
                location=ref.location,
                not_after=ref.not_after,
                basic=basic_digest(name.encode("ascii") + b":" + raw),
                bearer=bearer_digest(raw),
            )
        )
    clients: tuple[IPNetwork, ...] = ()
    if "clients" in entries:
        clients = _clients(checker, entries["clients"].value, f"{path}.clients")
    default: SenderDefault = "allow"
    if "default" in entries:
        choices: tuple[SenderDefault, ...] = ("allow", "deny")
        default = checker.choice(entries["default"].value, f"{path}.default", choices) or default
    enforce = True
    if "enforce" in entries:
        flag = checker.boolean(entries["enforce"].value, f"{path}.enforce")
        enforce = True if flag is None else flag
    if not refs or len(credentials) != len(refs):
        return None
    return Sender(name, tuple(credentials), node.location, clients, default, enforce)


def _clients(checker: Checker, node: YNode, path: str) -> tuple[IPNetwork, ...]:
    items = checker.items(node, path, "a list of CIDRs", "write clients: [10.20.0.0/16]")
    if items is not None and not items:
        checker.issue(node.location, f"{path}: empty list; leave 'clients' out to allow any source")
    result: list[IPNetwork] = []
    for index, item in enumerate(items or []):
        item_path = f"{path}[{index}]"
        text = checker.string(item, item_path, "a CIDR like '10.20.0.0/16'")
        if text is None:
            continue
        try:
            result.append(ipaddress.ip_network(text.strip(), strict=True))
        except ValueError as exc:
            checker.issue(item.location, f"{item_path}: {text!r} is not a CIDR ({exc})")
    return tuple(result)


@dataclass(frozen=True, slots=True)
class SenderRef:
    """A sender name written in a destination's ``senders`` list (checked across files)."""

    name: str
    location: Location
    path: str


def check_rule_senders(
    checker: Checker, node: YNode, path: str, refs: list[SenderRef]
) -> tuple[str, ...]:
    """A destination's ``senders: [name, ...]``; names are checked once every file is read."""
    hint = "write senders: [billing]"
    if not isinstance(node, YList):
        checker.expected(node, path, "a list of sender names", hint)
        return ()
    if not node.items:
        checker.issue(node.location, f"{path}: empty list; leave 'senders' out for every sender")
        return ()
    names: list[str] = []
    for index, item in enumerate(node.items):
        item_path = f"{path}[{index}]"
        if not (isinstance(item, YScalar) and isinstance(item.value, str)):
            checker.expected(item, item_path, "a sender name")
            continue
        if item.value in names:
            checker.issue(item.location, f"{item_path}: sender {item.value!r} is listed twice")
            continue
        names.append(item.value)
        refs.append(SenderRef(item.value, item.location, item_path))
    return tuple(names)


def combine_senders(
    per_file: Iterable[list[Sender]], refs: Iterable[SenderRef], issues: list[PolicyIssue]
) -> SenderTable:
    """All files' senders: each name and each token once; every name a rule uses defined."""
    by_name: dict[str, Sender] = {}
    tokens: dict[bytes, tuple[Sender, Credential]] = {}
    for senders in per_file:
        for sender in senders:
            first = by_name.setdefault(sender.name, sender)
            if first is not sender:
                issues.append(
                    PolicyIssue(
                        sender.location,
                        f"senders.{sender.name}: already defined at {first.location}; define "
                        "each sender once",
                    )
                )
                continue
            for credential in sender.credentials:
                owner = tokens.setdefault(credential.bearer, (sender, credential))
                if owner[0] is sender and owner[1] is credential:
                    continue
                where = "this sender" if owner[0] is sender else f"sender {owner[0].name!r}"
                issues.append(
                    PolicyIssue(
                        credential.location,
                        f"secret {credential.reference}: the same token as {owner[1].reference} "
                        f"of {where} ({owner[1].location}); each sender needs a token of its own",
                    )
                )
    for ref in refs:
        if ref.name in by_name:
            continue
        close = difflib.get_close_matches(ref.name, list(by_name), n=1)
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif by_name:
            hint = f"defined senders: {', '.join(sorted(by_name))}"
        else:
            hint = "define it under the top-level 'senders:'"
        issues.append(PolicyIssue(ref.location, f"{ref.path}: unknown sender {ref.name!r}; {hint}"))
    return SenderTable(tuple(by_name.values()))


def sender_lines(table: SenderTable) -> list[str]:
    """``hookwall check`` lines: each sender with its references (never a token)."""
    if not table:
        return []  # no credentials are asked; hookwall run keeps to loopback
    lines = [f"senders: {len(table)}; every request must authenticate"]
    for sender in table:
        refs = ", ".join(c.reference for c in sender.credentials)
        clients = ", ".join(str(n) for n in sender.clients) or "any source"
        line = f"  {sender.name}: credentials {refs}; clients {clients}; default {sender.default}"
        if not sender.enforce:
            line += " (report-only)"
        lines.append(f"{line}  [{sender.location}]")
    return lines
