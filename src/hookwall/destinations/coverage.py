"""What a set of allow rows reopens of the special-purpose space, as exact address sets.

A row-by-row look misses combinations: two prefixes one bit longer than a deny row
(127.0.0.0/9 + 127.128.0.0/9) reopen the whole row although neither equals it. So the
analysis works on address sets (sorted integer intervals per IP version) under the same
longest-match rule ``check_address`` applies: an allow row decides where no deny row at
least as long lies inside it. Pure functions; the policy loader turns the result into
located errors.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from hookwall.destinations.addresses import EMBEDDINGS, SPECIAL_PURPOSE, IPNetwork, Prefix

__all__ = ["AddressSet", "DenyTable", "Reopened", "closed_blocks", "decided_by", "reopened_by"]

_BITS = {4: 32, 6: 128}


@dataclass(frozen=True, slots=True)
class AddressSet:
    """A set of addresses: disjoint, sorted, non-adjacent inclusive intervals per version."""

    v4: tuple[tuple[int, int], ...] = ()
    v6: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, networks: Iterable[IPNetwork]) -> AddressSet:
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for network in networks:
            first = int(network.network_address)
            spans[network.version].append((first, first + network.num_addresses - 1))
        return cls(_merge(spans[4]), _merge(spans[6]))

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6)

    def __or__(self, other: AddressSet) -> AddressSet:
        return AddressSet(_merge([*self.v4, *other.v4]), _merge([*self.v6, *other.v6]))

    def __and__(self, other: AddressSet) -> AddressSet:
        return AddressSet(_intersect(self.v4, other.v4), _intersect(self.v6, other.v6))

    def __sub__(self, other: AddressSet) -> AddressSet:
        return AddressSet(_subtract(self.v4, other.v4), _subtract(self.v6, other.v6))

    def networks(self) -> list[IPNetwork]:
        """The set as the fewest CIDR prefixes, IPv4 first."""
        result: list[IPNetwork] = []
        for version, spans in ((4, self.v4), (6, self.v6)):
            make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
            for first, last in spans:
                result.extend(ipaddress.summarize_address_range(make(first), make(last)))
        return result


def _merge(spans: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return tuple(merged)


def _intersect(
    a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    result: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        first, last = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if first <= last:
            result.append((first, last))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(result)


def _subtract(
    a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    result: list[tuple[int, int]] = []
    j = 0
    for first, last in a:
        while j < len(b) and b[j][1] < first:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= last:
            if b[k][0] > first:
                result.append((first, b[k][0] - 1))
            first = max(first, b[k][1] + 1)
            if first > last:
                break
            k += 1
        if first <= last:
            result.append((first, last))
    return tuple(result)


# IPv6 addresses inside these are judged as the IPv4 they embed, never as IPv6.
_EMBEDDED = AddressSet.of(row.network for row in EMBEDDINGS)


@lru_cache(maxsize=8)
def closed_blocks(table: tuple[Prefix, ...] = SPECIAL_PURPOSE) -> tuple[Prefix, ...]:
    """The outermost rows of a deny table (nested rows dropped), embedding rows left out.

    These are the blocks an error names: "reopens 127.0.0.0/8 loopback (RFC 1122)".
    """
    plain = [row for row in table if row.embedded is None]
    return tuple(
        row
        for row in plain
        if not any(
            other.network != row.network
            and other.network.version == row.network.version
            and row.network.subnet_of(other.network)  # type: ignore[arg-type]
            for other in plain
        )
    )


@lru_cache(maxsize=8)
def _closed_set(table: tuple[Prefix, ...]) -> AddressSet:
    return AddressSet.of(block.network for block in closed_blocks(table))


@lru_cache(maxsize=8)
def _block_sets(table: tuple[Prefix, ...]) -> tuple[tuple[Prefix, AddressSet], ...]:
    return tuple((block, AddressSet.of([block.network])) for block in closed_blocks(table))


@lru_cache(maxsize=65536)
def _span(network: IPNetwork) -> tuple[int, int, int, int]:
    """(version, first, last, prefix length): containment as integer comparisons."""
    first = int(network.network_address)
    return network.version, first, first + network.num_addresses - 1, network.prefixlen


@dataclass(frozen=True, slots=True)
class Reopened:
    """What one destination's allow rows reopen of the closed space."""

    # Each allow row that reopens something, with the addresses it reopens.
    rows: tuple[tuple[Prefix, AddressSet], ...]
    closed: tuple[Prefix, ...] = SPECIAL_PURPOSE

    def __bool__(self) -> bool:
        return bool(self.rows)

    def blocks(self, part: AddressSet | None = None) -> list[tuple[Prefix, AddressSet]]:
        """Everything reopened (or ``part`` of it), per closed block: (block, reopened part).

        Computed on demand: only error messages need it.
        """
        union = self.total if part is None else part
        found: list[tuple[Prefix, AddressSet]] = []
        if union:
            for block, whole in _block_sets(self.closed):
                inside = union & whole
                if inside:
                    found.append((block, inside))
        return found

    @property
    def total(self) -> AddressSet:
        union = AddressSet()
        for _, part in self.rows:
            union = union | part
        return union


@dataclass(frozen=True, slots=True)
class DenyTable:
    """A destination's deny rows, prepared once: their spans and the closed space they deny.

    ``plus`` extends it with a rule's own rows, so thousands of rules cost one pass each.
    """

    spans: tuple[tuple[int, int, int, int], ...]
    shut: AddressSet  # closed blocks ∩ what these rows deny
    closed: tuple[Prefix, ...] = SPECIAL_PURPOSE
    closed_set: AddressSet = AddressSet()

    @classmethod
    def of(cls, deny: Sequence[Prefix], closed: tuple[Prefix, ...] = SPECIAL_PURPOSE) -> DenyTable:
        closed_set = _closed_set(closed)
        shut = closed_set & AddressSet.of(d.network for d in deny)
        return cls(tuple(_span(d.network) for d in deny), shut, closed, closed_set)

    def plus(self, deny: Sequence[Prefix]) -> DenyTable:
        if not deny:
            return self
        extra = self.closed_set & AddressSet.of(d.network for d in deny)
        spans = self.spans + tuple(_span(d.network) for d in deny)
        shut = self.shut | extra if extra else self.shut
        return DenyTable(spans, shut, self.closed, self.closed_set)


def decided_by(row: Prefix, deny: DenyTable) -> AddressSet:
    """The addresses where allow ``row`` wins: inside it, outside every deny row at least as
    long as it (a longer or equal deny inside the row wins there; a shorter one loses)."""
    version, first, last, length = _span(row.network)
    beaten = [
        (f, la)
        for v, f, la, n in deny.spans
        if v == version and n >= length and first <= f and la <= last
    ]
    inside = ((first, last),)
    taken = _merge(beaten)
    if version == 4:
        return AddressSet(_subtract(inside, taken), ())
    return AddressSet((), _subtract(_subtract(inside, taken), _EMBEDDED.v6))


def reopened_by(allow: Sequence[Prefix], deny: Sequence[Prefix] | DenyTable) -> Reopened:
    """What ``allow`` reopens of the closed set (the built-in special-purpose set) for a
    destination judged against ``deny``: only space that ``deny`` actually denies counts."""
    table = deny if isinstance(deny, DenyTable) else DenyTable.of(deny)
    shut = table.shut
    rows: list[tuple[Prefix, AddressSet]] = []
    for row in allow:
        version, first, last, _ = _span(row.network)
        spans = shut.v4 if version == 4 else shut.v6
        if not _intersect(((first, last),), spans):
            continue  # cheap: most allow rows are public ranges
        part = decided_by(row, table) & shut
        if part:
            rows.append((row, part))
    return Reopened(tuple(rows), table.closed)
