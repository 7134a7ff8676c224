"""Policy: which destinations webhooks may reach, and how (pure Python, no mitmproxy).

The policy only composes: each section is parsed by its concern's ``settings`` (on the
generic ``config.checker``). Modules: ``schema`` (one file's walk, dispatching each
section), ``rules`` (``defaults`` and ``destinations`` entries), ``spec`` (what one file
contributes), ``load`` (files and directories, the checks across files), ``model`` (the
frozen ``Policy``, ``Rule`` and merged ``Settings``), ``selection`` (which rule applies to a
host and sender), ``summary`` (``hookwall check`` text).

The settings types the policy exported before the re-cut are re-exported here from their
concerns, so callers that import them from ``hookwall.policy`` keep working.
"""

from hookwall.config.errors import Location, PolicyError, PolicyIssue
from hookwall.destinations.settings import DnsSettings, NetworkSettings, PortSet, TlsMode
from hookwall.policy.load import default_policy_path, load_default_policy, load_policy
from hookwall.policy.model import Action, Policy, Rule, Selection, Settings
from hookwall.policy.summary import summarize
from hookwall.signing.settings import SigningSettings

__all__ = [
    "Action",
    "DnsSettings",
    "Location",
    "NetworkSettings",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "PortSet",
    "Rule",
    "Selection",
    "Settings",
    "SigningSettings",
    "TlsMode",
    "default_policy_path",
    "load_default_policy",
    "load_policy",
    "summarize",
]
