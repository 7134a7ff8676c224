"""Editing a running proxy's policy files the way deploy tools do, and waiting for its verdict."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.proxyproc import Event, ProxyProcess

VERDICT_TIMEOUT = 15.0  # seconds: a poll (100 ms in tests), the settle time, a full load


def write(path: Path, text: str) -> None:
    """Replace the file atomically, as `kubectl` (ConfigMap) or a deploy tool does."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def reloaded(proc: ProxyProcess, start: int, trigger: str | None = None) -> Event:
    """The ``policy_reloaded`` event after ``start`` (by this trigger, when given)."""

    def ok(e: Event) -> bool:
        return e.get("event") == "policy_reloaded" and trigger in (None, e.get("trigger"))

    return proc.wait_for(ok, VERDICT_TIMEOUT, start)


def rejected(proc: ProxyProcess, start: int) -> Event:
    """The ``policy_rejected`` event after ``start``."""
    return proc.wait_for(lambda e: e.get("event") == "policy_rejected", VERDICT_TIMEOUT, start)
