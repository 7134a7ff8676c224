"""Run hookwall as if some packages were not installed (the extras ``hookwall[redis]`` and
``hookwall[uvloop]``), in a process of its own.

``hiding_env`` writes a ``sitecustomize.py`` that puts an import-blocking finder first on
``sys.meta_path``: importing a hidden package raises ``ModuleNotFoundError`` exactly as when
it is absent, and ``importlib.util.find_spec`` does not see it either. Each attempt is also
appended to a file (``attempts``), so a test can tell "never imported" from "imported, and
the error was swallowed".
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tests.support.paths import REPO

SITECUSTOMIZE = '''\
import os
import sys

HIDDEN = frozenset(os.environ["HOOKWALL_TEST_HIDDEN"].split(","))
LOG = os.environ["HOOKWALL_TEST_HIDDEN_LOG"]


class HideModules:
    """Not installed, as far as this process can tell."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            with open(LOG, "a") as log:
                log.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, HideModules())
'''


def hiding_env(directory: Path, hidden: Iterable[str]) -> dict[str, str]:
    """An environment whose Python cannot import ``hidden``; attempts go to
    ``attempts(directory)``."""
    site = directory / "hide-site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = directory / "hidden-imports.log"
    log.write_text("")
    path = [str(site), str(REPO / "src"), str(REPO)]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return env | {
        "PYTHONPATH": os.pathsep.join(path),
        "HOOKWALL_TEST_HIDDEN": ",".join(hidden),
        "HOOKWALL_TEST_HIDDEN_LOG": str(log),
    }


def attempts(directory: Path) -> list[str]:
    """The hidden modules the process tried to import, in order."""
    return (directory / "hidden-imports.log").read_text().split()
