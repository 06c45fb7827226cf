"""The pacer: at most `limit` calls in any window; a call made in a slot counts from its answer."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from syncd.pacing import Pacer


@dataclass
class Clock:
    """A monotonic clock that only moves when told to (or when the pacer sleeps)."""

    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pacer(limit: int, window: float, clock: Clock) -> Pacer:
    return Pacer(limit, window, clock=clock, sleep=clock.sleep)


def test_wait_counts_a_call_from_when_it_leaves() -> None:
    clock = Clock()
    paced = pacer(2, 10.0, clock)
    assert paced.wait() == 0.0
    clock.now = 3.0
    assert paced.wait() == 0.0
    assert paced.wait() == 7.0  # the first call left at 0: room again at 10
    assert clock.now == 10.0


def test_a_call_in_a_slot_counts_from_when_its_answer_came_back() -> None:
    clock = Clock()
    paced = pacer(2, 10.0, clock)
    with paced.slot() as waited:
        clock.now = 3.0  # the answer takes 3 s: the server counted the call somewhere in 0-3
    assert waited == 0.0
    with paced.slot():
        pass
    with paced.slot() as waited:
        pass
    assert waited == 10.0 and clock.now == 13.0  # 10 s after the first answer, not after 0


def test_a_slot_whose_call_failed_still_counts_it() -> None:
    clock = Clock()
    paced = pacer(1, 10.0, clock)
    with pytest.raises(TimeoutError), paced.slot():
        clock.now = 2.0
        raise TimeoutError
    with paced.slot() as waited:
        pass
    assert waited == 10.0 and clock.now == 12.0


def test_a_call_slower_than_the_window_is_counted_once_from_its_answer() -> None:
    clock = Clock()
    paced = pacer(1, 10.0, clock)
    with paced.slot():
        clock.now = 25.0
        with paced.slot() as waited:  # another thread's call: the slow one has left the window
            pass
        assert waited == 0.0
    with paced.slot() as waited:
        pass
    assert waited == 10.0 and clock.now == 35.0


def test_a_pacer_needs_a_positive_limit_and_window() -> None:
    with pytest.raises(ValueError, match=r"positive limit and window, got 0/10\.0s"):
        Pacer(0, 10.0)
