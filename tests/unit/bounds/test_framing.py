"""The framing rules' pure judgement (through the real proxy: tests/integration/test_framing.py)."""

from __future__ import annotations

import pytest

from hookwall.bounds.framing import (
    BAD_FRAMING,
    INVALID_HOST,
    request_problem,
    response_problem,
    split_head,
)

GET = b"GET http://a.test/x HTTP/1.1\r\nHost: a.test\r"


def head(*fields: bytes, start: bytes = b"POST http://a.test/x HTTP/1.1") -> bytes:
    """``split_head``'s text: lines joined by CRLF, the last one's CR kept."""
    return b"\r\n".join([start, *fields]) + b"\r"


@pytest.mark.parametrize(
    ("text", "reason", "words"),
    [
        # valid
        (GET, None, None),
        (head(b"Host: a", b"X: a\tb"), None, None),  # HTAB inside a value
        (head(b"Host: a", b"X: caf\xe9"), None, None),  # obs-text
        (head(b"Host: a", b"X:"), None, None),  # empty value
        (head(b"Host: a", b"Transfer-Encoding: Chunked"), None, None),
        (head(b"Host: a", b"Content-Length:  12 "), None, None),  # spaces around a length
        (head(b"Host: a", b"Content-Length: 0"), None, None),
        (head(b"Content-Length: 0"), BAD_FRAMING, "without a Host field"),  # RFC 9112 3.2
        (head(b"Content-Length: 0", start=b"POST /x HTTP/1.0"), None, None),  # 1.0: optional
        (head(start=b"CONNECT a.test:443 HTTP/1.1"), None, None),  # the target is the host
        (head(start=b"CONNECT a.test:443 HTTP/1.1"), None, None),
        (head(b"Host: a", start=b"OPTIONS * HTTP/1.1"), None, None),
        (head(start=b"GET /origin?q=1 HTTP/1.0"), None, None),
        (head(b"Host: [::1]:8080", start=b"GET http://[::1]:8080/ HTTP/1.1"), None, None),
        (b"GET / HTTP/1.1\nHost: a", None, None),  # bare LF line ends
        # obs-fold, CR, NUL, controls
        (head(b"X: a", b" b"), BAD_FRAMING, "obs-fold"),
        (head(b"X: a", b"\tb"), BAD_FRAMING, "obs-fold"),
        (head(b"X: a\rb"), BAD_FRAMING, "bare CR"),
        (head(b"X: a\r"), BAD_FRAMING, "bare CR"),  # CR CR LF
        (head(b"X: a\x00"), BAD_FRAMING, "NUL"),
        (head(b"X\x00: a"), BAD_FRAMING, "NUL"),
        (head(b"X: a\x1bb"), BAD_FRAMING, "control character"),
        (head(b"X: a\x7f"), BAD_FRAMING, "control character"),
        (head(b"X: a\x0cb"), BAD_FRAMING, "control character"),
        # field names
        (head(b"Content-Length : 2"), BAD_FRAMING, "whitespace between"),
        (head(b"Content-Length\t: 2"), BAD_FRAMING, "whitespace between"),
        (head(b": x"), BAD_FRAMING, "empty field name"),
        (head(b"X-A b"), BAD_FRAMING, "no ':'"),
        (head(b"X(A): b"), BAD_FRAMING, "not a token"),
        (head(b"X\xe9: b"), BAD_FRAMING, "not a token"),
        # Content-Length
        (head(b"Content-Length: 2", b"Content-Length: 2"), BAD_FRAMING, "more than one"),
        (head(b"Content-Length: 2", b"content-length: 3"), BAD_FRAMING, "more than one"),
        (head(b"Content-Length: 2, 2"), BAD_FRAMING, "plain decimal"),
        (head(b"Content-Length: -1"), BAD_FRAMING, "plain decimal"),
        (head(b"Content-Length: +2"), BAD_FRAMING, "plain decimal"),
        (head(b"Content-Length: 0x10"), BAD_FRAMING, "plain decimal"),
        (head(b"Content-Length: 02"), BAD_FRAMING, "plain decimal"),
        (head(b"Content-Length:"), BAD_FRAMING, "plain decimal"),
        (head(b"Content-Length:\t2"), BAD_FRAMING, "plain decimal"),
        (head(b"Content-Length: 1" + b"0" * 18), BAD_FRAMING, "plain decimal"),
        # Transfer-Encoding
        (head(b"Content-Length: 3", b"Transfer-Encoding: chunked"), BAD_FRAMING, "both"),
        (head(b"Transfer-Encoding: chunked", b"Content-Length: 3"), BAD_FRAMING, "both"),
        (head(b"Transfer-Encoding: chunked, chunked"), BAD_FRAMING, "exactly 'chunked'"),
        (head(b"Transfer-Encoding: gzip, chunked"), BAD_FRAMING, "exactly 'chunked'"),
        (head(b"Transfer-Encoding: identity"), BAD_FRAMING, "exactly 'chunked'"),
        (head(b"Transfer-Encoding: xchunked"), BAD_FRAMING, "exactly 'chunked'"),
        (head(b"Transfer-Encoding: chunked;x=1"), BAD_FRAMING, "exactly 'chunked'"),
        (head(b"Transfer-Encoding:\tchunked"), BAD_FRAMING, "exactly 'chunked'"),
        (head(b"Transfer-Encoding: \x0bchunked"), BAD_FRAMING, "control character"),
        (
            head(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"),
            BAD_FRAMING,
            "more than one Transfer-Encoding",
        ),
        (
            head(b"Transfer-Encoding: chunked", start=b"POST / HTTP/1.0"),
            BAD_FRAMING,
            "HTTP/1.0",
        ),
        # Host, request line
        (head(b"Host: a", b"host: b"), BAD_FRAMING, "more than one Host"),
        (head(start=b"G(T / HTTP/1.1"), BAD_FRAMING, "not a token"),
        (head(start=b"GET / HTTP/1.2"), BAD_FRAMING, "not HTTP/1.0 or HTTP/1.1"),
        (head(start=b"GET / HTTP/2.0"), BAD_FRAMING, "not HTTP/1.0 or HTTP/1.1"),
        (head(start=b"GET / http/1.1"), BAD_FRAMING, "not HTTP/1.0 or HTTP/1.1"),
        (head(start=b"GET  / HTTP/1.1"), BAD_FRAMING, "single spaces"),
        (head(start=b"GET\t/ HTTP/1.1"), BAD_FRAMING, "single spaces"),
        (head(start=b"GET / HTTP/1.1 "), BAD_FRAMING, "single spaces"),
        (head(start=b"GET /\xff HTTP/1.1"), BAD_FRAMING, "printable ASCII"),
        (head(start=b"GET a.test/x HTTP/1.1"), BAD_FRAMING, "request-target"),
        (head(start=b"CONNECT / HTTP/1.1"), BAD_FRAMING, "host:port"),
        (head(start=b"HELLO"), BAD_FRAMING, "single spaces"),
        (b"GET / HTTP/1.1\rX: y\r\nHost: a\r", BAD_FRAMING, "bare CR"),
        # hosts in the request line
        (head(start=b"GET http://u@a.test/ HTTP/1.1"), INVALID_HOST, "'@'"),
        (head(start=b"GET http://u:p@a.test/ HTTP/1.1"), INVALID_HOST, "'@'"),
        (head(start=b"GET http://a%2etest/ HTTP/1.1"), INVALID_HOST, "'%'"),
        (head(start=b"CONNECT u@a.test:443 HTTP/1.1"), INVALID_HOST, "'@'"),
        (head(start=b"GET http://a.test:/ HTTP/1.1"), INVALID_HOST, "outside"),
        (head(start=b"GET http:///x HTTP/1.1"), INVALID_HOST, "outside"),
        (head(start=b"GET http://a!b.test/ HTTP/1.1"), INVALID_HOST, "outside"),
    ],
)
def test_request_problem(text: bytes, reason: str | None, words: str | None) -> None:
    problem = request_problem(text)
    if reason is None:
        assert problem is None
        return
    assert problem is not None and problem.reason == reason, problem
    assert words is not None and words in problem.message, problem.message


def response(*fields: bytes, start: bytes = b"HTTP/1.1 200 OK") -> bytes:
    return head(*fields, start=start)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (response(b"Content-Length: 2"), None),
        (response(b"Transfer-Encoding: chunked"), None),
        (response(start=b"HTTP/1.1 204"), None),  # no reason phrase
        (response(start=b"HTTP/1.0 200 Fine\tthanks"), None),
        (response(b"Content-Length: 2", b"Transfer-Encoding: chunked"), "both"),
        (response(b"Content-Length: 2", b"Content-Length: 2"), "more than one"),
        (response(b"Content-Length: 2, 9"), "plain decimal"),
        (response(b"X: a", b" Content-Length: 9"), "obs-fold"),
        (response(b"X: a\rContent-Length: 9"), "bare CR"),
        (response(b"Transfer-Encoding: gzip, chunked"), "exactly 'chunked'"),
        (response(b"Transfer-Encoding: gzip"), "exactly 'chunked'"),
        (response(b"Transfer-Encoding: chunked", start=b"HTTP/1.0 200 OK"), "HTTP/1.0"),
        (response(b"Host: a", b"Host: b"), None),  # Host is a request field
        (response(start=b"HTTP/1.1 2000 OK"), "status line"),
        (response(start=b"HTTP/1.1 200 O\x00K"), "status line"),
        (response(start=b"HTTP/2 200 OK"), "status line"),
    ],
)
def test_response_problem(text: bytes, words: str | None) -> None:
    problem = response_problem(text)
    if words is None:
        assert problem is None
        return
    assert problem is not None and problem.reason == BAD_FRAMING, problem
    assert words in problem.message, problem.message


@pytest.mark.parametrize(
    ("buffered", "split"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", (0, b"GET / HTTP/1.1\r\nHost: a\r")),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", None),  # not whole yet
        (b"\r\n\nGET / HTTP/1.1\n\n", (3, b"GET / HTTP/1.1")),  # empty lines skipped, bare LF
        (b"GET / HTTP/1.1\r\nX: a\r\r\n\r\n", (0, b"GET / HTTP/1.1\r\nX: a\r\r")),  # CR CR LF
        (b"\r\n\r\n", None),
    ],
)
def test_split_head_finds_what_h11_parses(buffered: bytes, split: tuple[int, bytes] | None) -> None:
    assert split_head(buffered) == split


SECRET = b"tok_in_a_bad_line_77c1"


@pytest.mark.parametrize(
    "text",
    [
        head(b"Host: a", b"Authorization: Bearer " + SECRET + b"\x00"),  # NUL in a value
        head(b"Host: a", b"X-Api-Key: " + SECRET + b"\rX: y"),  # bare CR
        head(b"Host: a", b"X: a", b" " + SECRET),  # obs-fold: the continuation is a value
        head(b"Host: a", SECRET),  # no colon: the whole line may be a value
        head(b"Host: a", start=b"GET http://" + SECRET + b"@a.test/ HTTP/1.1"),  # userinfo
        response(b"Set-Cookie: s=" + SECRET + b"\x01"),
    ],
)
def test_messages_name_the_field_never_its_value(text: bytes) -> None:
    """A refusal's message reaches the sender, the log and the store: no value in it."""
    problem = response_problem(text) if text.startswith(b"HTTP/") else request_problem(text)
    assert problem is not None
    assert SECRET.decode() not in problem.message, problem.message
