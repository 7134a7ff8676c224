"""A clean clone's package works: issue 17's "a clean clone's `pipx install .` gives a
working `hookwall --version` and completion script", as far as it can be done offline.

pipx would build the wheel in an isolated environment and install the dependencies from PyPI;
the test session has no network, so the wheel is built from a ``git clone`` of HEAD (commit
what this test should see) with this venv's setuptools (``--no-build-isolation``), installed
with ``--no-deps`` into a fresh venv, and that venv gets this venv's dependencies through a
``.pth`` file naming a directory of links to them: every one but hookwall itself and the extras
redis and uvloop, so the installed command also runs as it does where the extras are not
installed. Nothing of this checkout's source is on its path (no PYTHONPATH).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import hookwall
from tests.support.paths import REPO

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout: nothing to clone"),
]

# What is not linked into the fresh venv: hookwall (the wheel is), the extras, and what only
# works in a site directory of its own.
NOT_LINKED = ("hookwall", "__editable__", "redis", "uvloop", "__pycache__")
REDIS_POLICY = """\
version: 1
limits:
  backend: redis://127.0.0.1:6379/0
destinations:
  - hosts: [hooks.example.com]
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site: Path  # the fresh venv's site-packages

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """The installed ``hookwall`` with ``args``, without this checkout on its path."""
        return subprocess.run(
            [str(self.venv / "bin" / "hookwall"), *args],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=cwd,
        )

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and "proxy" not in k.lower()
    }


def step(*args: str | Path, cwd: Path | None = None) -> None:
    result = subprocess.run(
        [str(arg) for arg in args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"


def link_dependencies(into: Path) -> None:
    """A directory of links to this venv's installed packages, but the ones NOT_LINKED."""
    into.mkdir()
    site = Path(sysconfig.get_path("purelib"))
    for entry in site.iterdir():
        if entry.name.lower().startswith(NOT_LINKED) or entry.suffix == ".pth":
            continue
        (into / entry.name).symlink_to(entry)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("packaging")
    clone, wheels, venv = work / "clone", work / "wheels", work / "venv"
    step("git", "clone", "--quiet", REPO, clone)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    step(*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", wheels, clone)  # fmt: skip
    (wheel,) = wheels.glob("hookwall-*.whl")
    step(sys.executable, "-m", "venv", "--without-pip", venv)
    step(*pip, "--python", venv / "bin" / "python", "install", "--quiet", "--no-deps",
         "--no-index", wheel)  # fmt: skip
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", purelib],
            env=clean_env(), capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()
    )  # fmt: skip
    link_dependencies(work / "deps")
    (site / "hookwall-test-deps.pth").write_text(f"{work / 'deps'}\n")
    return Installed(wheel, venv, site)


def test_the_installed_hookwall_is_the_wheel_and_nothing_else(installed: Installed) -> None:
    result = installed.python(
        "import hookwall, importlib.util as u; print(hookwall.__file__); "
        "print(u.find_spec('redis'), u.find_spec('uvloop'))"
    )
    assert result.returncode == 0, result.stderr
    where, extras = result.stdout.splitlines()
    assert Path(where).is_relative_to(installed.site)
    assert extras == "None None"  # the extras really are not installed there


def test_hookwall_version_is_the_package_version(installed: Installed) -> None:
    result = installed.run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"hookwall {hookwall.__version__}\n"
    metadata = installed.python("import importlib.metadata as m; print(m.version('hookwall'))")
    assert metadata.stdout.strip() == hookwall.__version__  # pyproject's dynamic version
    assert installed.wheel.name.startswith(f"hookwall-{hookwall.__version__}-")


def test_the_wheel_ships_the_package_data_and_the_licence(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    dist_info = f"hookwall-{hookwall.__version__}.dist-info"
    for needed in (
        "hookwall/policies/default.yaml",
        "hookwall/policies/hookwall.schema.json",  # hookwall schema; the policies' $schema
        "hookwall/py.typed",
        f"{dist_info}/licenses/LICENSE",
        f"{dist_info}/entry_points.txt",
    ):
        assert needed in names
    metadata = zipfile.ZipFile(installed.wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Provides-Extra: redis" in metadata and "Provides-Extra: uvloop" in metadata
    assert "Requires-Dist: redis" in metadata.split('extra == "redis"')[0].splitlines()[-1]


def test_the_installed_completion_script_loads_and_completes(installed: Installed) -> None:
    script = installed.run("completion", "bash")
    assert script.returncode == 0, script.stderr
    bash = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c",
         'source /dev/stdin; complete -p hookwall; COMP_WORDS=(hookwall lo); COMP_CWORD=1; '
         'COMP_LINE="hookwall lo"; COMP_POINT=11; _shtab_hookwall hookwall lo hookwall; '
         'printf "%s\\n" "${COMPREPLY[@]}"'],
        input=script.stdout, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert bash.stdout.splitlines() == [
        "complete -o bashdefault -F _shtab_hookwall hookwall",
        "logs",
    ]
    for shell in ("zsh", "fish"):
        assert installed.run("completion", shell).returncode == 0


def test_the_installed_check_reads_the_packaged_default_policy(installed: Installed) -> None:
    packaged = installed.site / "hookwall" / "policies" / "default.yaml"
    result = installed.run("check", str(packaged))
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("policy OK\n")


def test_without_the_extras_the_installed_run_says_what_to_install(
    installed: Installed, tmp_path: Path
) -> None:
    policy = tmp_path / "redis.yaml"
    policy.write_text(REDIS_POLICY)
    common = ["--listen", "127.0.0.1:0", "--admin-listen", "off", "--data-dir", str(tmp_path)]
    redis = installed.run("run", "--policy", str(policy), *common)
    assert redis.returncode == 1
    assert "install hookwall[redis]: pip install 'hookwall[redis]'" in redis.stderr
    uvloop = installed.run("run", "--event-loop", "uvloop", *common)
    assert uvloop.returncode == 1
    assert "install hookwall[uvloop]: pip install 'hookwall[uvloop]'" in uvloop.stderr
    # the range from the wheel's metadata: a bare `pipx inject hookwall uvloop` gets 0.23
    assert "pipx inject hookwall 'uvloop<0.23," in uvloop.stderr
    assert "pipx inject hookwall 'redis<9," in redis.stderr
    for result in (redis, uvloop):
        assert "Traceback" not in result.stderr and result.stdout == ""
