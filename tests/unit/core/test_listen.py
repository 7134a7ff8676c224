"""``--listen [MODE@]HOST:PORT``: the listeners of hookwall run."""

from __future__ import annotations

import pytest

from hookwall.core.listen import Listener, parse_listen


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("127.0.0.1:8080", "regular", Listener("regular", "127.0.0.1", 8080)),
        ("127.0.0.1:8081", "transparent", Listener("transparent", "127.0.0.1", 8081)),
        ("transparent@0.0.0.0:8081", "regular", Listener("transparent", "0.0.0.0", 8081)),
        ("REGULAR@[::1]:0", "transparent", Listener("regular", "::1", 0)),
        (":8080", "regular", Listener("regular", "127.0.0.1", 8080)),
    ],
)
def test_parse(text: str, default: str, expected: Listener) -> None:
    assert parse_listen(text, default) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("socks5@127.0.0.1:1080", "unknown listener mode 'socks5'"),
        ("127.0.0.1", "expected [MODE@]HOST:PORT"),
        ("127.0.0.1:65536", "expected [MODE@]HOST:PORT"),
        ("transparent@127.0.0.1:x", "expected [MODE@]HOST:PORT"),
    ],
)
def test_bad_listen_says_what_is_expected(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=r".*") as info:
        parse_listen(text)
    assert says in str(info.value)


def test_the_spec_mitmproxy_reads_and_the_text_people_read() -> None:
    listener = Listener("transparent", "::1", 8081)
    assert listener.spec == "transparent@::1:8081"
    assert listener.address == "[::1]:8081"
    assert listener.describe() == "transparent@[::1]:8081"
    assert Listener("regular", "127.0.0.1", 8080).describe() == "127.0.0.1:8080"
