"""The top-level ``limits`` section: where per-destination limits are shared (Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookwall.policy import PolicyError, load_policy, summarize


def test_the_limits_section_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "limits:\n"
        '  backend: "redis://:hunter2@redis:6379/0"\n'
        "  concurrency: 4\n"
        "  on_backend_failure: sometimes\n"
    )
    with pytest.raises(PolicyError) as error:
        load_policy(bad)
    text = str(error.value)
    assert "hunter2" not in text
    assert "limits.backend" in text and "password" in text
    assert "limits.concurrency: per-destination limits go in defaults.limits" in text
    assert "limits.on_backend_failure" in text
    good = tmp_path / "good.yaml"
    good.write_text(
        "version: 1\n"
        "limits: {backend: 'rediss://redis:6380/2', password: env:HW_TEST_REDIS, "
        "on_backend_failure: refuse, lease: 5s, timeout: 250ms}\n"
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HW_TEST_REDIS", "s3cret-value")
        shared = load_policy(good).shared_limits
    assert shared is not None
    assert (shared.backend, shared.on_backend_failure, shared.lease, shared.timeout) == (
        "rediss://redis:6380/2",
        "refuse",
        5.0,
        0.25,
    )
    assert shared.password == "s3cret-value" and "s3cret" not in repr(shared)


def test_one_limits_section_per_policy_directory(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("version: 1\nlimits: {backend: 'redis://r:6379/0'}\n")
    with pytest.raises(PolicyError, match="limits: already defined in"):
        load_policy(tmp_path)


def test_the_summary_says_where_limits_are_shared(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nlimits: {backend: 'redis://r:6379/0'}\n")
    assert "limits: shared in redis://r:6379/0" in summarize(load_policy(path))
    path.write_text("version: 1\n")
    assert load_policy(path).shared_limits is None
