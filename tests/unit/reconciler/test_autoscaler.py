"""The autoscaler's arithmetic and cooldown, with a fake clock."""
from __future__ import annotations

import pytest

from hangar.reconciler.loops.autoscaler import Cooldown, desired_workers


@pytest.mark.parametrize(("queued", "running", "concurrency", "expected"), [
    (0, 0, 5, 1),      # never below the minimum
    (1, 0, 5, 1),
    (5, 0, 5, 1),
    (6, 0, 5, 2),      # ceil
    (10, 6, 5, 4),
    (200, 0, 5, 4),    # never above the maximum
    (0, 7, 5, 2),      # running tasks count as much as queued ones
])
def test_desired_is_clamped_ceil_of_demand_over_concurrency(queued, running, concurrency, expected):
    assert desired_workers(queued=queued, running=running, concurrency=concurrency, minimum=1, maximum=4) == expected


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_scale_up_is_immediate():
    cooldown = Cooldown(seconds=60, clock=Clock())
    assert cooldown.target(current=1, desired=4) == 4


def test_scale_down_waits_for_the_cooldown_of_continuously_lower_demand():
    clock = Clock()
    cooldown = Cooldown(seconds=60, clock=clock)
    assert cooldown.target(current=4, desired=1) == 4
    clock.now += 59
    assert cooldown.target(current=4, desired=2) == 4
    clock.now += 1
    assert cooldown.target(current=4, desired=1) == 2  # the most wanted during the cooldown


def test_a_burst_during_the_cooldown_starts_it_again():
    clock = Clock()
    cooldown = Cooldown(seconds=60, clock=clock)
    assert cooldown.target(current=4, desired=1) == 4
    clock.now += 50
    assert cooldown.target(current=4, desired=4) == 4  # demand back: the wait is forgotten
    clock.now += 20
    assert cooldown.target(current=4, desired=1) == 4
    clock.now += 59
    assert cooldown.target(current=4, desired=1) == 4
    clock.now += 1
    assert cooldown.target(current=4, desired=1) == 1
