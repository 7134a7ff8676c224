"""SafetyChecks in process: mitmproxy options that would make hookwall unsafe are refused,
at start and whenever options change."""

from __future__ import annotations

import pytest
from mitmproxy import exceptions
from mitmproxy.addons import tlsconfig

from hookwall.forwarding.addons.safety import FORBIDDEN_OPTIONS, SafetyChecks
from tests.unit.support.mitm import addon_context


@pytest.mark.parametrize("option", sorted(FORBIDDEN_OPTIONS))
def test_an_unsafe_option_is_refused_and_rolled_back(option: str) -> None:
    safety = SafetyChecks()
    with addon_context(tlsconfig.TlsConfig(), safety) as tctx:  # TlsConfig owns emudhra*
        with pytest.raises(exceptions.OptionsError) as refused:
            tctx.configure(safety, **{option: True})
        assert str(refused.value) == (
            f"hookwall refuses to run with: {option} {FORBIDDEN_OPTIONS[option]}"
        )
        assert getattr(tctx.options, option) is False  # not left switched on


def test_safe_options_pass() -> None:
    safety = SafetyChecks()
    with addon_context(tlsconfig.TlsConfig(), safety) as tctx:
        tctx.configure(safety, ssl_insecure=False, connection_strategy="lazy")
        assert tctx.options.connection_strategy == "lazy"


def test_every_unsafe_option_is_named_at_once() -> None:
    safety = SafetyChecks()
    with (
        addon_context(tlsconfig.TlsConfig(), safety) as tctx,
        pytest.raises(exceptions.OptionsError, match=r"with: emudhra .*; ssl_insecure "),
    ):
        tctx.configure(safety, ssl_insecure=True, emudhra=True)
