"""Flood-control settings in a policy: parsing, field-wise merging, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookwall.limits.settings import parse_rate
from hookwall.policy import PolicyError, load_policy


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\n" + body)
    return path


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("50/s", 50.0), ("600/m", 10.0), ("36/h", 0.01), ("2.5 / sec", 2.5), (5, 5.0)],
)
def test_rates(text: object, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["fast", "0/s", "10/day", "-1/s", True, None])
def test_bad_rates(text: object) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_destinations_override_field_by_field(tmp_path: Path) -> None:
    policy = load_policy(
        write(
            tmp_path,
            "proxy: {max_connections: 10, idle_timeout: 5s}\n"
            "defaults:\n"
            "  limits: {concurrency: 4, queue: 7, rate: 600/m, circuit: {failures: 3}}\n"
            "  timeouts: {connect: 2s}\n"
            "  max_request_body: 64KiB\n"
            "destinations:\n"
            "  - hosts: [slow.test]\n"
            "    limits: {concurrency: 1, per_sender: true, key: host-port}\n"
            "    timeouts: {response: 2m}\n"
            "    max_response_body: 8MiB\n",
        )
    )
    base = policy.defaults
    assert (base.limits.config.concurrency, base.limits.config.queue) == (4, 7)
    assert base.limits.config.rate == pytest.approx(10.0)
    assert base.limits.config.circuit_failures == 3
    assert (base.timeouts.connect, base.timeouts.headers) == (2.0, 15.0)
    assert base.max_request_body == 64 * 1024
    slow = policy.settings_for("slow.test")
    assert slow.limits.config.concurrency == 1 and slow.limits.config.queue == 7
    assert slow.limits.per_sender and slow.limits.key == "host-port"
    assert (slow.timeouts.connect, slow.timeouts.response) == (2.0, 120.0)
    assert (slow.max_request_body, slow.max_response_body) == (64 * 1024, 8 * 1024 * 1024)
    assert policy.max_body == 8 * 1024 * 1024
    assert (policy.proxy.max_connections, policy.proxy.idle_timeout) == (10, 5.0)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("limits: {concurrency: 0}", "defaults.limits.concurrency: expected a whole number >= 1"),
        ("limits: {queue: -1}", "defaults.limits.queue: expected a whole number >= 0"),
        ("limits: {rate: lots}", "defaults.limits.rate: expected a rate like"),
        ("limits: {queue_timeout: forever}", "defaults.limits.queue_timeout"),
        ("limits: {key: ip}", "defaults.limits.key: expected one of host, host-port"),
        ("limits: {circuit: {failurs: 3}}", "unknown key 'failurs'"),
        ("limits: {concurency: 3}", "did you mean 'concurrency'?"),
        ("timeouts: {connect: 0s}", "defaults.timeouts.connect: must be longer than 0s"),
        ("timeouts: {read: 5s}", "unknown key 'read'"),
        ("max_request_body: lots", "defaults.max_request_body"),
        ("max_response_body: 0", "defaults.max_response_body: must be more than 0 bytes"),
    ],
)
def test_errors_are_located(tmp_path: Path, section: str, message: str) -> None:
    path = write(tmp_path, f"defaults:\n  {section}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert message in str(info.value)
    assert f"{path}:3:" in str(info.value)


def test_proxy_section_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "proxy: {max_connections: 0, idle: 5s}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    text = str(info.value)
    assert "proxy.max_connections: expected a whole number >= 1" in text
    assert "unknown key 'idle'" in text


def test_proxy_bounds_have_defaults_and_can_be_set(tmp_path: Path) -> None:
    default = load_policy(write(tmp_path, "")).proxy
    assert (default.max_connections, default.max_connections_per_client) == (2000, 200)
    assert (default.head_timeout, default.idle_timeout) == (10.0, 60.0)
    assert (default.max_header_bytes, default.max_header_fields) == (64 * 1024, 100)
    assert (default.max_idle_upstream_per_client, default.max_idle_upstream) == (8, 512)
    assert default.max_buffered_bodies == 256 * 1024 * 1024
    proxy = load_policy(
        write(
            tmp_path,
            "proxy:\n  max_connections_per_client: 5\n  head_timeout: 2s\n"
            "  max_header_bytes: 16KiB\n  max_header_fields: 30\n"
            "  max_idle_upstream_per_client: 0\n  max_idle_upstream: 10\n"
            "  max_buffered_bodies: 32MiB\n"
            "defaults:\n  timeouts: {body: 3s}\n",
        )
    )
    assert proxy.proxy.max_connections_per_client == 5 and proxy.proxy.head_timeout == 2.0
    assert (proxy.proxy.max_header_bytes, proxy.proxy.max_header_fields) == (16 * 1024, 30)
    assert (proxy.proxy.max_idle_upstream_per_client, proxy.proxy.max_idle_upstream) == (0, 10)
    assert proxy.defaults.timeouts.body == 3.0
    assert proxy.proxy.max_buffered_bodies == 32 * 1024 * 1024
    assert proxy.defaults.limits.key == "host-port"  # one circuit per port unless key: host


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "max_connections_per_client: 0",
            "proxy.max_connections_per_client: expected a whole number >= 1",
        ),
        ("head_timeout: 0s", "proxy.head_timeout: must be longer than 0s"),
        ("max_header_bytes: lots", "proxy.max_header_bytes"),
        ("max_header_fields: -1", "proxy.max_header_fields: expected a whole number >= 1"),
        ("max_idle_upstream: many", "proxy.max_idle_upstream: expected a whole number >= 0"),
        ("head_timeuot: 2s", "did you mean 'head_timeout'?"),
    ],
)
def test_proxy_bound_errors_are_located(tmp_path: Path, section: str, message: str) -> None:
    path = write(tmp_path, f"proxy:\n  {section}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert message in str(info.value)
    assert f"{path}:3:" in str(info.value)
