"""SafetyChecks: refuse mitmproxy options that would make hookwall unsafe.

``emudhra``/``emudhra_old`` (12.3.x) sign certificates with a publicly known CA key and
``ssl_insecure`` turns off upstream certificate checks; hookwall must never run with them.
"""

from __future__ import annotations

from mitmproxy import ctx, exceptions

FORBIDDEN_OPTIONS: dict[str, str] = {
    "emudhra": "loads a publicly known CA key",
    "emudhra_old": "loads a publicly known CA key",
    "ssl_insecure": "disables upstream certificate verification",
}


def forbidden_options_set(options: object) -> list[str]:
    """Names of forbidden options that are switched on (checked before start and on change)."""
    return [name for name in FORBIDDEN_OPTIONS if getattr(options, name, False)]


class SafetyChecks:
    def configure(self, updated: set[str]) -> None:
        bad = forbidden_options_set(ctx.options)
        if bad:
            reasons = "; ".join(f"{name} {FORBIDDEN_OPTIONS[name]}" for name in bad)
            raise exceptions.OptionsError(f"hookwall refuses to run with: {reasons}")
