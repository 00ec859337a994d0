"""The per-minute hash budgets counted in the process (registry.ratelimits), on the real Redis.

A send to Redis is held back here (it waits for an event before it goes), so that calls overlap
in the order a loaded machine would give them; the count itself is always Redis's own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.core.cache import cache

from registry import ratelimits
from registry.ratelimits import _LocalBudgets

LIMIT = 50


@pytest.fixture
def budgets() -> Iterator[_LocalBudgets]:
    cache.clear()
    yield _LocalBudgets()
    cache.clear()


def _window() -> tuple[str, int]:
    window = int(time.time()) // 60
    return f"rl:test-budget:{window}", window


def _held_first_send(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event]:
    """The first send waits for ``release``; ``sending`` is set once it is waiting."""
    real: Callable[[str, int], int] = ratelimits._window_add
    sending, release = threading.Event(), threading.Event()
    first = [True]

    def held(cache_key: str, count: int) -> int:
        if first[0]:
            first[0] = False
            sending.set()
            release.wait(10)
        return real(cache_key, count)

    monkeypatch.setattr(ratelimits, "_window_add", held)
    return sending, release


def test_a_call_near_the_budget_is_judged_on_a_count_with_every_hash_let_through_before(
    budgets: _LocalBudgets, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, window = _window()
    # 40 hashes counted and sent: the shared count is 40, synced just now.
    assert budgets.add(key, window, 40, LIMIT) == 40
    # 5 calls of one hash let through locally (under 90% of the budget, synced recently).
    assert [budgets.add(key, window, 1, LIMIT) for _ in range(5)] == [41, 42, 43, 44, 45]
    sending, release = _held_first_send(monkeypatch)
    answers: list[int] = []
    # The next call passes 90%: it sends the 6 hashes pending, and its send is held.
    first = threading.Thread(target=lambda: answers.append(budgets.add(key, window, 1, LIMIT)))
    first.start()
    assert sending.wait(10)
    # Another call while that send is in flight must not be judged on a count without it.
    second = threading.Thread(target=lambda: answers.append(budgets.add(key, window, 1, LIMIT)))
    second.start()
    second.join(0.5)
    release.set()
    first.join(10)
    second.join(10)
    assert sorted(answers) == [46, 47]
    assert int(cache.get(key)) == 47


def test_every_call_over_the_budget_is_refused_from_many_threads(
    budgets: _LocalBudgets,
) -> None:
    key, window = _window()
    answers: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def caller() -> None:
        start.wait()
        for _ in range(5):
            used = budgets.add(key, window, 1, LIMIT)
            with lock:
                answers.append(used)

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if int(time.time()) // 60 != window:
        pytest.skip("the minute window closed during the calls")
    assert sum(1 for used in answers if used <= LIMIT) == LIMIT
    assert int(cache.get(key)) == 100
