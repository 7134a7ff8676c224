"""The listeners ``hookwall run`` opens: each an address and the way senders reach it.

- ``regular``: the explicit proxy senders name in ``HTTP_PROXY`` (absolute-form requests and
  CONNECT).
- ``transparent``: connections redirected to hookwall by the kernel (``hookwall
  redirect-rules``); the destination the sender dialled is read from the socket
  (SO_ORIGINAL_DST), the name from ``Host`` or the TLS SNI. A sender needs no proxy settings,
  so a client that ignores them cannot go around hookwall.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Mode = Literal["regular", "transparent"]
MODES: tuple[Mode, ...] = get_args(Mode)


@dataclass(frozen=True, slots=True)
class Listener:
    mode: Mode
    host: str
    port: int

    @property
    def spec(self) -> str:
        """mitmproxy's mode spec for it (``transparent@127.0.0.1:8081``)."""
        return f"{self.mode}@{self.host}:{self.port}"

    @property
    def address(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{shown}:{self.port}"

    def describe(self) -> str:
        """As ``--listen`` takes it: the mode said only when it is not the explicit proxy."""
        return self.address if self.mode == "regular" else f"{self.mode}@{self.address}"


def parse_listen(text: str, default_mode: Mode = "regular") -> Listener:
    """``[MODE@]HOST:PORT`` as ``--listen`` takes it; ValueError says what is expected."""
    mode_text, at, address = text.rpartition("@")
    mode = mode_text.strip().lower() if at else default_mode
    if mode not in MODES:
        raise ValueError(
            f"unknown listener mode {mode_text!r} in {text!r}: use regular@HOST:PORT (the "
            "explicit proxy) or transparent@HOST:PORT (redirected connections)"
        )
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(
            f"expected [MODE@]HOST:PORT (e.g. 127.0.0.1:8080 or transparent@127.0.0.1:8081), "
            f"got {text!r}"
        )
    return Listener(mode, host.strip("[]") or "127.0.0.1", int(port))
