"""The ``signing`` section of a destination: scheme options and secret references.

Secrets are never written in a policy: each is a reference, ``env:NAME`` or ``file:PATH``,
resolved here at load time so a missing variable or unreadable file is a load error with file
and line, not a failed delivery at 3 a.m. No message built here ever contains a secret value:
errors name the reference, never what it resolved to (and never echo a literal).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hookwall.policy.errors import Location
from hookwall.policy.model import SigningSettings
from hookwall.policy.yamlload import YList, YMap, YNode, YScalar
from hookwall.signing.keys import BadSecret, SigningKey
from hookwall.signing.schemes import Scheme, make_scheme, parse_secret_for

if TYPE_CHECKING:
    from hookwall.policy.schema import _FileChecker

SCHEMES = ("standard-webhooks", "github", "stripe", "hmac")
_COMMON_KEYS = ("scheme", "secrets", "id_header", "keep_sender_signatures")
_SCHEME_KEYS: dict[str, tuple[str, ...]] = {
    "standard-webhooks": (),
    "github": ("legacy_sha1",),
    "stripe": (),
    "hmac": (
        "header",
        "algorithm",
        "encoding",
        "value",
        "content",
        "separator",
        "timestamp_header",
    ),
}
_SECRET_KEYS = ("secret", "not_after")
_LITERAL = (
    "literal secrets are not allowed in a policy file; put the secret in an environment "
    "variable and write env:NAME, or in a file and write file:PATH"
)


@dataclass(frozen=True, slots=True)
class SecretRef:
    text: str  # "env:NAME" or "file:PATH" as written
    location: Location
    not_after: datetime | None


def check_signing(checker: _FileChecker, node: YNode, path: str) -> SigningSettings | None:
    """Validate one ``signing`` mapping and load its keys; None after recording issues."""
    mapping = checker.mapping(node, path)
    if mapping is None:
        return None
    entries = mapping.entries
    if "scheme" not in entries:
        checker.issue(mapping.location, f"{path}: missing 'scheme'; one of {', '.join(SCHEMES)}")
        return None
    scheme_name = checker.choice(entries["scheme"].value, f"{path}.scheme", SCHEMES)
    if scheme_name is None:
        return None
    checker.keys(mapping, path, _COMMON_KEYS + _SCHEME_KEYS[scheme_name], "signing")

    options: dict[str, object] = {}
    for option in _SCHEME_KEYS[scheme_name]:
        if option in entries:
            value = entries[option].value
            if not isinstance(value, YScalar):
                checker.expected(value, f"{path}.{option}", "a single value")
                continue
            options[option] = value.value
    try:
        scheme = make_scheme(scheme_name, **options)
    except ValueError as exc:
        checker.issue(mapping.location, f"{path}: {exc}")
        return None

    id_header = None
    if "id_header" in entries:
        id_header = checker.string(entries["id_header"].value, f"{path}.id_header", "a header name")
    keep = False
    if "keep_sender_signatures" in entries:
        keep = bool(
            checker.boolean(
                entries["keep_sender_signatures"].value, f"{path}.keep_sender_signatures"
            )
        )

    secrets = entries.get("secrets")
    refs = _references(checker, secrets.value if secrets else None, mapping, path)
    keys: list[SigningKey] = []
    for ref in refs:
        loaded = _load_key(checker, scheme, ref)
        if loaded is not None:
            keys.append(loaded)
    if not refs or len(keys) != len(refs):
        return None
    return SigningSettings(
        scheme=scheme,
        keys=tuple(keys),
        references=tuple(ref.text for ref in refs),
        location=mapping.location,
        id_header=id_header.lower() if id_header else None,
        keep_sender_signatures=keep,
    )


def _references(
    checker: _FileChecker, node: YNode | None, mapping: YMap, path: str
) -> list[SecretRef]:
    where = f"{path}.secrets"
    if node is None:
        checker.issue(
            mapping.location, f"{path}: missing 'secrets'; e.g. secrets: [env:ACME_WHSEC]"
        )
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
            checker.keys(item, item_path, _SECRET_KEYS, "secret")
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
            checker.issue(target.location, f"{item_path}: {_LITERAL}")
            continue
        text = target.value.strip()
        if not text.startswith(("env:", "file:")) or len(text.split(":", 1)[1]) == 0:
            checker.issue(target.location, f"{item_path}: {_LITERAL}")
            continue
        refs.append(SecretRef(text, target.location, not_after))
    return refs


def _instant(checker: _FileChecker, node: YNode, path: str) -> datetime | None:
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


def _load_key(checker: _FileChecker, scheme: Scheme, ref: SecretRef) -> SigningKey | None:
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
    else:
        path = checker.base_dir / Path(name).expanduser()
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            checker.issue(ref.location, f"secret {ref.text}: cannot read {path}: {reason}")
            return None
    try:
        return parse_secret_for(scheme, secret, not_after=ref.not_after)
    except BadSecret as exc:
        checker.issue(ref.location, f"secret {ref.text}: {exc}")
        return None
