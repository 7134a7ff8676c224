"""One exchange per line, as ``hookwall logs`` prints it: a row of the table (also the attempts
in ``logs show``), or with ``--json`` the JSON log line the proxy wrote for it.

Two layouts. On a terminal the table fits its width (``COLUMNS`` first): ``layout`` drops and
narrows columns in a fixed order until the line fits, and each cell is cut to its column
with an ellipsis, except the request id, which is never cut (it is what people copy). The
widths are chosen from the terminal alone, so ``--follow`` can print each row as it comes
and the rows still line up. Piped, the table is the same whatever the width (``PLAIN``, every
column) and no value is ever cut: a longer one pushes the rest of its line right, every field
is one word for ``awk`` (``-`` when empty, a space inside a value shown as ``\\x20``), and
nothing but the text is written unless ``--color always`` asks for colour.

Cells are measured and cut in terminal cells (rich's, so a CJK character counts two) and
styled with rich styles, never through markup: a header value such as ``[bold red]x``
prints as those characters, and every value is ``clean`` first."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.color import ColorSystem
from rich.style import Style

from hookwall.cli.terminal import safe, status_style

TIME, REQUEST_ID, SENDER, METHOD, HOST, PATH = (
    "TIME (UTC)", "REQUEST ID", "SENDER", "METHOD", "HOST", "PATH",
)  # fmt: skip
STATUS, REASON, WEBHOOK_ID, MS = "STATUS", "REASON", "WEBHOOK ID", "MS"

# The piped layout, and the terminal's at 179 columns or more: every column at these widths.
PLAIN: dict[str, int] = {
    TIME: 19,
    REQUEST_ID: 28,  # req_ + 24 (hookwall.core.ids): never cut
    SENDER: 10,
    METHOD: 6,
    HOST: 24,
    PATH: 20,
    STATUS: 6,
    REASON: 18,
    WEBHOOK_ID: 31,
    MS: 8,
}

# How a narrower terminal's table is made, one step at a time until it fits: the columns
# people scan for first (time, request id, host, status and reason, ms) stay longest.
# ("drop", C) removes C; ("narrow", C, W) makes C W wide; ("fold", W) shows the reason in
# the status column, W wide ("503 circuit-open"), instead of in a column of its own.
STEPS: tuple[tuple[Any, ...], ...] = (
    ("drop", WEBHOOK_ID),  # `logs show` and --webhook-id have it
    ("drop", SENDER),
    ("drop", METHOD),
    ("narrow", PATH, 12),
    ("narrow", HOST, 16),
    ("drop", PATH),
    ("narrow", TIME, 14),  # without the year: 11-28 00:51:52
    ("narrow", REASON, 14),
    ("fold", 12),
    ("narrow", HOST, 14),
    ("narrow", STATUS, 10),
    ("narrow", HOST, 12),
    ("drop", MS),
    ("drop", HOST),
    ("drop", STATUS),
    ("drop", TIME),
)

# Who gets the room the steps left over, in this order, each up to the width given: the
# folded status and reason first (most reasons fit in 20), then the host.
GROW: tuple[tuple[str, int], ...] = (
    (STATUS, 20),
    (HOST, PLAIN[HOST]),
    (STATUS, PLAIN[STATUS] + 1 + PLAIN[REASON]),
    (REASON, PLAIN[REASON]),
    (PATH, PLAIN[PATH]),
    (TIME, PLAIN[TIME]),
)


@dataclass(frozen=True)
class Layout:
    """The columns shown and their widths, in display order; ``cut``: values are cut to
    their column (a terminal) or shown whole (piped); ``folded``: the reason is in STATUS."""

    widths: dict[str, int]
    cut: bool
    folded: bool = False

    @property
    def total(self) -> int:
        return sum(self.widths.values()) + len(self.widths) - 1


def layout(width: int | None) -> Layout:
    """The table for a terminal ``width`` columns wide, or the piped one for None."""
    if width is None:
        return Layout(dict(PLAIN), cut=False)
    widths, folded = dict(PLAIN), False
    for step in STEPS:
        if Layout(widths, True).total <= width:
            break
        if step[0] == "drop":
            widths.pop(step[1], None)
        elif step[0] == "narrow":
            if step[1] in widths:
                widths[step[1]] = step[2]
        elif REASON in widths and STATUS in widths:  # fold
            del widths[REASON]
            widths[STATUS], folded = step[1], True
    room = width - Layout(widths, True).total
    for name, most in GROW:
        if name in widths and room > 0 and (folded or name != STATUS):
            grow = max(0, min(room, most - widths[name]))
            widths[name] += grow
            room -= grow
    return Layout(widths, cut=True, folded=folded)


def iso(ts: float) -> str:
    """The log lines' timestamp format."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def as_log_line(ts: float, event: dict[str, Any]) -> dict[str, Any]:
    """An exchange as the JSON log line has it (``--json`` output is the same shape)."""
    return {"ts": iso(ts), "event": "exchange", **event}


def cells(ts: float, event: dict[str, Any], folded: bool = False) -> dict[str, str]:
    """The text of each column for one exchange, every value ``clean``; ``folded``: the
    reason after the status, in its column."""
    event = safe(event)
    url = str(event.get("url") or "")
    _, sep, rest = url.partition("://")
    path = "/" + rest.partition("/")[2] if sep else ""
    duration = event.get("duration_ms")
    reason = str(event.get("reason") or ("-" if event.get("decision") != "deny" else "denied"))
    status = str(event.get("status") or "-")
    return {
        TIME: datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        REQUEST_ID: str(event.get("request_id") or "-"),
        SENDER: str(event.get("sender") or "-"),
        METHOD: str(event.get("method") or "-"),
        HOST: str(event.get("host") or "-"),
        PATH: path or "-",
        STATUS: f"{status} {reason}" if folded and reason != "-" else status,
        REASON: reason,
        WEBHOOK_ID: str(event.get("webhook_id") or "-"),
        MS: f"{duration:.1f}" if isinstance(duration, int | float) else "-",
    }


class Table:
    """The header and the rows of one table, laid out once for every row (``--follow``)."""

    def __init__(self, width: int | None, colour: bool) -> None:
        self.layout = layout(width)
        self.width = width
        self.colour = colour

    def header(self) -> str:
        names = {name: name for name in self.layout.widths}
        return self._line(names, lambda _: "bold", whole_id=False)

    def row(self, ts: float, event: dict[str, Any]) -> str:
        values = cells(ts, event, self.layout.folded)
        if self.layout.cut and self.layout.widths.get(TIME, 19) < 19:
            values[TIME] = values[TIME][5:]  # the year is what a narrow terminal leaves out
        if not self.layout.cut:
            values = {k: (v.replace(" ", "\\x20") if k != TIME else v) for k, v in values.items()}
        style = status_style(event.get("status"), event.get("decision"))

        def styles(name: str) -> str:
            if name in (STATUS, REASON) and values[name] != "-":
                return style
            return "dim" if name == TIME else ""

        return self._line(values, styles, whole_id=True)

    def _line(self, values: dict[str, str], styles: Callable[[str], str], whole_id: bool) -> str:
        """The cells side by side, each padded (and on a terminal cut) to its column in
        terminal cells (a CJK character is two), the line no wider than the terminal."""
        parts: list[str] = []
        used = -1  # the cells so far and the space before each
        last = len(self.layout.widths) - 1
        for i, (name, width) in enumerate(self.layout.widths.items()):
            text = values[name]
            keep = name == REQUEST_ID and whole_id  # never cut, even when longer than usual
            if self.layout.cut and not keep:
                if self.width is not None:  # what a longer id left of the line
                    width = min(width, self.width - used - 1)
                if width < 1:
                    break
                text = _fit(text, width)
            pad = " " * max(0, width - cell_len(text))
            text = pad + text if name == MS else text if i == last else text + pad
            used += 1 + cell_len(text)
            parts.append(_styled(text, styles(name)) if self.colour else text)
        return " ".join(parts).rstrip(" ")


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells, an ellipsis marking the cut."""
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, width - 1) + "…"


@functools.lru_cache(maxsize=16)
def _style(name: str) -> Style:
    return Style.parse(name)


def _styled(text: str, style: str) -> str:
    """``text`` in a rich style, as the 16-colour escape sequences every terminal knows."""
    return _style(style).render(text, color_system=ColorSystem.STANDARD) if style else text
