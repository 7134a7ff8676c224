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

Which rule applies to a (host, sender): the most specific host pattern wins, as always; at
that pattern a rule scoped to the sender beats the unscoped one. A pattern that has only rules
scoped to *other* senders is reserved: this sender gets ``sender-denied``.
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
from typing import TYPE_CHECKING, Literal

from hookwall.config.errors import Location, PolicyIssue
from hookwall.config.secrets import check_references, read_secret
from hookwall.config.yamltree import YList, YMap, YNode, YScalar
from hookwall.core.denials import Reason

if TYPE_CHECKING:
    from hookwall.policy.model import Settings
    from hookwall.policy.schema import _FileChecker

__all__ = [
    "MIN_TOKEN_LENGTH",
    "PatternRules",
    "Selection",
    "Sender",
    "SenderTable",
    "Verdict",
    "check_rule_senders",
    "check_senders",
    "combine_senders",
    "select",
    "sender_lines",
]

SenderDefault = Literal["allow", "deny"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# No ':' (Basic credentials are name:token) and nothing a log query has to escape.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SENDER_KEYS = ("credentials", "clients", "default", "enforce")
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


# -- rule selection -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """An access denial: enforced, or only reported (``enforce: false``)."""

    reason: Reason  # SENDER_DENIED or HOST_DENIED
    message: str  # shown to the sender: never names other senders or their rules
    enforced: bool


@dataclass(frozen=True, slots=True)
class Selection:
    """The rule that applies to (host, sender), and any access verdicts on the way there.

    With an enforced ``denial``, ``settings`` is the rule that caused it (for the log)."""

    settings: Settings
    denial: Verdict | None = None
    would_deny: tuple[Verdict, ...] = ()


class PatternRules:
    """The rules written for one host pattern: at most one unscoped, one per sender."""

    __slots__ = ("scoped", "unscoped")

    def __init__(self) -> None:
        self.unscoped: Settings | None = None
        self.scoped: dict[str, Settings] = {}

    def add(self, settings: Settings) -> None:
        names = settings.rule.senders if settings.rule is not None else ()
        if not names:
            self.unscoped = self.unscoped or settings
        for name in names:
            self.scoped.setdefault(name, settings)

    def for_sender(self, sender: str | None) -> Settings | None:
        if sender is not None and (found := self.scoped.get(sender)) is not None:
            return found
        return self.unscoped

    def reserving(self) -> tuple[Settings, bool]:
        """For a pattern reserved to other senders: one of its rules, and whether any of them
        enforces the reservation."""
        rules = list(self.scoped.values())
        enforced = any(s.rule is None or s.rule.enforce for s in rules)
        return rules[0], enforced


def _scoped_to(settings: Settings, sender: str) -> bool:
    return settings.rule is not None and sender in settings.rule.senders


def select(
    candidates: Iterable[PatternRules],
    defaults: Settings,
    table: SenderTable,
    host: str,
    sender: str | None,
) -> Selection:
    """Pick the rule for ``host`` as ``sender`` from its matching patterns, most specific first.

    Report-only verdicts (a reserved pattern or an ``action: deny`` rule with ``enforce:
    false``, a ``default: deny`` sender with ``enforce: false``) are collected and the walk
    goes on to what would apply without them. Raises KeyError for an unknown sender.
    """
    who = table.by_name[sender] if sender is not None else None
    reports: list[Verdict] = []
    chosen: Settings | None = None
    for rules in candidates:
        settings = rules.for_sender(sender)
        if settings is None:
            reserved, rule_enforces = rules.reserving()
            enforced = rule_enforces and (who is None or who.enforce)
            verdict = Verdict(
                Reason.SENDER_DENIED,
                f"{host} is reserved by the policy for other senders"
                + ("" if sender else "; this request has no sender"),
                enforced,
            )
            if enforced:
                return Selection(reserved, verdict, tuple(reports))
            reports.append(verdict)
            continue
        rule = settings.rule
        if settings.action == "deny" and rule is not None and not rule.enforce:
            message = f"{host} is denied by rule {rule.name!r} ({rule.location})"
            reports.append(Verdict(Reason.HOST_DENIED, message, False))
            continue
        chosen = settings
        break
    settings = chosen or defaults
    if (
        who is not None
        and who.default == "deny"
        and settings.action == "allow"
        and not _scoped_to(settings, who.name)
    ):
        verdict = Verdict(
            Reason.SENDER_DENIED,
            f"sender {who.name!r} may reach only the destinations listed for it, and {host} "
            "is not one of them",
            who.enforce,
        )
        if who.enforce:
            return Selection(settings, verdict, tuple(reports))
        reports.append(verdict)
    return Selection(settings, None, tuple(reports))


# -- the policy section ---------------------------------------------------------------------


def check_senders(checker: _FileChecker, node: YNode) -> list[Sender]:
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


def _sender(checker: _FileChecker, name: str, node: YNode, path: str) -> Sender | None:
    if not isinstance(node, YMap):
        checker.expected(node, path, "a mapping with credentials: [env:NAME]")
        return None
    checker.keys(node, path, _SENDER_KEYS, "sender")
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


def _clients(checker: _FileChecker, node: YNode, path: str) -> tuple[IPNetwork, ...]:
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
    checker: _FileChecker, node: YNode, path: str, refs: list[SenderRef]
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
