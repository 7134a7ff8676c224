"""Hot reload without a proxy: file fingerprints (edits, atomic replaces, ConfigMap symlink
swaps), the content-named CA bundle, and the reloader's swap, refusals and body-cap rule."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import certifi
import pytest
from mitmproxy import http, options
from mitmproxy.test import tflow

from hookwall.app.master import HookwallMaster
from hookwall.app.operations import Operations, OpsConfig
from hookwall.app.reload import (
    PolicyGenerations,
    PolicyReloader,
    build_resolver,
    fingerprint,
    upstream_bundle,
)
from hookwall.deliveries.metrics import Metrics
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import start_state
from hookwall.policy import Policy, load_policy

BASE = "version: 1\ndefaults:\n  network: {ports: [443]}\n"


# -- fingerprints -------------------------------------------------------------------------------
def test_a_file_edit_or_replace_changes_the_fingerprint(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(BASE)
    first = fingerprint(policy)
    assert fingerprint(policy) == first
    policy.write_text(BASE + "# more\n")
    second = fingerprint(policy)
    assert second != first
    tmp = tmp_path / "new"
    tmp.write_text(BASE + "# more\n")  # same size, new inode
    os.replace(tmp, policy)
    assert fingerprint(policy) != second
    policy.unlink()
    assert fingerprint(policy) == ((str(policy), None),)


def test_a_directory_counts_policy_files_only(tmp_path: Path) -> None:
    (tmp_path / "10-a.yaml").write_text(BASE)
    first = fingerprint(tmp_path)
    (tmp_path / ".#10-a.yaml").write_text("lock")  # editor droppings change nothing
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "10-a.yaml.swp").write_text("x")
    assert fingerprint(tmp_path) == first
    (tmp_path / "20-b.yml").write_text(BASE)
    assert fingerprint(tmp_path) != first


def test_a_configmap_symlink_swap_is_seen(tmp_path: Path) -> None:
    """Kubernetes: p.yaml -> ..data/p.yaml, ..data -> ..2026_v1; an update swaps ..data."""
    mount = tmp_path / "policy"
    mount.mkdir()
    for version in ("..v1", "..v2"):
        (mount / version).mkdir()
        (mount / version / "p.yaml").write_text(BASE)  # same bytes, same size
    (mount / "..data").symlink_to("..v1")
    (mount / "p.yaml").symlink_to("..data/p.yaml")
    first = fingerprint(mount)
    assert fingerprint(mount / "p.yaml") != ((str(mount / "p.yaml"), None),)
    single = fingerprint(mount / "p.yaml")
    (mount / "..data_tmp").symlink_to("..v2")
    os.replace(mount / "..data_tmp", mount / "..data")
    assert fingerprint(mount) != first
    assert fingerprint(mount / "p.yaml") != single


def test_extra_files_count(tmp_path: Path) -> None:
    policy, bundle = tmp_path / "p.yaml", tmp_path / "ca.pem"
    policy.write_text(BASE)
    bundle.write_text("one")
    first = fingerprint(policy, [str(bundle)])
    bundle.write_text("two!")
    assert fingerprint(policy, [str(bundle)]) != first


# -- the upstream CA bundle ----------------------------------------------------------------------
def test_the_bundle_is_named_for_its_contents(tmp_path: Path) -> None:
    assert upstream_bundle(tmp_path, None) == certifi.where()
    extra = tmp_path / "extra.pem"
    extra.write_text("-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n")
    first = upstream_bundle(tmp_path, str(extra))
    assert upstream_bundle(tmp_path, str(extra)) == first
    assert Path(first).read_text().endswith(extra.read_text())
    extra.write_text("-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n")
    second = upstream_bundle(tmp_path, str(extra))
    assert second != first  # mitmproxy caches TLS contexts by path: new bytes, new path


# -- the reloader --------------------------------------------------------------------------------
class FakeOptions:
    def __init__(self, policy: Policy) -> None:
        self.tcp_timeout = max(1, int(policy.proxy.idle_timeout))
        self.body_size_limit = str(policy.max_body)
        self.ssl_verify_upstream_trusted_ca = certifi.where()
        self.updates: list[dict[str, object]] = []

    def update(self, **values: object) -> None:
        self.updates.append(values)
        for key, value in values.items():
            setattr(self, key, value)


def make(
    tmp_path: Path,
    text: str,
    *,
    dns_servers: Sequence[tuple[str, int]] = (),
    vet: Callable[[Policy], list[str]] = lambda _policy: [],
) -> tuple[PolicyReloader, Runtime, Path]:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    policy = load_policy(path)
    runtime = Runtime(policy, build_resolver(policy.dns))
    options = FakeOptions(policy)
    reloader = PolicyReloader(
        runtime,
        source=path,
        options=options,
        data_dir=tmp_path,
        metrics=Metrics(process=False),
        dns_servers=dns_servers,
        vet=vet,
    )
    return reloader, runtime, path


def test_a_good_policy_is_swapped_with_what_it_implies(tmp_path: Path) -> None:
    reloader, runtime, path = make(tmp_path, BASE)
    old, resolver = runtime.policy, runtime.resolver
    path.write_text(
        "version: 1\ndns: {timeout: 1s}\nproxy: {idle_timeout: 5s}\n"
        "defaults:\n  network: {ports: [443]}\n  max_request_body: 8MiB\n"
    )
    assert asyncio.run(reloader.reload("test")) is True
    assert runtime.policy is not old and runtime.policy.max_body == 8 * 1024 * 1024
    assert runtime.resolver is not resolver  # dns settings changed: a new resolver
    options = reloader.options
    # mitmproxy's inactivity backstop: the longer of hookwall's idle (5s) and head (10s)
    # deadlines plus the longest quiet exchange (body 30s + connect 5s + response 30s).
    assert options.tcp_timeout == 10 + 65 and options.body_size_limit == str(8 * 1024 * 1024)


def test_a_resolver_is_kept_when_only_overridden_servers_changed(tmp_path: Path) -> None:
    reloader, runtime, path = make(tmp_path, BASE, dns_servers=[("127.0.0.1", 5353)])
    resolver = runtime.resolver
    path.write_text("version: 1\ndns: {servers: ['127.0.0.9']}\n" + BASE[len("version: 1\n") :])
    assert asyncio.run(reloader.reload("test")) is True
    assert runtime.resolver is resolver  # --dns-server still wins; nothing to rebuild


def test_a_broken_policy_keeps_the_old_one(tmp_path: Path) -> None:
    reloader, runtime, path = make(tmp_path, BASE)
    old = runtime.policy
    path.write_text("version: 1\ndefaults:\n  network: {ports: [0], allow: [1.2.3.4/40]}\n")
    assert asyncio.run(reloader.reload("test")) is False
    assert runtime.policy is old
    assert reloader.options.updates == []
    assert reloader.metrics.registry.get_sample_value("hookwall_policy_last_reload_ok") == 0
    assert (
        reloader.metrics.registry.get_sample_value(
            "hookwall_policy_reloads_total", {"result": "rejected"}
        )
        == 1
    )


def test_vet_refusals_keep_the_old_policy(tmp_path: Path) -> None:
    reloader, runtime, path = make(tmp_path, BASE, vet=lambda p: ["no: would be an open proxy"])
    old = runtime.policy
    path.write_text(BASE + "destinations:\n  - hosts: [x.example]\n")
    assert asyncio.run(reloader.reload("test")) is False
    assert runtime.policy is old


def _flow(policy: Policy) -> http.HTTPFlow:
    """An exchange begun under ``policy`` (its state keeps that snapshot)."""
    flow = tflow.tflow()
    start_state(flow, policy, None)
    return flow


def test_the_body_cap_is_lowered_only_when_larger_exchanges_are_done(tmp_path: Path) -> None:
    reloader, runtime, path = make(tmp_path, BASE + "  max_request_body: 8MiB\n")
    generations = reloader.generations
    assert isinstance(generations, PolicyGenerations)
    flow = _flow(runtime.policy)
    generations.requestheaders(flow)  # an 8 MiB exchange is in flight
    path.write_text(BASE)  # 1 MiB
    assert asyncio.run(reloader.reload("test")) is True
    assert reloader.options.body_size_limit == str(8 * 1024 * 1024)  # not cut under it
    newer = _flow(runtime.policy)
    generations.requestheaders(newer)
    generations.response(newer)
    assert reloader.options.body_size_limit == str(8 * 1024 * 1024)
    generations.error(flow)  # the last exchange of the larger policy ends
    assert reloader.options.body_size_limit == str(1024 * 1024)


@pytest.mark.parametrize(("listen", "allow", "refused"), [
    ("0.0.0.0", False, True), ("0.0.0.0", True, False), ("127.0.0.1", False, False),
])  # fmt: skip
def test_dropping_every_sender_on_a_public_listener_is_refused(
    tmp_path: Path, listen: str, allow: bool, refused: bool
) -> None:
    """Never an open proxy, not even through a reload."""
    policy = load_policy(_write(tmp_path / "p.yaml", BASE))
    runtime = Runtime(policy, build_resolver(policy.dns))

    async def vetted() -> list[str]:
        master = HookwallMaster(options.Options(), runtime)
        ops = Operations(
            OpsConfig(policy_path=tmp_path / "p.yaml", allow_unauthenticated=allow),
            runtime,
            master,
            master.pipeline,
            data_dir=tmp_path,
            listen_hosts=(listen,),
            metrics=Metrics(process=False),
        )
        return ops._vet(policy)  # a policy without senders

    errors = asyncio.run(vetted())
    assert bool(errors) is refused
    if refused:
        assert "open proxy" in errors[0] and "--allow-unauthenticated" in errors[0]


SENDERS = "senders:\n  billing: {credentials: [env:HW_T_RELOAD_TOKEN]}\n"


def test_a_reload_that_loses_every_sender_is_refused_unless_it_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_T_RELOAD_TOKEN", "a-token-long-enough-for-hookwall")
    reloader, runtime, path = make(tmp_path, BASE + SENDERS)
    swapped: list[tuple[Policy, Policy]] = []
    reloader.on_swapped.append(lambda old, new: swapped.append((old, new)))
    with_senders = runtime.policy
    path.write_text(BASE)  # the senders are gone, nothing says so
    assert asyncio.run(reloader.reload("test")) is False
    assert runtime.policy is with_senders and not swapped
    path.write_text(BASE + "senders:\n")  # an empty section is not a statement either
    assert asyncio.run(reloader.reload("test")) is False
    path.write_text(BASE + "senders: none\n")
    assert asyncio.run(reloader.reload("test")) is True
    assert not runtime.policy.senders and runtime.policy.senders_none
    assert swapped == [(with_senders, runtime.policy)]
    path.write_text(BASE)  # no senders before, none now: nothing is dropped
    assert asyncio.run(reloader.reload("test")) is True


def test_senders_none_next_to_defined_senders_is_a_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hookwall.policy import PolicyError

    monkeypatch.setenv("HW_T_RELOAD_TOKEN", "a-token-long-enough-for-hookwall")
    (tmp_path / "10-none.yaml").write_text("version: 1\nsenders: none\n")
    (tmp_path / "20-senders.yaml").write_text("version: 1\n" + SENDERS)
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path)
    (issue,) = caught.value.issues
    assert str(issue).startswith(f"{tmp_path / '10-none.yaml'}:2:10: senders: none says no ")
    assert "remove one of the two" in str(issue)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
