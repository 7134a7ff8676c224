"""The top-level ``limits`` section: where flood-control state lives when several replicas
must enforce one cap.

```yaml
limits:
  backend: "redis://hookwall-redis:6379/0"   # or rediss:// (TLS)
  on_backend_failure: local                  # local (default) | refuse
  password: env:HOOKWALL_REDIS_PASSWORD      # optional; never in the URL
  lease: 10s                                 # a dead replica's slots come back after this
  timeout: 500ms                             # one Redis round trip; slower counts as down
```

Per-destination caps stay in ``defaults.limits`` and ``destinations[].limits``; this section
only says where their state is kept. It is read at start: changing it needs a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args
from urllib.parse import urlsplit

from hookwall.config.checker import Checker
from hookwall.config.secrets import LITERAL, SECRET_REFERENCE, SecretRef, read_secret
from hookwall.config.shapes import Duration, Fields, OneOf, Text
from hookwall.config.yamlnodes import YNode, YScalar
from hookwall.limits.settings import LIMIT_KEYS as _PER_DESTINATION

__all__ = ["SHARED_LIMITS", "BackendFailure", "SharedLimits", "check_shared_limits"]

BackendFailure = Literal["local", "refuse"]
_SCHEMES = ("redis", "rediss")
SHARED_LIMITS = Fields(
    {
        "backend": Text(
            "a URL like 'redis://redis:6379/0'",
            rf"^\s*(?:{'|'.join(_SCHEMES)})://",
            doc="where limits are shared: redis://HOST:PORT/DB or rediss:// (TLS)",
        ),
        "on_backend_failure": OneOf(
            get_args(BackendFailure),
            doc="local (default): each process enforces the limits alone while it is down; "
            "refuse: deliveries get 503",
        ),
        "password": SECRET_REFERENCE,
        "lease": Duration(True, doc="how long a slot is held without renewal (>= 500ms)"),
        "timeout": Duration(True, doc="per call to the backend (default 500ms)"),
    },
    required=("backend",),
    doc="where flood-control state is shared between processes and replicas",
)


@dataclass(frozen=True, slots=True, repr=False)
class SharedLimits:
    """Where per-destination limits are shared; ``password`` is the resolved secret."""

    backend: str  # redis://host:port/db, without credentials (safe to log)
    on_backend_failure: BackendFailure = "local"
    lease: float = 10.0
    timeout: float = 0.5
    password_ref: str | None = None  # "env:NAME" as written
    password: str | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return (
            f"SharedLimits({self.backend!r}, on_backend_failure={self.on_backend_failure!r}, "
            f"lease={self.lease}, timeout={self.timeout}, password={self.password_ref!r})"
        )


def _backend_url(checker: Checker, node: YNode) -> str | None:
    text = checker.string(node, "limits.backend", "a URL like 'redis://redis:6379/0'")
    if text is None:
        return None
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        checker.issue(node.location, f"limits.backend: not a valid URL: {exc}")
        return None
    problem = None
    if parts.scheme not in _SCHEMES:
        problem = f"the scheme must be redis:// or rediss:// (TLS), not {parts.scheme or 'none'}"
    elif parts.password is not None:
        problem = (
            "the URL holds a password, a secret; put it in an environment variable or a file "
            "and write password: env:NAME (or file:PATH) in this section"
        )
    elif not parts.hostname:
        problem = "no host; write redis://HOST:PORT/DB"
    elif parts.query or parts.fragment:
        problem = "query parameters are not supported; use the keys of this section"
    elif parts.path not in ("", "/") and not parts.path[1:].isdigit():
        problem = f"the path must be a database number like /0, not {parts.path!r}"
    if problem is not None:
        # Never echo the URL: it may hold a password written by mistake.
        checker.issue(node.location, f"limits.backend: {problem}")
        return None
    del port  # read for its validation only
    return text.strip()


def _password(checker: Checker, node: YNode) -> tuple[str | None, str | None]:
    if not (isinstance(node, YScalar) and isinstance(node.value, str)):
        checker.issue(node.location, f"limits.password: {LITERAL}")
        return None, None
    text = node.value.strip()
    if not text.startswith(("env:", "file:")) or not text.split(":", 1)[1]:
        checker.issue(node.location, f"limits.password: {LITERAL}")
        return None, None
    return text, read_secret(checker, SecretRef(text, node.location, None))


def check_shared_limits(checker: Checker, node: YNode) -> SharedLimits | None:
    mapping = checker.mapping(node, "limits")
    if mapping is None:
        return None
    entries = mapping.entries
    for key, entry in entries.items():
        if key in _PER_DESTINATION:
            checker.issue(
                entry.key_location,
                f"limits.{key}: per-destination limits go in defaults.limits or "
                "destinations[].limits; the top-level limits section only says where they are "
                "shared (backend)",
            )
    checker.keys(
        mapping, "limits", (*SHARED_LIMITS.names, *(k for k in entries if k in _PER_DESTINATION))
    )
    if "backend" not in entries:
        checker.issue(
            mapping.location,
            "limits: missing 'backend', e.g. backend: \"redis://redis:6379/0\" (per-destination "
            "caps go in defaults.limits and destinations[].limits)",
        )
        return None
    backend = _backend_url(checker, entries["backend"].value)
    settings = SharedLimits(backend or "redis://invalid")
    on_failure: BackendFailure = "local"
    if "on_backend_failure" in entries:
        where = "limits.on_backend_failure"
        choices: tuple[BackendFailure, ...] = ("local", "refuse")
        on_failure = checker.choice(entries["on_backend_failure"].value, where, choices) or "local"
    lease, timeout = settings.lease, settings.timeout
    if "lease" in entries:
        lease = checker.duration(entries["lease"].value, "limits.lease", positive=True) or lease
        if lease < 0.5:
            checker.issue(entries["lease"].value.location, "limits.lease: must be at least 500ms")
    if "timeout" in entries:
        value = checker.duration(entries["timeout"].value, "limits.timeout", positive=True)
        timeout = value or timeout
    ref = password = None
    if "password" in entries:
        ref, password = _password(checker, entries["password"].value)
    return SharedLimits(
        settings.backend,
        on_backend_failure=on_failure,
        lease=lease,
        timeout=timeout,
        password_ref=ref,
        password=password,
    )
