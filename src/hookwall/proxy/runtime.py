"""What every addon needs at run time: the current policy, the resolver, our own addresses.

The policy is an immutable object behind a single reference; a reload swaps the reference and
each flow keeps the snapshot it started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hookwall.netguard.resolver import Resolver
from hookwall.netguard.selfaddr import SelfAddresses
from hookwall.policy import Policy


@dataclass(slots=True)
class Runtime:
    policy: Policy
    resolver: Resolver
    self_addresses: SelfAddresses = field(default_factory=SelfAddresses)
