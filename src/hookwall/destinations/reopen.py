"""No allow row quietly reopens what the built-in special-purpose deny set closes.

Every destination (the defaults, and each rule merged with them) is analysed as a whole
with ``destinations.coverage``: the special-purpose space its allow rows reopen under the
longest-match rule. A rule whose hosts are all named (exact names, IP literals or
'*.example.org' wildcards, not '*', '*.com' or '*.co.uk': a wildcard directly under a public
suffix names anyone's domain) carries a name-scoped exception: its own
rows may reopen space for those names. Anything else that reopens special-purpose space (a
defaults row, a row on a '*' rule) needs 'unsafe: true' in the file that holds it. Check,
start-up and reload all load through here, so all three refuse the same files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from hookwall.config.errors import Location, PolicyIssue
from hookwall.destinations.addresses import Prefix
from hookwall.destinations.coverage import AddressSet, DenyTable, Reopened, reopened_by
from hookwall.destinations.suffixes import is_public_suffix

__all__ = ["PolicyFile", "ReopeningRule", "check_reopened", "name_scoped"]


class ReopeningRule(Protocol):
    """What the check reads of a destination as written (the policy's ``Rule``)."""

    @property
    def name(self) -> str: ...
    @property
    def hosts(self) -> tuple[str, ...]: ...  # canonical patterns
    @property
    def allow(self) -> tuple[Prefix, ...]: ...  # appended to the defaults' rows
    @property
    def deny(self) -> tuple[Prefix, ...]: ...


class PolicyFile(Protocol):
    """What the check reads of one file of a policy (the policy's ``FileSpec``)."""

    @property
    def file(self) -> str: ...
    @property
    def unsafe(self) -> bool: ...
    @property
    def rules(self) -> Sequence[ReopeningRule]: ...
    @property
    def allow_rows(self) -> Mapping[Prefix, tuple[Location, str]]: ...  # where each was written


_MAX_BLOCKS = 4  # blocks named per message; the rest are counted


@dataclass(frozen=True, slots=True)
class _Row:
    location: Location
    path: str
    file: str


def _names_a_host(pattern: str) -> bool:
    """An exact name or IP, or a wildcard under a registrable domain: '*', '*.com',
    '*.co.uk' and '*.github.io' are not names (anyone can register a name under a public
    suffix and point it anywhere)."""
    if pattern.startswith("*"):
        return pattern.startswith("*.") and not is_public_suffix(pattern[2:])
    return True


def name_scoped(rule: ReopeningRule) -> bool:
    """True when every host pattern names a host or domain: the rule's rows only reach them."""
    return bool(rule.hosts) and all(_names_a_host(pattern) for pattern in rule.hosts)


def _describe_block(block: Prefix, part: AddressSet) -> str:
    whole = f"{block.network} {block.label}"
    if part.networks() == [block.network]:
        return whole
    networks = part.networks()
    shown = ", ".join(str(n) for n in networks[:3])
    more = f" and {len(networks) - 3} more prefixes" if len(networks) > 3 else ""
    return f"{shown}{more} of {whole}"


def _blocks_text(blocks: Sequence[tuple[Prefix, AddressSet]]) -> str:
    named = [_describe_block(block, part) for block, part in blocks[:_MAX_BLOCKS]]
    rest = len(blocks) - _MAX_BLOCKS
    return "; ".join(named) + (f"; and {rest} more special-purpose blocks" if rest > 0 else "")


def _message(row: _Row, prefix: Prefix, part: AddressSet, reopened: Reopened, where: str) -> str:
    own = _blocks_text(reopened.blocks(part))
    network = prefix.network
    text = f"{row.path}: {network} reopens {own}"
    if " = " in prefix.label:  # an IPv6 spelling of embedded IPv4
        text = f"{row.path}: {network} (the IPv4 range this row embeds) reopens {own}"
    others = [r for r, _ in reopened.rows if r is not prefix]
    if others and reopened.total != part:
        text += (
            f"; together with the other allow rows of {where} it reopens "
            f"{_blocks_text(reopened.blocks())}"
        )
    return (
        f"{text}. Special-purpose addresses (loopback, private, link-local, ...) are closed "
        "for every destination: narrow the row to the addresses you need outside them, move "
        "it to a destination with named hosts (an exception for those names only), or set "
        f"'unsafe: true' at the top of {row.file} if you really mean it"
    )


def check_reopened(
    specs: Sequence[PolicyFile],
    defaults_allow: tuple[Prefix, ...],
    defaults_deny: tuple[Prefix, ...],
    issues: list[PolicyIssue],
) -> dict[Prefix, Prefix]:
    """Append an issue per allow row that reopens special-purpose space without leave.

    Returns the relabelling for rows that reopen it with leave, so `explain` can say why:
    '... [name-scoped exception]' or '... [unsafe: true]'.
    """
    rows: dict[Prefix, _Row] = {}
    unsafe_files = {spec.file for spec in specs if spec.unsafe}
    for spec in specs:
        for prefix, (location, path) in spec.allow_rows.items():
            rows[prefix] = _Row(location, path, spec.file)
    flagged: dict[Prefix, str] = {}
    leave: dict[Prefix, str] = {}

    def judge(reopened: Reopened, exempt: frozenset[Prefix], where: str) -> None:
        for prefix, part in reopened.rows:
            row = rows.get(prefix)
            if row is None:  # not written by the operator (cannot happen for allow rows)
                continue
            if prefix in exempt:
                leave.setdefault(prefix, "name-scoped exception")
            elif row.file in unsafe_files:
                leave.setdefault(prefix, "unsafe: true")
            elif prefix not in flagged:
                flagged[prefix] = _message(row, prefix, part, reopened, where)

    base = DenyTable.of(defaults_deny)
    judge(reopened_by(defaults_allow, base), frozenset(), "the defaults")
    for spec in specs:
        for rule in spec.rules:
            if not rule.allow and not (rule.deny and defaults_allow):
                continue  # nothing this rule's tables could reopen beyond the defaults'
            reopened = reopened_by(defaults_allow + rule.allow, base.plus(rule.deny))
            # the suffix list is consulted only for a rule that reopens something
            exempt = frozenset(rule.allow) if reopened.rows and name_scoped(rule) else frozenset()
            judge(reopened, exempt, f"destination {rule.name!r}")
    for prefix, message in flagged.items():
        issues.append(PolicyIssue(rows[prefix].location, message))
    return {
        prefix: replace(prefix, label=f"{prefix.label} [{why}]")
        for prefix, why in leave.items()
        if prefix not in flagged
    }
