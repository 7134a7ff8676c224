"""What the ``start_proxy`` fixtures call: start hookwall for a test, stop it after the test.

One ``ProxyLauncher`` belongs to one test (or one module, for a proxy its tests share): each
call writes the policy, gives the DNS names to the test DNS server, starts ``hookwall run`` on
free ports in a directory of its own, and returns once the proxy is ready. ``stop_all`` at
teardown stops every process it started and checks each one's exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypedDict, Unpack

from tests.support.dnsserver import TestDnsServer
from tests.support.proxyproc import ProxyProcess

# Where the allowed test receivers listen; the address a bare name in ``names`` resolves to.
RECEIVER_ADDRESS = "127.0.0.2"
CA_PLACEHOLDER = "{ca}"  # in a policy text: the receivers' CA bundle (``ca_bundle: {ca}``)
# Policy edits are seen within 100 ms instead of the 2 s default: reload tests wait on the
# proxy's own events, never on its poll.
POLICY_POLL = "100ms"

Names = Iterable[str] | Mapping[str, str | Sequence[str]]


class Options(TypedDict, total=False):
    """How to start one proxy (every key may be left out)."""

    names: Names  # resolve to 127.0.0.2 or, in a mapping, to the addresses given
    env: dict[str, str]  # added to the (proxy-variable-free) environment
    args: Sequence[str]  # more ``hookwall run`` arguments
    workers: int  # ``--workers N``; ready means every worker is
    dns: bool  # False: no ``--dns-server`` (the policy's own servers count)
    listen: str  # ``--listen``; a free loopback port unless given
    data_dir: Path  # ``--data-dir``; a new one unless given
    exit_code: int | None  # what it must exit with when stopped (None: unchecked, e.g. killed)


class ProxyLauncher:
    """Starts proxies (``launcher(policy, **options)``) and, at teardown, stops them all."""

    def __init__(
        self, directory: Callable[[], Path], dns: TestDnsServer, receiver_ca_file: Path
    ) -> None:
        self._directory = directory  # a new empty directory per call
        self.dns = dns
        self.receiver_ca_file = receiver_ca_file
        self.started: list[tuple[ProxyProcess, int | None]] = []

    def __call__(self, policy: str | Path | None, **options: Unpack[Options]) -> ProxyProcess:
        """Start ``hookwall run`` and wait until it is ready.

        ``policy``: the text of a policy file (``{ca}`` in it stands for the receivers' CA
        bundle), a policy file or directory, or None for the built-in default.
        """
        proc = self.spawn(policy, **options)
        proc.wait_started()
        proc.wait_ready(options.get("workers", 1))
        return proc

    def fleet(self, count: int, policy: str, **options: Unpack[Options]) -> list[ProxyProcess]:
        """``count`` proxies on one policy (replicas), started side by side: ready together."""
        procs = [self.spawn(policy, **options) for _ in range(count)]
        for proc in procs:
            proc.wait_started()
            proc.wait_ready(options.get("workers", 1))
        return procs

    def spawn(self, policy: str | Path | None, **options: Unpack[Options]) -> ProxyProcess:
        """Start the process, without waiting for it (``ProxyProcess.wait_started`` does)."""
        directory = self._directory()
        if isinstance(policy, str):
            path = directory / "policy.yaml"
            path.write_text(policy.replace(CA_PLACEHOLDER, str(self.receiver_ca_file)))
            policy = path
        self.add_names(options.get("names", ()))
        extra = ["--policy-poll", POLICY_POLL, *options.get("args", ())]
        workers = options.get("workers", 1)
        if workers != 1:
            extra += ["--workers", str(workers)]
        proc = ProxyProcess(
            policy,
            options.get("data_dir", directory / "data"),
            dns=[self.dns.spec] if options.get("dns", True) else [],
            extra_args=extra,
            listen=options.get("listen", "127.0.0.1:0"),
            env=options.get("env"),
            wait=False,
        )
        self.started.append((proc, options.get("exit_code", 0)))
        return proc

    def add_names(self, names: Names) -> None:
        if isinstance(names, Mapping):
            for name, addresses in names.items():
                spelled = [addresses] if isinstance(addresses, str) else list(addresses)
                self.dns.add(name, *spelled)
        else:
            for name in names:
                self.dns.add(name, RECEIVER_ADDRESS)

    def stop_all(self) -> None:
        """Stop every process started here (all asked at once), then check how each ended."""
        started, self.started = self.started, []
        for proc, _ in started:
            proc.terminate()
        exits = [(proc, proc.stop(), expected) for proc, expected in started]
        wrong = [
            f"hookwall with {proc.policy} exited {code}, not {expected}: "
            f"{''.join(proc.stderr)[-1000:]}"
            for proc, code, expected in exits
            if expected is not None and code != expected
        ]
        assert not wrong, wrong
