"""Framing rules for HTTP/1 message heads: one reading of a head, or a refusal.

A proxy that forwards a head its receiver may frame differently (an obs-fold line, a bare CR,
two Content-Lengths, Content-Length with Transfer-Encoding, ``Transfer-Encoding: xchunked``)
lets a sender smuggle a second, unsigned and unlogged request past it (RFC 9112 section 11.2).
hookwall is a chokepoint, so it refuses every head that is not unambiguous, including those
RFC 9112 lets a recipient repair (obs-fold may be replaced by SP; identical duplicate
Content-Lengths may be merged): a repair would still forward something the sender did not
mean, and webhook senders never need either.

The check reads the head the way mitmproxy's parser (h11's buffer) splits it: empty lines
before the start line are skipped, lines end at LF with one optional CR before it. A bare-LF
line end is accepted: mitmproxy forwards heads re-assembled with CRLF, so it cannot reach a
receiver. A valid head costs one compiled-regex match over all of it and one scan for the
fields that frame it; the line-by-line diagnosis runs only on a refusal.
Pure: no mitmproxy here (``mitm/http1guard.py`` applies it to the bytes mitmproxy parses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hookwall.core.denials import Reason

# The two codes a sender's head is refused with here.
BAD_FRAMING = Reason.BAD_FRAMING
INVALID_HOST = Reason.INVALID_HOST

_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
# name ":" value, the value (OWS included) without a CTL other than HTAB.
_FIELD_TEXT = rb"[" + _TCHAR + rb"]+:[^\x00-\x08\x0a-\x1f\x7f]*"
_REQUEST_TEXT = rb"([" + _TCHAR + rb"]+) ([\x21-\x7e]+) HTTP/1\.([01])"
_STATUS_TEXT = rb"HTTP/1\.([01]) [0-9]{3}(?: [\t \x21-\x7e\x80-\xff]*)?"
# A whole head in one match (the common case costs one pass in C), lines ending LF or CRLF.
_REQUEST_HEAD = re.compile(_REQUEST_TEXT + rb"(?:\r?\n" + _FIELD_TEXT + rb")*\r?\Z")
_RESPONSE_HEAD = re.compile(_STATUS_TEXT + rb"(?:\r?\n" + _FIELD_TEXT + rb")*\r?\Z")
# In a head that matched: the fields that decide framing, and their raw values.
_FRAMING_FIELD = re.compile(rb"\n(content-length|transfer-encoding|host):([^\r\n]*)", re.I)
# Per line, to say which line broke a rule and how (only on a refusal).
_FIELD = re.compile(_FIELD_TEXT + rb"\Z")
_REQUEST_LINE = re.compile(_REQUEST_TEXT + rb"\Z")
_STATUS_LINE = re.compile(_STATUS_TEXT + rb"\Z")
_TOKEN = re.compile(rb"[" + _TCHAR + rb"]+\Z")
_CONTENT_LENGTH = re.compile(rb"(?:0|[1-9][0-9]{0,17})\Z")
# host [":" port]: a registered name of unreserved characters, or an IP literal in brackets.
_AUTHORITY = re.compile(rb"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\Z")
# h11's end of a head: an empty line after a line's LF (``h11._receivebuffer``).
_BLANK_LINE = re.compile(rb"\n\r?\n")
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

_CONTENT_LENGTH_NAME = b"content-length"
_TRANSFER_ENCODING_NAME = b"transfer-encoding"


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a head is refused: a reason code (``core/denials.py``), a sentence naming the fault."""

    reason: Reason
    message: str


def split_head(buffered: bytes) -> tuple[int, bytes] | None:
    """Where the first complete head in ``buffered`` starts and its text (up to, not including,
    the blank line), as h11 finds it; None while the blank line has not arrived."""
    start = skip_empty_lines(buffered)
    end = _BLANK_LINE.search(buffered, start)
    return None if end is None else (start, buffered[start : end.start()])


def skip_empty_lines(buffered: bytes) -> int:
    """How many bytes of empty lines (LF or CRLF) come before the start line."""
    start = 0
    while True:
        if buffered.startswith(b"\n", start):
            start += 1
        elif buffered.startswith(b"\r\n", start):
            start += 2
        else:
            return start


def request_problem(head: bytes) -> Problem | None:
    """None if this request head (``split_head``'s text) has exactly one framing."""
    matched = _REQUEST_HEAD.match(head)
    if matched is None:
        return _syntax_fault(head, "request")
    method, target, minor = matched.groups()
    problem = _target_problem(method, target)
    if problem is not None:
        return problem
    # RFC 9112 section 3.2: an HTTP/1.1 request without Host is refused (CONNECT is spared:
    # its target is the authority, and some tunnelling clients leave Host out).
    needs_host = minor == b"1" and method != b"CONNECT"
    return _framing_fields(head, "request", http10=minor == b"0", request=True, host=needs_host)


def response_problem(head: bytes) -> Problem | None:
    """None if this response head (``split_head``'s text) has exactly one framing."""
    matched = _RESPONSE_HEAD.match(head)
    if matched is None:
        return _syntax_fault(head, "response")
    return _framing_fields(head, "response", http10=matched.group(1) == b"0", request=False)


def head_lines(head: bytes) -> list[bytes]:
    """The lines of ``split_head``'s text as h11 hands them to mitmproxy (one CR dropped)."""
    lines = head.split(b"\n")
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _framing_fields(
    head: bytes, what: str, *, http10: bool, request: bool, host: bool = False
) -> Problem | None:
    """The fields that frame the message, in a head whose every line is well-formed;
    ``host``: the request must have a Host field."""
    lengths = encodings = hosts = 0
    for matched in _FRAMING_FIELD.finditer(head):
        lowered, raw = matched.group(1).lower(), matched.group(2)
        value = raw.strip(b" \t")
        if lowered == _CONTENT_LENGTH_NAME:
            lengths += 1
            if lengths > 1:
                return _bad(
                    f"{what} has more than one Content-Length field (refused even when they "
                    "agree): send exactly one"
                )
            if not _CONTENT_LENGTH.match(value) or b"\t" in raw:
                return _bad(
                    f"{what} Content-Length {_shown(value)} is not a plain decimal number "
                    "(digits only, no sign, list, leading zero or tab)"
                )
        elif lowered == _TRANSFER_ENCODING_NAME:
            encodings += 1
            if encodings > 1:
                return _bad(f"{what} has more than one Transfer-Encoding field: send exactly one")
            if value.lower() != b"chunked" or b"\t" in raw:
                return _bad(
                    f"{what} Transfer-Encoding {_shown(value)} is refused: hookwall accepts "
                    "exactly 'chunked' (no other or repeated coding, no tab)"
                )
            if http10:
                return _bad(
                    f"{what} is HTTP/1.0 with Transfer-Encoding, which HTTP/1.0 does not "
                    "define: use HTTP/1.1 or Content-Length"
                )
        elif request:  # Host
            hosts += 1
            if hosts > 1:
                return _bad("request has more than one Host field: send exactly one")
    if lengths and encodings:
        return _bad(
            f"{what} has both Content-Length and Transfer-Encoding: send one of them "
            "(Content-Length for a body of known size, else 'Transfer-Encoding: chunked')"
        )
    if host and not hosts:
        return _bad("HTTP/1.1 request without a Host field: send Host (RFC 9112 section 3.2)")
    return None


def _syntax_fault(head: bytes, what: str) -> Problem:
    """The first line of a head that failed the whole-head pattern, and what is wrong with it
    (only runs on a refusal)."""
    lines = head_lines(head)
    start = lines[0]
    if what == "request":
        if not _REQUEST_LINE.match(start):
            return _bad(f"invalid request line {_shown(start)}: {_request_line_fault(start)}")
    elif not _STATUS_LINE.match(start):
        return _bad(f"invalid status line {_shown(start)}: expected 'HTTP/1.1 <3 digits> <reason>'")
    for line in lines[1:]:
        if not _FIELD.match(line):
            return _bad(f"{what} {_line_shown(line)}: {_field_fault(line)}")
    return _bad(f"the {what} head is malformed")  # not reached: the patterns agree


def _target_problem(method: bytes, target: bytes) -> Problem | None:
    if target.startswith(b"/") or (target == b"*" and method == b"OPTIONS"):
        return None if method != b"CONNECT" else _bad("CONNECT needs a host:port target")
    if method == b"CONNECT":
        authority = target
    else:
        scheme, sep, rest = target.partition(b"://")
        if not sep or not _TOKEN.match(scheme):
            return _bad(
                f"invalid request-target {_shown(target)}: expected '/path', "
                "'http://host/path' or, for CONNECT, 'host:port'"
            )
        authority = rest.split(b"/", 1)[0].split(b"?", 1)[0].split(b"#", 1)[0]
    if _AUTHORITY.match(authority):
        return None
    if b"@" in authority:
        fault = "user information ('@') is not allowed in the host"
    elif b"%" in authority:
        fault = "percent-encoding ('%') is not allowed in the host"
    else:
        fault = "the host has characters outside letters, digits, '.', '-', '_' and '~'"
    host = authority.rpartition(b"@")[2]  # never the user information: it may be a token
    return Problem(INVALID_HOST, f"invalid host {_shown(host)} in the request line: {fault}")


def _request_line_fault(line: bytes) -> str:
    if b"\r" in line:
        return "it contains a bare CR"
    if _CTL.search(line):
        return "it contains a control character"
    parts = line.split(b" ")
    if len(parts) != 3 or not all(parts):
        return "expected 'METHOD target HTTP/1.1', separated by single spaces"
    method, target, version = parts
    if not _TOKEN.match(method):
        return f"the method {_shown(method)} is not a token"
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        return f"the version {_shown(version)} is not HTTP/1.0 or HTTP/1.1"
    return f"the request-target {_shown(target)} has characters outside printable ASCII"


def _field_fault(line: bytes) -> str:
    if not line:
        return "empty line"  # not reachable from split_head, which ends the head there
    if line[:1] in (b" ", b"\t"):
        return "obs-fold (a line continued by leading whitespace) is refused: use one line"
    if b"\r" in line:
        return "a bare CR (not followed by LF) is refused"
    if b"\x00" in line:
        return "a NUL byte is refused"
    if _CTL.search(line):
        return "a control character is refused (only HTAB is allowed, in values)"
    name, colon, _ = line.partition(b":")
    if not colon:
        return "no ':' after the field name"
    if not name:
        return "empty field name"
    if name.rstrip(b" \t") != name:
        return "whitespace between the field name and ':' is refused"
    return f"the field name {_shown(name)} is not a token"


def _bad(message: str) -> Problem:
    return Problem(BAD_FRAMING, message)


def _line_shown(line: bytes) -> str:
    """Which header line, by its field name only: a value may be a credential, and the
    message goes to the sender, the log and the store."""
    if line[:1] in (b" ", b"\t"):
        return "header line continuing the previous field"
    name, colon, _ = line.partition(b":")
    return f"header field {_shown(name, 40)}" if colon else "header line without ':'"


def _shown(data: bytes, limit: int = 80) -> str:
    """A short, escaped rendering of hostile bytes for a message."""
    text = repr(data[:limit])[2:-1]
    return f"'{text}...'" if len(data) > limit else f"'{text}'"
