"""Where the repository and the test policies are, from any test module."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "tests" / "policies"
