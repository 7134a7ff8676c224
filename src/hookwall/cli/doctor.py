"""``hookwall doctor``: run in a sender's environment (its container, its shell), it says whether
that environment's webhooks reach hookwall and trust its CA, and how to fix what does not.

The checks are ``cli/doctorchecks.py``'s and the probes ``cli/doctorprobe.py``'s; this prints
them. Exit 0 when all is well, 1 when any problem was found, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from hookwall.cli.command import Subcommands, add_command
from hookwall.cli.doctorchecks import Finding, Report, diagnose, parse_proxy_url
from hookwall.cli.doctorprobe import NetworkProbes
from hookwall.cli.terminal import BOLD, DIM, GREEN, RED, RESET, YELLOW, clean, safe, use_colour

DESCRIPTION = """\
Check, from a sender's environment, the way its webhooks take to hookwall: the proxy
variables (both cases, as different clients read different ones), NO_PROXY, the proxy's
credentials, and the CA bundles each stack reads. It asks hookwall.invalid, a name hookwall
answers itself (nothing leaves the proxy): once over http:// to see hookwall and as which
sender it knows you, and once over https:// per CA bundle, a real TLS handshake trusting
that bundle only. Every problem comes with the line that fixes it. Run it where the sender
runs (e.g. kubectl exec ... -- hookwall doctor), not on hookwall's host."""

EPILOG = """\
what is read:
  http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
  SSL_CERT_FILE SSL_CERT_DIR (OpenSSL: Python, Ruby, curl, Go on Linux)
  REQUESTS_CA_BUNDLE (Python requests)  CURL_CA_BUNDLE (curl, requests)
  NODE_EXTRA_CA_CERTS (Node.js, added to its roots)

examples:
  hookwall doctor                           check this environment
  hookwall doctor --json                    the same, for machines (exit status as below)
  hookwall doctor --proxy http://billing:TOKEN@hookwall:8080   try a proxy before setting it
  hookwall doctor --destination https://hooks.acme.com/x      does NO_PROXY exempt it?
  curl -x "$http_proxy" http://hookwall.invalid/whoami   what hookwall says, by hand

exit status: 0 all is well, 1 a problem was found, 2 a usage error.
Tokens in proxy URLs are never printed (shown as ****)."""


def register(commands: Subcommands) -> None:
    doctor = add_command(
        commands,
        "doctor",
        cmd_doctor,
        help="check a sender's proxy variables, credentials and CA trust",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument(
        "--proxy",
        metavar="URL",
        type=_proxy,
        help="probe this proxy (http://[NAME:TOKEN@]HOST:PORT) instead of the environment's",
    )
    doctor.add_argument(
        "--destination",
        metavar="URL",
        type=_destination,
        action="append",
        default=[],
        help="a receiver this sender delivers to: is it exempted by NO_PROXY? (repeatable)",
    )
    doctor.add_argument(
        "--timeout",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="for each connection and answer (default %(default)s)",
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help=argparse.SUPPRESS
    )


def _proxy(text: str) -> str:
    """A proxy URL doctor can send to (an https:// one is tried, and reported, as http://)."""
    found = parse_proxy_url("--proxy", text)
    if found.error is not None:
        raise argparse.ArgumentTypeError(f"{found.masked}: {found.error}")
    return text


def _destination(text: str) -> str:
    parts = urlsplit(text if "://" in text else f"https://{text}")
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected an http(s):// URL, got {text!r}")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("expected seconds between 0 and 600")
    return value


def cmd_doctor(args: argparse.Namespace) -> int:
    report = diagnose(
        os.environ,
        NetworkProbes(args.timeout),
        override=args.proxy,
        destinations=args.destination,
    )
    if args.json:
        print(json.dumps(safe(report.document()), indent=2))
    else:
        print(render(report, colour=use_colour(args, sys.stdout)))
    return 1 if report.problems else 0


_TOPICS = {
    "proxy": "proxy variables",
    "no_proxy": "NO_PROXY",
    "whoami": "through the proxy",
    "credentials": "proxy credentials",
    "ca": "CA trust (a TLS handshake with hookwall.invalid per bundle)",
}
_LABEL = {"ok": "ok", "problem": "PROBLEM", "note": "note", "info": "-"}
_COLOUR = {"ok": GREEN, "problem": RED, "note": YELLOW, "info": DIM}


def render(report: Report, *, colour: bool = False) -> str:
    """The report for a person: grouped by topic, each problem followed by its fix."""
    lines = ["hookwall doctor: the way from this environment to hookwall"]
    for topic, title in _TOPICS.items():
        group = [f for f in report.findings if f.topic == topic]
        if not group:
            continue
        lines += ["", _paint(title, BOLD, colour)]
        for finding in group:
            lines += _lines(finding, colour)
    lines.append("")
    if report.problems:
        plural = "s" if report.problems > 1 else ""
        summary = f"{report.problems} problem{plural} found; each is followed by its fix."
        lines.append(_paint(summary, RED, colour))
    else:
        lines.append(_paint("all is well.", GREEN, colour))
    return "\n".join(lines)


def _lines(finding: Finding, colour: bool) -> Sequence[str]:
    label = _paint(f"{_LABEL[finding.status]:<8}", _COLOUR[finding.status], colour)
    out = [f"  {label} {clean(finding.subject)}: {clean(finding.message)}"]
    if finding.fix:
        for index, line in enumerate(finding.fix.splitlines()):
            out.append(f"  {'':<8} {'fix:' if index == 0 else '    '} {clean(line)}")
    return out


def _paint(text: str, code: str, colour: bool) -> str:
    return f"{code}{text}{RESET}" if colour else text
