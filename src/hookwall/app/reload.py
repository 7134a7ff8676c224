"""Hot reload: a new policy is loaded in full off the event loop, then swapped atomically.

- Triggers: the ``--policy`` file or directory changed (polled every ~2 s: inode, size and
  mtime of every policy file, following symlinks, so a Kubernetes ConfigMap's ``..data``
  swap is seen), or SIGHUP (at once).
- ``load_policy`` runs in a thread (YAML, secret references, key ids): the proxy keeps
  serving meanwhile. A policy that does not load, or that this process must not run
  (no senders while listening beyond loopback without ``--allow-unauthenticated``), is
  rejected: one ``policy_rejected`` event with every error, and the old policy stays.
- A reload never silently drops authentication: a policy without senders replacing one with
  senders (a senders file missing from a directory) is rejected unless it says
  ``senders: none``; then it is applied with an ``authentication_dropped`` warning.
- After the swap, ``on_swapped`` listeners run: open passthrough tunnels are judged again.
- The swap is one assignment on the event loop (``runtime.policy = new``); each flow keeps
  the snapshot it started with. What was derived from the policy at start-up follows it:
  mitmproxy's ``tcp_timeout`` and ``body_size_limit``, the resolver (when ``dns`` settings
  change) and the upstream CA bundle (when ``ca_bundle`` or the file's contents change).
- ``body_size_limit`` is the buffering ceiling of *every* exchange in flight, so it is
  lowered only once no exchange that started under a larger-capped policy is still running
  (``PolicyGenerations``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import certifi
from mitmproxy import http

from hookwall.access.decide import dropped_authentication_refusal, reload_drops_authentication
from hookwall.deliveries import logs
from hookwall.deliveries.metrics import Metrics
from hookwall.destinations.resolver import Resolver
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import state_of
from hookwall.mitm.bounds import apply_proxy_settings, backstop_timeout
from hookwall.policy import DnsSettings, Policy, PolicyError, default_policy_path, load_policy

__all__ = [
    "PolicyGenerations",
    "PolicyReloader",
    "build_resolver",
    "fingerprint",
    "upstream_bundle",
]

WATCH_INTERVAL = 2.0  # seconds between polls of the policy files
SETTLE = 0.25  # a change must look the same twice, this far apart, before it is loaded
_SUFFIXES = (".yaml", ".yml")
_BUNDLE_PREFIX = "upstream-ca-bundle-"

Fingerprint = tuple[tuple[str, tuple[int, ...] | None], ...]


def _stat(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)  # follows symlinks: a ConfigMap swap changes the target's inode
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def fingerprint(path: Path, extra: Sequence[str] = ()) -> Fingerprint:
    """What a policy's files look like on disk right now; equal means "nothing to reload".

    A directory contributes the files ``load_policy`` would read (``*.yaml``/``*.yml``, not
    hidden), so editor swap files and lock files change nothing. ``extra`` files (the CA
    bundle) count too.
    """
    entries: list[tuple[str, tuple[int, ...] | None]] = []
    try:
        names = sorted(os.listdir(path)) if path.is_dir() else None
    except OSError:
        names = None
    if names is None:
        entries.append((str(path), _stat(str(path))))
    else:
        for name in names:
            if name.endswith(_SUFFIXES) and not name.startswith("."):
                entries.append((name, _stat(os.path.join(path, name))))
    entries.extend((f"extra:{name}", _stat(name)) for name in extra)
    return tuple(entries)


def build_resolver(dns: DnsSettings, servers: Sequence[tuple[str, int]] = ()) -> Resolver:
    """The resolver a policy asks for (``--dns-server`` overrides its ``dns.servers``)."""
    return Resolver(
        tuple(servers) or dns.servers,
        timeout=dns.timeout,
        max_ttl=dns.max_ttl,
        cache_size=dns.cache_size,
    )


def upstream_bundle(data_dir: Path, extra_bundle: str | None) -> str:
    """certifi's roots plus the policy's ``ca_bundle``, in a file named for its contents.

    mitmproxy caches upstream TLS contexts by the bundle's *path*, so new contents must get
    a new path; equal contents keep theirs (no needless new contexts).
    """
    if not extra_bundle:
        return certifi.where()
    text = Path(certifi.where()).read_text() + "\n" + Path(extra_bundle).read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    target = data_dir / f"{_BUNDLE_PREFIX}{digest}.pem"
    if not target.is_file():
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return str(target)


def _remove_other_bundles(data_dir: Path, keep: str) -> None:
    for old in data_dir.glob(f"{_BUNDLE_PREFIX}*.pem"):
        if str(old) != keep:
            with contextlib.suppress(OSError):
                old.unlink()


class PolicyGenerations:
    """Counts the HTTP exchanges in flight per policy snapshot (a mitmproxy addon).

    Tells the reloader when no exchange of an older policy is left, so settings that bind
    every exchange at once (mitmproxy's ``body_size_limit``) can follow a smaller policy
    without cutting an exchange that started under a larger one.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._live: dict[int, tuple[Policy, int]] = {}
        self.on_retired: Callable[[], None] = lambda: None

    def policies(self) -> list[Policy]:
        """Every policy some exchange in flight started under, and the current one."""
        current = self.runtime.policy
        return [current, *(p for p, _ in self._live.values() if p is not current)]

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        policy = state.policy if state else None
        if state is None or policy is None or state.counted_under is not None:
            return
        state.counted_under = policy
        held = self._live.get(id(policy))
        self._live[id(policy)] = (policy, (held[1] if held else 0) + 1)

    def response(self, flow: http.HTTPFlow) -> None:
        self._done(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._done(flow)

    def _done(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        policy = state.counted_under if state else None
        if state is None or policy is None:
            return
        state.counted_under = None
        held = self._live.get(id(policy))
        if held is None:
            return
        if held[1] > 1:
            self._live[id(policy)] = (policy, held[1] - 1)
            return
        del self._live[id(policy)]
        if policy is not self.runtime.policy:
            self.on_retired()


@dataclass(slots=True)
class _Prepared:
    """What a reload computed off the event loop."""

    fingerprint: Fingerprint
    policy: Policy | None = None
    bundle: str | None = None
    errors: list[str] = field(default_factory=list)


class PolicyReloader:
    def __init__(
        self,
        runtime: Runtime,
        *,
        source: Path | None,
        options: Any,  # mitmproxy's Options: ``update(**values)`` and attribute reads
        data_dir: Path,
        metrics: Metrics,
        dns_servers: Sequence[tuple[str, int]] = (),
        vet: Callable[[Policy], list[str]] = lambda _policy: [],
        generations: PolicyGenerations | None = None,
    ) -> None:
        self.runtime = runtime
        self.source = source
        self.options = options
        self.data_dir = data_dir
        self.metrics = metrics
        self.dns_servers = tuple(dns_servers)
        self.vet = vet
        self.generations = generations or PolicyGenerations(runtime)
        self.generations.on_retired = self.sync_body_limit
        self._lock = asyncio.Lock()
        self._seen: Fingerprint | None = None  # the files as they were at the last load
        # Called on the event loop right after a swap (old, new): e.g. re-judging tunnels.
        self.on_swapped: list[Callable[[Policy, Policy], None]] = []

    @property
    def path(self) -> Path:
        return self.source or default_policy_path()

    def _extra(self, policy: Policy) -> tuple[str, ...]:
        return (policy.ca_bundle,) if policy.ca_bundle else ()

    async def prime(self) -> None:
        """At start-up: note the files as loaded; name the CA bundle file for its contents."""
        policy = self.runtime.policy
        self._seen, bundle = await asyncio.to_thread(
            lambda: (
                fingerprint(self.path, self._extra(policy)),
                upstream_bundle(self.data_dir, policy.ca_bundle),
            )
        )
        self.options.update(ssl_verify_upstream_trusted_ca=bundle)
        await asyncio.to_thread(_remove_other_bundles, self.data_dir, bundle)

    # -- triggers --------------------------------------------------------------------------
    async def watch(self, interval: float = WATCH_INTERVAL) -> None:
        """Poll the policy files; reload when they changed and stopped changing."""
        while True:
            await asyncio.sleep(interval)
            try:
                if await self._changed():
                    await self.reload("file-changed")
            except Exception as exc:  # the watcher must outlive any surprise
                logs.get_logger().error("policy_watch_failed", error=repr(exc))

    async def _changed(self) -> bool:
        extra = self._extra(self.runtime.policy)
        now = await asyncio.to_thread(fingerprint, self.path, extra)
        if now == self._seen:
            return False
        await asyncio.sleep(SETTLE)  # an editor or `kubectl cp` may still be writing
        return await asyncio.to_thread(fingerprint, self.path, extra) == now

    # -- the reload --------------------------------------------------------------------------
    async def reload(self, trigger: str) -> bool:
        """Load, check and swap; True when the new policy is in force."""
        async with self._lock:
            old = self.runtime.policy
            prepared = await asyncio.to_thread(self._prepare, self.path, self._extra(old))
            self._seen = prepared.fingerprint  # a rejected file is not retried until it changes
            new = prepared.policy
            if new is not None and not prepared.errors:
                prepared.errors.extend(self.vet(new))
            drops_auth = new is not None and reload_drops_authentication(old, new)
            if new is not None and drops_auth and not new.senders_none:
                prepared.errors.append(dropped_authentication_refusal(str(self.path), old))
            if new is None or prepared.errors or prepared.bundle is None:
                return self._reject(trigger, prepared.errors)
            try:
                changed = self._swap(old, new, prepared.bundle)
            except Exception as exc:  # e.g. an option mitmproxy refuses: keep the old policy
                return self._reject(trigger, [f"{self.path}: cannot apply the policy: {exc}"])
            await asyncio.to_thread(_remove_other_bundles, self.data_dir, prepared.bundle)
        self.metrics.policy_applied(len(new.rules), reload=True)
        logs.get_logger().info(
            "policy_reloaded",
            trigger=trigger,
            files=list(new.sources),
            rules=len(new.rules),
            senders=len(new.senders),
            changed=changed,
        )
        if drops_auth:
            logs.get_logger().warning(
                "authentication_dropped",
                trigger=trigger,
                files=list(new.sources),
                dropped_senders=sorted(s.name for s in old.senders),
                message="the new policy says senders: none: hookwall no longer asks for proxy "
                "credentials and every per-sender rule is gone; define senders to restore them",
            )
        for listener in self.on_swapped:
            try:
                listener(old, new)
            except Exception as exc:  # the new policy is in force; report, never undo it
                logs.get_logger().error("policy_follow_up_failed", error=repr(exc))
        return True

    def _prepare(self, path: Path, extra: tuple[str, ...]) -> _Prepared:
        """Runs in a worker thread: everything slow, nothing shared is touched."""
        prepared = _Prepared(fingerprint(path, extra))
        try:
            prepared.policy = load_policy(path)
        except PolicyError as exc:
            prepared.errors = [str(issue) for issue in exc.issues]
            return prepared
        except Exception as exc:  # a bug or an odd file must not end the watcher
            prepared.errors = [f"{path}: cannot load the policy ({type(exc).__name__}: {exc})"]
            return prepared
        # Read the files again: an edit while loading is picked up by the next poll.
        prepared.fingerprint = fingerprint(path, self._extra(prepared.policy))
        try:
            prepared.bundle = upstream_bundle(self.data_dir, prepared.policy.ca_bundle)
        except OSError as exc:
            prepared.errors.append(
                f"defaults.ca_bundle: cannot read {prepared.policy.ca_bundle}: "
                f"{exc.strerror or exc}"
            )
        return prepared

    def _swap(self, old: Policy, new: Policy, bundle: str) -> list[str]:
        """On the event loop, no await: flows see the old world or the new, never a mix."""
        changed: list[str] = []
        values: dict[str, object] = {}
        tcp_timeout = backstop_timeout(new)
        if self.options.tcp_timeout != tcp_timeout:
            values["tcp_timeout"] = tcp_timeout
            changed.append("tcp_timeout")
        if self.options.ssl_verify_upstream_trusted_ca != bundle:
            values["ssl_verify_upstream_trusted_ca"] = bundle
            changed.append("ca_bundle")
        resolver = self.runtime.resolver
        if new.dns != old.dns:
            if self._resolver_key(new.dns) != self._resolver_key(old.dns):
                resolver = build_resolver(new.dns, self.dns_servers)
            changed.append("dns")
        if new.max_body > old.max_body:  # raise before the swap; lowering waits (see below)
            values["body_size_limit"] = str(new.max_body)
        if new.max_body != old.max_body:
            changed.append("body_size_limit")
        if values:
            self.options.update(**values)
        self.runtime.policy = new
        self.runtime.resolver = resolver
        apply_proxy_settings(new)
        self.sync_body_limit()
        return changed

    def _resolver_key(self, dns: DnsSettings) -> tuple[object, ...]:
        return (self.dns_servers or dns.servers, dns.timeout, dns.max_ttl, dns.cache_size)

    def sync_body_limit(self) -> None:
        """The largest cap of any policy an exchange in flight runs under (and the current)."""
        needed = str(max(policy.max_body for policy in self.generations.policies()))
        if self.options.body_size_limit != needed:
            self.options.update(body_size_limit=needed)

    def _reject(self, trigger: str, errors: list[str]) -> bool:
        self.metrics.policy_rejected()
        logs.get_logger().error(
            "policy_rejected",
            trigger=trigger,
            policy=str(self.path),
            errors=errors,
            error_count=len(errors),
            message="the policy was not applied; the previous policy stays in force",
            in_force=list(self.runtime.policy.sources),
        )
        return False
