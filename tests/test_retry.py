"""The one retry policy (hydra_plugins.navitune_shared.retry) that the storage, the BigQuery sink and the KFP
client share: how many tries, which errors, which pauses, and that the last error comes out unchanged."""

from __future__ import annotations

import random

import pytest

from hydra_plugins.navitune_shared.retry import Backoff, call_with_retries


class Transient(Exception):
    pass


def flaky(failures: int, error: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "ok"

    return calls, fn


def test_a_transient_error_is_tried_again_with_growing_pauses_and_one_notice_each() -> None:
    calls, fn = flaky(3, Transient("503"))
    slept: list[float] = []
    notices: list[tuple[str, int, float]] = []
    result = call_with_retries(fn, attempts=5, retry_on=lambda e: isinstance(e, Transient),
                               backoff=Backoff(first_s=1.0, factor=2.0, max_s=3.0, jitter=0.0), sleep=slept.append,
                               on_retry=lambda err, n, s: notices.append((str(err), n, s)))
    assert result == "ok" and len(calls) == 4
    assert slept == [1.0, 2.0, 3.0]  # doubled, capped at max_s
    assert notices == [("503", 1, 1.0), ("503", 2, 2.0), ("503", 3, 3.0)]


def test_the_last_tries_error_and_an_error_not_worth_retrying_come_out_unchanged() -> None:
    calls, fn = flaky(10, Transient("still down"))
    with pytest.raises(Transient, match="still down"):
        call_with_retries(fn, attempts=3, retry_on=lambda e: True, backoff=Backoff(0.0), sleep=lambda s: None)
    assert len(calls) == 3
    calls, fn = flaky(10, ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        call_with_retries(fn, attempts=3, retry_on=lambda e: isinstance(e, Transient), backoff=Backoff(0.0),
                          sleep=lambda s: None)
    assert len(calls) == 1


def test_a_sleep_that_raises_ends_the_retries_early() -> None:
    calls, fn = flaky(10, Transient("down"))

    def shutting_down(seconds: float) -> None:
        raise KeyboardInterrupt("shut down")

    with pytest.raises(KeyboardInterrupt):
        call_with_retries(fn, attempts=5, retry_on=lambda e: True, backoff=Backoff(0.1), sleep=shutting_down)
    assert len(calls) == 1


def test_jitter_keeps_each_pause_within_its_band_and_apart_from_another_waiters() -> None:
    b = Backoff(first_s=1.0, factor=2.0, max_s=8.0, jitter=0.5)
    a = b.pauses(random.Random(1))
    c = b.pauses(random.Random(2))
    first_a, first_c = [next(a) for _ in range(6)], [next(c) for _ in range(6)]
    for pauses in (first_a, first_c):
        for nominal, pause in zip([1, 2, 4, 8, 8, 8], pauses):
            assert 0.5 * nominal <= pause <= 1.5 * nominal
    assert first_a != first_c
    assert next(Backoff(first_s=100.0, max_s=60.0, jitter=0.0).pauses()) == 60.0  # a first pause above the cap


@pytest.mark.parametrize("kwargs", [dict(first_s=-1.0), dict(first_s=1.0, factor=0.5), dict(first_s=1.0, max_s=0.0),
                                    dict(first_s=1.0, jitter=1.0)])
def test_a_bad_backoff_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="invalid back-off"):
        Backoff(**kwargs)


def test_at_least_one_try() -> None:
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        call_with_retries(lambda: None, attempts=0, retry_on=lambda e: True, backoff=Backoff(0.0))
