"""Where a policy problem is and what to do about it.

Loading collects every issue before failing, so an operator fixes a file in one pass
instead of one error per run.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Location", "PolicyError", "PolicyIssue"]


@dataclass(frozen=True, slots=True)
class Location:
    """A 1-based position in a policy file, as editors and compilers print it."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem; ``location`` is None only for problems with no position (missing file)."""

    location: Location | None
    message: str

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"


class PolicyError(Exception):
    """Every problem found while loading a policy, one per line in ``str()``."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)
