"""connect_refusals: where a CONNECT the destination decision refuses is answered, set in the
defaults and per destination, merged like every other setting, and shown by ``hookwall check``.

(Its bad values, with file:line:col, are tests/policies/bad/connect-refusals.yaml's; what the
proxy does with it is tests/unit/destinations/test_refusals.py's.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hookwall.policy import PolicyError, load_policy, summarize
from tests.unit.support.flows import load

POLICY = """\
version: 1
defaults:
  connect_refusals: {default}
destinations:
  - hosts: [inherits.example]
  - hosts: [on-connect.example]
    connect_refusals: on-connect
  - hosts: [inside.example]
    connect_refusals: inside-tls
  - hosts: [passthrough.example]
    tls: passthrough
    connect_refusals: on-connect
  - hosts: [denied.example]
    action: deny
    connect_refusals: on-connect
"""


@pytest.mark.parametrize("default", ["inside-tls", "on-connect"])
def test_a_destination_writes_only_what_differs_from_the_defaults(
    tmp_path: Path, default: str
) -> None:
    policy = load(tmp_path, POLICY.format(default=default))
    assert policy.defaults.connect_refusals == default
    assert policy.settings_for("inherits.example").connect_refusals == default
    assert policy.settings_for("elsewhere.example").connect_refusals == default  # no rule
    assert policy.settings_for("on-connect.example").connect_refusals == "on-connect"
    assert policy.settings_for("inside.example").connect_refusals == "inside-tls"


def test_the_default_is_inside_tls(tmp_path: Path) -> None:
    policy = load(tmp_path, "version: 1\n")
    assert policy.defaults.connect_refusals == "inside-tls"
    assert policy.settings_for("any.example").connect_refusals == "inside-tls"


def test_passthrough_merged_from_the_defaults_is_no_error(tmp_path: Path) -> None:
    """inside-tls in the defaults and tls: passthrough in a destination: passthrough wins
    (its refusals are on the CONNECT), the policy loads."""
    text = (
        "version: 1\ndefaults: {connect_refusals: inside-tls}\n"
        "destinations:\n  - hosts: [p.example]\n    tls: passthrough\n"
    )
    policy = load(tmp_path, text)
    assert policy.settings_for("p.example").tls == "passthrough"


def test_inside_tls_next_to_passthrough_in_the_defaults_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\ndefaults:\n  tls: passthrough\n  connect_refusals: inside-tls\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    [issue] = caught.value.issues
    assert issue.location is not None and (issue.location.line, issue.location.column) == (4, 21)
    assert "defaults.connect_refusals: inside-tls needs tls: intercept" in issue.message
    assert "remove connect_refusals or use tls: intercept" in issue.message


def test_check_shows_it_next_to_tls(tmp_path: Path) -> None:
    lines = summarize(load(tmp_path, POLICY.format(default="inside-tls"))).splitlines()
    [defaults] = [line for line in lines if line.startswith("defaults:")]
    assert "; tls intercept, connect_refusals inside-tls; " in defaults
    rules = {line.split(":")[0].strip(): line for line in lines if line.startswith("  ")}
    assert "; tls intercept, connect_refusals inside-tls; " in rules["inherits.example"]
    assert "; tls intercept, connect_refusals on-connect; " in rules["on-connect.example"]
    # passthrough: always on the CONNECT, nothing more to say
    assert "; tls passthrough; " in rules["passthrough.example"]
    assert "connect_refusals" not in rules["passthrough.example"]
    # a deny rule shows where a CONNECT to it is refused, and nothing else
    denied = "denied.example: deny denied.example; tls intercept, connect_refusals on-connect  ["
    assert denied in rules["denied.example"]
