"""Which rule applies to a (host, sender), and the access verdicts on the way there.

The most specific host pattern wins, as always; at that pattern a rule scoped to the sender
beats the unscoped one. A pattern that has only rules scoped to *other* senders is reserved:
this sender gets ``sender-denied``. A ``default: deny`` sender reaches only the rules scoped
to it. Who the senders are is ``access.settings``; ``destinations.decide`` turns what
``Policy.select`` returns into the request's decision.

The policy keeps its merged settings per host pattern here (``PatternRules``) and calls
``select`` on every request. Both are generic over what a rule's settings are
(``Candidate``: the rule's name, location, sender scope, ``enforce`` and action are all they
read), so this module and ``policy.model``, which builds them, do not import each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from hookwall.access.settings import SenderTable
from hookwall.config.errors import Location
from hookwall.core.denials import Reason

__all__ = ["Candidate", "PatternRules", "ScopedRule", "Selection", "Verdict", "select"]


class ScopedRule(Protocol):
    """What selection reads of a rule as written."""

    @property
    def name(self) -> str: ...
    @property
    def location(self) -> Location: ...
    @property
    def senders(self) -> tuple[str, ...]: ...  # () = every sender
    @property
    def enforce(self) -> bool: ...  # False: report-only


class Candidate(Protocol):
    """What selection reads of a rule's effective settings (``rule`` None: the defaults)."""

    @property
    def rule(self) -> ScopedRule | None: ...
    @property
    def action(self) -> str: ...  # "allow" or "deny"


@dataclass(frozen=True, slots=True)
class Verdict:
    """An access denial: enforced, or only reported (``enforce: false``)."""

    reason: Reason  # SENDER_DENIED or HOST_DENIED
    message: str  # shown to the sender: never names other senders or their rules
    enforced: bool


@dataclass(frozen=True, slots=True)
class Selection[S: Candidate]:
    """The rule that applies to (host, sender), and any access verdicts on the way there.

    With an enforced ``denial``, ``settings`` is the rule that caused it (for the log)."""

    settings: S
    denial: Verdict | None = None
    would_deny: tuple[Verdict, ...] = ()


class PatternRules[S: Candidate]:
    """The rules written for one host pattern: at most one unscoped, one per sender."""

    __slots__ = ("scoped", "unscoped")

    def __init__(self) -> None:
        self.unscoped: S | None = None
        self.scoped: dict[str, S] = {}

    def add(self, settings: S) -> None:
        names = settings.rule.senders if settings.rule is not None else ()
        if not names:
            self.unscoped = self.unscoped or settings
        for name in names:
            self.scoped.setdefault(name, settings)

    def for_sender(self, sender: str | None) -> S | None:
        if sender is not None and (found := self.scoped.get(sender)) is not None:
            return found
        return self.unscoped

    def reserving(self) -> tuple[S, bool]:
        """For a pattern reserved to other senders: one of its rules, and whether any of them
        enforces the reservation."""
        rules = list(self.scoped.values())
        enforced = any(s.rule is None or s.rule.enforce for s in rules)
        return rules[0], enforced


def _scoped_to(settings: Candidate, sender: str) -> bool:
    return settings.rule is not None and sender in settings.rule.senders


def select[S: Candidate](
    candidates: Iterable[PatternRules[S]],
    defaults: S,
    table: SenderTable,
    host: str,
    sender: str | None,
) -> Selection[S]:
    """Pick the rule for ``host`` as ``sender`` from its matching patterns, most specific first.

    Report-only verdicts (a reserved pattern or an ``action: deny`` rule with ``enforce:
    false``, a ``default: deny`` sender with ``enforce: false``) are collected and the walk
    goes on to what would apply without them. Raises KeyError for an unknown sender.
    """
    who = table.by_name[sender] if sender is not None else None
    reports: list[Verdict] = []
    chosen: S | None = None
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
