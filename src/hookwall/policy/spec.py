"""What one policy file contributes, as written: the specs ``schema`` fills and ``load``
combines across the files of a policy directory.

Sections a file may define once per policy are kept with where they were written, so a
second definition in another file is an error naming both places.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hookwall.access.settings import Sender, SenderRef
from hookwall.bounds.settings import ProxySettings
from hookwall.config.errors import Location
from hookwall.config.overrides import Override
from hookwall.deliveries.settings import LoggingSettings
from hookwall.destinations.addresses import Prefix
from hookwall.destinations.settings import ConnectRefusals, DnsSettings, PortSet, TlsMode
from hookwall.limits.shared_settings import SharedLimits
from hookwall.policy.model import Rule

__all__ = ["DefaultsSpec", "FileSpec", "FloodSpec", "HostSpec"]


@dataclass(slots=True)
class FloodSpec:
    """limits/timeouts/body caps/redirects/retries as written (field-wise overrides)."""

    limits: Override = ()
    timeouts: Override = ()
    max_request_body: int | None = None
    max_response_body: int | None = None
    redirects: Override = ()
    retries: Override = ()


@dataclass(slots=True)
class DefaultsSpec:
    """The ``defaults`` section as written; None means "not given, use the built-in"."""

    location: Location
    deny: tuple[Prefix, ...] | None = None
    allow: tuple[Prefix, ...] | None = None
    ports: PortSet | None = None
    tls: TlsMode | None = None
    connect_refusals: ConnectRefusals | None = None
    upgrade: bool | None = None
    ca_bundle: str | None = None
    flood: FloodSpec = field(default_factory=FloodSpec)


@dataclass(slots=True)
class HostSpec:
    """One canonical host pattern and where it was written, for duplicate messages."""

    pattern: str
    location: Location
    path: str
    rule_name: str
    senders: tuple[str, ...] = ()  # the rule's sender scope: a pattern is unique per scope


@dataclass(slots=True)
class FileSpec:
    """Everything one file contributes to a policy."""

    file: str
    unsafe: bool = False
    dns: tuple[DnsSettings, Location] | None = None
    proxy: tuple[ProxySettings, Location] | None = None
    logging: tuple[LoggingSettings, Location] | None = None
    shared_limits: tuple[SharedLimits, Location] | None = None  # top-level limits: (backend)
    defaults: DefaultsSpec | None = None
    rules: list[Rule] = field(default_factory=list)
    hosts: list[HostSpec] = field(default_factory=list)
    senders: list[Sender] = field(default_factory=list)
    senders_none: Location | None = None  # ``senders: none``: no credentials, on purpose
    sender_refs: list[SenderRef] = field(default_factory=list)  # names used by destinations
    # Where each allow row was written (location, path): coverage errors point at rows.
    allow_rows: dict[Prefix, tuple[Location, str]] = field(default_factory=dict)
