"""ByteBudget: request bodies in memory, reserved before they are read."""

from __future__ import annotations

from hookwall.bounds.budget import ByteBudget


def test_reservations_fit_under_the_limit_and_come_back() -> None:
    budget = ByteBudget()
    assert budget.reserve(600, limit=1000) and budget.reserve(400, limit=1000)
    assert not budget.reserve(1, limit=1000)
    budget.give_back(400)
    assert budget.reserve(300, limit=1000)
    assert (budget.in_use, budget.peak) == (900, 1000)


def test_no_body_always_fits_and_one_large_body_fits_alone() -> None:
    budget = ByteBudget()
    assert budget.reserve(0, limit=10)
    assert budget.reserve(50, limit=10)  # its destination's own cap allowed it
    assert not budget.reserve(5, limit=10)
    budget.give_back(50)
    budget.give_back(50)  # never below zero
    assert budget.in_use == 0
