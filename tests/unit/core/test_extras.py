"""core/extras.py: the install hint for a missing extra carries the extra's version range."""

from __future__ import annotations

from hookwall.core.extras import install_hint, requirement

# As importlib.metadata.requires("hookwall") lists them (a wheel's Requires-Dist lines).
REQUIRES = [
    "mitmproxy==12.3.1",
    'redis<9,>=8.1; extra == "redis"',
    'uvloop<0.23,>=0.21; sys_platform != "win32" and extra == "uvloop"',
    'pytest>=8.3; extra == "dev"',
]


def test_the_requirement_of_an_extra_without_its_markers() -> None:
    assert requirement("redis", REQUIRES) == "redis<9,>=8.1"
    assert requirement("uvloop", REQUIRES) == "uvloop<0.23,>=0.21"


def test_an_extra_the_metadata_does_not_know_is_its_name() -> None:
    assert requirement("uvloop", ["mitmproxy==12.3.1"]) == "uvloop"
    assert requirement("uvloop", []) == "uvloop"
    assert requirement("redis", ['redis-extra-thing>1; extra == "redisx"']) == "redis"


def test_the_hint_names_pip_and_pipx() -> None:
    hint = install_hint("redis")
    assert hint.startswith("install hookwall[redis]: pip install 'hookwall[redis]' ")
    assert "pipx inject hookwall 'redis" in hint
