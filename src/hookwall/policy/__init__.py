"""Policy: which destinations webhooks may reach, and how (pure Python, no mitmproxy).

Modules: ``yamlload`` (YAML with positions), ``schema`` (per-file validation), ``load``
(files and directories), ``match`` (host patterns), ``model`` (frozen values),
``summary`` (``hookwall check`` text), ``errors`` (located issues).
"""

from hookwall.config.errors import Location, PolicyError, PolicyIssue
from hookwall.destinations.match import HostMatcher, canonical_pattern
from hookwall.policy.load import default_policy_path, load_default_policy, load_policy
from hookwall.policy.model import (
    Action,
    DnsSettings,
    NetworkSettings,
    Policy,
    PortSet,
    Rule,
    Settings,
    SigningSettings,
    TlsMode,
)
from hookwall.policy.summary import summarize

__all__ = [
    "Action",
    "DnsSettings",
    "HostMatcher",
    "Location",
    "NetworkSettings",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "PortSet",
    "Rule",
    "Settings",
    "SigningSettings",
    "TlsMode",
    "canonical_pattern",
    "default_policy_path",
    "load_default_policy",
    "load_policy",
    "summarize",
]
