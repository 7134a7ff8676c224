"""Secret references in a policy: ``env:NAME`` or ``file:PATH``, never the secret itself.

Shared by every section that needs secrets (``signing.secrets``, ``senders.*.credentials``,
``limits.password``). References are read at load time, so a missing variable or an
unreadable file is a load error with file and line, not a failure at 3 a.m. No message built
here ever contains a secret value: errors name the reference, never what it resolved to, and
never echo a literal.

A checker that does not read secrets (``hookwall check --no-secrets``, for CI and pre-commit,
where production secrets are absent) checks each reference's shape and gets a random stand-in
instead of its value: valid wherever a secret is, known to nobody, so a policy loaded this way
authenticates no one and signs nothing a receiver would accept (``Policy.secrets_read`` says
so, and ``hookwall run`` never loads one).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from hookwall.config.checker import Checker
from hookwall.config.errors import Location
from hookwall.config.shapes import AnyOf, Custom, Fields, ListOf, Text
from hookwall.config.yamlnodes import YList, YMap, YNode, YScalar

__all__ = [
    "LITERAL",
    "SECRET_REFERENCE",
    "STAND_IN_PREFIX",
    "SecretRef",
    "check_references",
    "read_secret",
    "references",
]

LITERAL = (
    "literal secrets are not allowed in a policy file; put the secret in an environment "
    "variable and write env:NAME, or in a file and write file:PATH"
)
#: What a stand-in for an unread secret begins with (then 43 random URL-safe characters).
STAND_IN_PREFIX = "unread-"
# The form check_references accepts (stripped, a kind, a colon, a name), for editors.
SECRET_REFERENCE = Text(
    "env:NAME or file:PATH",
    r"^\s*(?:env|file):.*\S",
    doc="env:NAME (an environment variable) or file:PATH (relative to the policy file); "
    "never the secret itself",
)

_ROTATING = Fields(
    {
        "secret": SECRET_REFERENCE,
        "not_after": Custom(
            Text("a date-time like 2026-12-31T00:00:00Z", r"^\d{4}-\d{2}-\d{2}").json_schema(),
            doc="when this secret stops being used, e.g. 2026-12-31T00:00:00Z",
        ),
    },
    required=("secret",),
    doc="a secret with the instant it retires (for rotation)",
)


def references(example: str, doc: str) -> ListOf:
    """The shape of a list ``check_references`` reads."""
    return ListOf(AnyOf((SECRET_REFERENCE, _ROTATING)), min_items=1, doc=f"{doc}; e.g. [{example}]")


@dataclass(frozen=True, slots=True)
class SecretRef:
    text: str  # "env:NAME" or "file:PATH" as written
    location: Location
    not_after: datetime | None


def check_references(
    checker: Checker, node: YNode | None, mapping: YMap, path: str, key: str, example: str
) -> list[SecretRef]:
    """The list under ``mapping[key]``: each item ``env:NAME``, ``file:PATH`` or
    ``{secret: env:NAME, not_after: 2026-12-31T00:00:00Z}``. Issues are recorded, bad items
    skipped."""
    where = f"{path}.{key}"
    if node is None:
        checker.issue(mapping.location, f"{path}: missing '{key}'; e.g. {key}: [{example}]")
        return []
    if not isinstance(node, YList) or not node.items:
        checker.issue(node.location, f"{where}: expected a non-empty list of env:NAME / file:PATH")
        return []
    refs: list[SecretRef] = []
    for index, item in enumerate(node.items):
        item_path = f"{where}[{index}]"
        not_after: datetime | None = None
        target = item
        if isinstance(item, YMap):
            checker.keys(item, item_path, _ROTATING.names)
            if "secret" not in item.entries:
                checker.issue(item.location, f"{item_path}: missing 'secret: env:NAME'")
                continue
            target = item.entries["secret"].value
            if "not_after" in item.entries:
                not_after = _instant(
                    checker, item.entries["not_after"].value, f"{item_path}.not_after"
                )
        if not (isinstance(target, YScalar) and isinstance(target.value, str)):
            # Never describe the value: it may be a secret written by mistake.
            checker.issue(target.location, f"{item_path}: {LITERAL}")
            continue
        text = target.value.strip()
        if not text.startswith(("env:", "file:")) or len(text.split(":", 1)[1]) == 0:
            checker.issue(target.location, f"{item_path}: {LITERAL}")
            continue
        refs.append(SecretRef(text, target.location, not_after))
    return refs


def _instant(checker: Checker, node: YNode, path: str) -> datetime | None:
    """A YAML timestamp or ISO 8601 string; a time without zone is taken as UTC."""
    value = node.value if isinstance(node, YScalar) else None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            value = None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, datetime):
        checker.issue(node.location, f"{path}: expected a date-time like 2026-12-31T00:00:00Z")
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_secret(checker: Checker, ref: SecretRef) -> str | None:
    """The secret a reference points to (a file's text is stripped), or None after an issue;
    a random stand-in when the checker does not read secrets."""
    if not checker.read_secrets:
        return STAND_IN_PREFIX + secrets.token_urlsafe(32)
    kind, _, name = ref.text.partition(":")
    if kind == "env":
        secret = os.environ.get(name)
        if not secret:
            checker.issue(
                ref.location,
                f"secret {ref.text}: environment variable {name} is "
                f"{'empty' if secret == '' else 'not set'}; set it before starting hookwall",
            )
            return None
        return secret
    path = checker.base_dir / Path(name).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        checker.issue(ref.location, f"secret {ref.text}: cannot read {path}: {reason}")
        return None
