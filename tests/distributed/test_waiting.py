"""The wait loop every MPI collective completes through: it yields the core while it waits
(a spinning rank steals the time of the rank it waits for when there are more processes than
cores), and it ends past the timeout naming what it waited for."""

from __future__ import annotations

import time

import pytest

from xpnn.distributed.waiting import SLEEP_S, Waiter


def test_a_long_wait_polls_between_sleeps_and_leaves_the_core_idle() -> None:
    polls, wait_s = [0], 0.4
    deadline = time.perf_counter() + wait_s

    def done() -> bool:
        polls[0] += 1
        return time.perf_counter() >= deadline

    cpu = time.process_time()
    Waiter(None, lambda what, waited: None).wait(done, "nothing")
    cpu = time.process_time() - cpu
    # a busy loop polls millions of times in 0.4 s; sleeping SLEEP_S between polls allows at
    # most wait_s / SLEEP_S of them, plus those of the first SPIN_S (well under 10,000)
    assert polls[0] <= wait_s / SLEEP_S + 10_000
    assert cpu < 0.5 * wait_s


def test_a_wait_past_the_timeout_calls_expired_with_what_and_how_long() -> None:
    calls: list[tuple[str, float]] = []

    def expired(what: str, waited: float) -> None:
        calls.append((what, waited))
        raise TimeoutError(what)

    with pytest.raises(TimeoutError):
        Waiter(0.05, expired).wait(lambda: False, lambda: "the gradient all-reduce (epoch 1)")
    ((what, waited),) = calls
    assert what == "the gradient all-reduce (epoch 1)"
    assert 0.05 <= waited < 5.0


def test_an_expired_that_returns_is_an_error_not_a_silent_return() -> None:
    with pytest.raises(AssertionError, match="expired returned"):
        Waiter(0.01, lambda what, waited: None).wait(lambda: False, "x")


def test_a_wait_already_done_returns_at_once_without_sleeping() -> None:
    start = time.perf_counter()
    Waiter(1e-9, lambda what, waited: None).wait(lambda: True, "x")
    assert time.perf_counter() - start < SLEEP_S * 100
