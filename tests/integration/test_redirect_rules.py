"""``hookwall redirect-rules``, applied: the printed rules, in a network namespace of their own,
send a sender's connection to hookwall's port and leave hookwall's own alone.

In each test a fresh namespace (``tests/support/nestedns.py``) holds a stand-in for
hookwall's transparent listener on the redirect port and a canary on another port. A
connection to the canary made as a redirected uid (``setpriv``) must land on the stand-in,
the canary seeing nothing of it; the same connection as root, the exempt uid here (hookwall's
own in a real deployment), must reach the canary. Each format is applied with its own tool:
iptables-restore and ip6tables-restore (the nf_tables and, where present, the legacy
backend) and nft -f. Removal must leave exactly what was there before.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest

from hookwall.cli.main import main
from tests.support.nestedns import NestedNetns, TagListener, cgroup2_root, python_for, skip_reason

SENDER = 1234  # a redirected uid
OTHER = 4321  # a uid no rule names
HOOKWALL = 0  # root stands for hookwall's own uid: --exempt-uid 0

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def redirect_rules(*args: str) -> str:
    """What ``hookwall redirect-rules ARGS`` prints (it must succeed): the command's own
    ``main``, in this process (a process of its own would start in a second, each time)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["redirect-rules", *args]) == 0
    return out.getvalue()


@dataclass(frozen=True)
class Backend:
    """One way of applying the rules: a format's tool (or the two tools of iptables)."""

    name: str
    restore4: str | None = None  # iptables-restore, iptables-legacy-restore
    restore6: str | None = None

    @property
    def tools(self) -> list[str]:
        return ["nft"] if self.name == "nft" else [str(self.restore4), str(self.restore6)]

    def _listing(self, restore: str) -> list[str]:
        return [restore.removesuffix("-restore"), "-t", "nat", "-S"]

    def apply(self, ns: NestedNetns, args: list[str]) -> None:
        if self.name == "nft":
            ns.run(_nft(), input=redirect_rules(*args, "--format", "nft"))
            return
        for fmt, restore in (("iptables", self.restore4), ("ip6tables", self.restore6)):
            ns.run([str(restore), "--noflush"], input=redirect_rules(*args, "--format", fmt))

    def remove(self, ns: NestedNetns) -> list[subprocess.CompletedProcess[str]]:
        if self.name == "nft":
            return [ns.run(["nft", "-f", "-"], input=redirect_rules("--remove", "--format", "nft"))]
        return [
            ns.run(
                [str(restore), "--noflush"],
                input=redirect_rules("--remove", "--format", fmt),
                check=False,
            )
            for fmt, restore in (("iptables", self.restore4), ("ip6tables", self.restore6))
        ]

    def snapshot(self, ns: NestedNetns) -> str:
        """Every rule of the namespace this backend can see."""
        if self.name == "nft":
            return ns.run(["nft", "list", "ruleset"]).stdout
        return "".join(
            ns.run(self._listing(str(restore))).stdout for restore in (self.restore4, self.restore6)
        )

    def check(self, ns: NestedNetns) -> str:
        """The header's `check:` command: what an operator looks at."""
        if self.name == "nft":
            return ns.run(["nft", "list", "table", "inet", "hookwall"]).stdout
        return "".join(
            ns.run([*self._listing(str(restore)), "HOOKWALL_OUTPUT"]).stdout
            for restore in (self.restore4, self.restore6)
        )


def _nft() -> list[str]:
    """``nft -f -``; nft resolves a cgroup path under /sys/fs/cgroup, so where the cgroup v2
    hierarchy is mounted elsewhere (a hybrid host) it is mounted there in a mount namespace
    of nft's own."""
    root = cgroup2_root()
    if root is None or root == Path("/sys/fs/cgroup"):
        return ["nft", "-f", "-"]
    mount = "mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec nft -f -"
    return ["unshare", "--mount", "--", "sh", "-c", mount]


BACKENDS = [
    Backend("iptables-nft", "iptables-nft-restore", "ip6tables-nft-restore"),
    Backend("iptables-legacy", "iptables-legacy-restore", "ip6tables-legacy-restore"),
    Backend("nft"),
]


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    chosen: Backend = request.param
    missing = [tool for tool in chosen.tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    return chosen


@pytest.fixture
def ns() -> Iterator[NestedNetns]:
    for uid in (SENDER, OTHER):
        if python_for(uid) is None:
            pytest.skip(f"no Python interpreter that uid {uid} may run, for the client")
    with NestedNetns() as namespace:
        yield namespace


@pytest.fixture
def stand_in(ns: NestedNetns) -> Iterator[TagListener]:
    """Where hookwall's transparent listener would be: the redirect port."""
    with ns.listener("stand-in") as listener:
        yield listener


@pytest.fixture
def canary(ns: NestedNetns) -> Iterator[TagListener]:
    """What a sender asks for: 127.0.0.1 or ::1 on a port of its own."""
    with ns.listener("canary") as listener:
        yield listener


# -- what is redirected --------------------------------------------------------------------


def test_sidecar_redirects_every_user_but_hookwalls(
    backend: Backend, ns: NestedNetns, stand_in: TagListener, canary: TagListener
) -> None:
    with ns.listener("database") as database:
        backend.apply(
            ns,
            [
                *("--exempt-uid", str(HOOKWALL), "--port", str(stand_in.port)),
                *("--exclude-cidr", f"127.0.0.1/32:{database.port}"),
            ],
        )
        # Every sender's connection, loopback included, IPv4 and IPv6, goes to hookwall.
        for uid in (SENDER, OTHER):
            assert ns.connect("127.0.0.1", canary.port, uid=uid) == "stand-in"
            assert ns.connect("::1", canary.port, uid=uid) == "stand-in"
        # The exception is exactly what was excluded: that port of 127.0.0.1, not of ::1.
        assert ns.connect("127.0.0.1", database.port, uid=SENDER) == "database"
        assert ns.connect("::1", database.port, uid=SENDER) == "stand-in"
        # hookwall's own connections go where they were going.
        assert ns.connect("127.0.0.1", canary.port) == "canary"
        assert ns.connect("::1", canary.port) == "canary"
        assert database.stop() == ["::ffff:127.0.0.1"]
    assert sorted(canary.stop()) == ["::1", "::ffff:127.0.0.1"]  # root's two, nothing else
    assert len(stand_in.stop()) == 5
    assert "HOOKWALL_OUTPUT" in backend.check(ns) or "table inet hookwall" in backend.check(ns)


def test_only_the_named_uid_is_redirected(
    backend: Backend, ns: NestedNetns, stand_in: TagListener, canary: TagListener
) -> None:
    with ns.listener("direct") as direct:
        backend.apply(
            ns,
            [
                *("--uid", str(SENDER), "--exempt-uid", str(HOOKWALL)),
                *("--port", str(stand_in.port), "--exclude-port", str(direct.port)),
            ],
        )
        assert ns.connect("127.0.0.1", canary.port, uid=SENDER) == "stand-in"
        assert ns.connect("::1", canary.port, uid=SENDER) == "stand-in"
        assert ns.connect("::1", direct.port, uid=SENDER) == "direct"  # --exclude-port
        assert ns.connect("127.0.0.1", canary.port, uid=OTHER) == "canary"
        assert ns.connect("::1", canary.port) == "canary"
    assert len(canary.stop()) == 2 and len(stand_in.stop()) == 2


@pytest.fixture
def cgroup() -> Iterator[tuple[str, Path]]:
    """A cgroup two levels below the v2 root (the nft rule's level must be right), as the
    path redirect-rules takes and as its directory."""
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    top = root / f"hookwall-test-{uuid4().hex[:8]}"
    try:
        (top / "app").mkdir(parents=True)
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup under {root}: {exc}")
    try:
        yield f"{top.name}/app", top / "app"
    finally:
        (top / "app").rmdir()
        top.rmdir()


def test_only_the_named_cgroup_is_redirected(
    backend: Backend,
    ns: NestedNetns,
    stand_in: TagListener,
    canary: TagListener,
    cgroup: tuple[str, Path],
) -> None:
    path, directory = cgroup
    backend.apply(
        ns, ["--cgroup", path, "--exempt-uid", str(HOOKWALL), "--port", str(stand_in.port)]
    )
    assert ns.connect("127.0.0.1", canary.port, uid=SENDER, cgroup=directory) == "stand-in"
    assert ns.connect("127.0.0.1", canary.port, uid=SENDER) == "canary"  # not in the cgroup
    # hookwall's uid inside the redirected cgroup is still exempt.
    assert ns.connect("127.0.0.1", canary.port, cgroup=directory) == "canary"
    if backend.name == "nft":
        assert ns.connect("::1", canary.port, uid=SENDER, cgroup=directory) == "stand-in"
    assert len(canary.stop()) == 2


# -- removal and replacement ---------------------------------------------------------------


def test_remove_removes_everything_it_added(
    backend: Backend, ns: NestedNetns, stand_in: TagListener, canary: TagListener
) -> None:
    before = backend.snapshot(ns)
    backend.apply(ns, ["--exempt-uid", str(HOOKWALL), "--port", str(stand_in.port)])
    assert backend.snapshot(ns) != before
    assert ns.connect("127.0.0.1", canary.port, uid=SENDER) == "stand-in"
    assert all(result.returncode == 0 for result in backend.remove(ns))
    assert backend.snapshot(ns) == before
    assert ns.connect("127.0.0.1", canary.port, uid=SENDER) == "canary"
    assert ns.connect("::1", canary.port, uid=SENDER) == "canary"
    again = backend.remove(ns)
    if backend.name == "nft":
        assert again[0].returncode == 0  # removing what is gone is fine
    else:
        assert all(result.returncode != 0 for result in again)  # refused, nothing changed
    assert backend.snapshot(ns) == before


def test_other_rules_are_left_alone(
    backend: Backend, ns: NestedNetns, stand_in: TagListener, canary: TagListener
) -> None:
    """Rules of others (another nft table, a rule in nat OUTPUT) survive apply and remove;
    iptables' jump comes first in OUTPUT."""
    if backend.name == "nft":
        other = "table inet other {\n\tchain c {\n\t\ttype filter hook output priority 0;\n\t}\n}\n"
        ns.run(["nft", "-f", "-"], input=other)
    else:
        for restore in (str(backend.restore4), str(backend.restore6)):
            ns.run([restore.removesuffix("-restore"), "-t", "nat", "-A", "OUTPUT", "-p", "udp"])
    before = backend.snapshot(ns)
    backend.apply(ns, ["--exempt-uid", str(HOOKWALL), "--port", str(stand_in.port)])
    if backend.name != "nft":
        for restore in (str(backend.restore4), str(backend.restore6)):
            listing = ns.run([restore.removesuffix("-restore"), "-t", "nat", "-S", "OUTPUT"])
            rules = [line for line in listing.stdout.splitlines() if line.startswith("-A")]
            assert rules == ["-A OUTPUT -p tcp -j HOOKWALL_OUTPUT", "-A OUTPUT -p udp"]
    assert ns.connect("127.0.0.1", canary.port, uid=SENDER) == "stand-in"
    assert all(result.returncode == 0 for result in backend.remove(ns))
    assert backend.snapshot(ns) == before


def test_applying_again_replaces_the_rules(
    backend: Backend, ns: NestedNetns, stand_in: TagListener, canary: TagListener
) -> None:
    """A second apply (another port) takes over at once. nft replaces its table; iptables
    replaces its chain and adds a second jump, which --remove refuses (changing nothing)
    until the extra jump is deleted as the removal's header says."""
    with ns.listener("stand-in-2") as second:
        backend.apply(ns, ["--exempt-uid", str(HOOKWALL), "--port", str(stand_in.port)])
        backend.apply(ns, ["--exempt-uid", str(HOOKWALL), "--port", str(second.port)])
        assert ns.connect("127.0.0.1", canary.port, uid=SENDER) == "stand-in-2"
        assert ns.connect("::1", canary.port, uid=SENDER) == "stand-in-2"
    if backend.name == "nft":
        assert backend.snapshot(ns).count("table inet hookwall") == 1
        assert backend.remove(ns)[0].returncode == 0
        assert backend.snapshot(ns) == ""
        return
    applied = backend.snapshot(ns)
    assert all(result.returncode != 0 for result in backend.remove(ns))
    assert backend.snapshot(ns) == applied
    for restore in (str(backend.restore4), str(backend.restore6)):
        tool = restore.removesuffix("-restore")
        ns.run([tool, "-t", "nat", "-D", "OUTPUT", "-p", "tcp", "-j", "HOOKWALL_OUTPUT"])
        ns.run([tool, "-t", "raw", "-D", "OUTPUT", "-p", "tcp", "-j", "HOOKWALL_ZONE"])
    assert all(result.returncode == 0 for result in backend.remove(ns))
    assert "HOOKWALL" not in backend.snapshot(ns)
    assert ns.connect("127.0.0.1", canary.port, uid=SENDER) == "canary"
