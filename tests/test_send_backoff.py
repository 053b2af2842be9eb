"""The retry arithmetic of uploader.send.ingestion: full-jitter backoff, Retry-After parsing, the deadline."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uploader.send.ingestion import MAX_DELAY, backoff_delay, is_transient_status, next_delay, parse_retry_after


@given(attempt=st.integers(min_value=0, max_value=10_000), r=st.floats(min_value=0, max_value=1, exclude_max=True),
       base=st.floats(min_value=0.01, max_value=5), cap=st.floats(min_value=0.1, max_value=120))
def test_full_jitter_stays_within_the_exponential_ceiling(attempt: int, r: float, base: float, cap: float) -> None:
    delay = backoff_delay(attempt, base, cap, rand=lambda: r)
    ceiling = min(cap, base * 2.0 ** min(attempt, 64))
    assert 0 <= delay <= ceiling
    assert delay == pytest.approx(r * ceiling)


def test_backoff_ceiling_doubles_then_caps() -> None:
    top = [backoff_delay(a, 0.5, 30.0, rand=lambda: 1.0) for a in range(10)]
    assert top[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert top[6:] == [30.0] * 4
    assert backoff_delay(3, rand=lambda: 0.0) == 0.0  # full jitter reaches zero


@pytest.mark.parametrize(("header", "expected"), [
    ("0", 0.0), ("2", 2.0), (" 7 ", 7.0), ("1.5", 1.5),
    ("-1", None), ("", None), ("soon", None), (None, None), ("nan", None), ("inf", None),
])
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date_counts_from_now() -> None:
    now = dt.datetime(2026, 11, 22, 0, 0, 0, tzinfo=dt.UTC)
    later = email.utils.format_datetime(now + dt.timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(42)
    earlier = email.utils.format_datetime(now - dt.timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after("Sun, 22 Nov 2026 00:00:05 GMT", now=now) == pytest.approx(5)


@given(attempt=st.integers(min_value=0, max_value=50), retry_after=st.floats(min_value=0, max_value=3600))
def test_retry_after_wins_over_backoff(attempt: int, retry_after: float) -> None:
    assert next_delay(attempt, retry_after, rand=lambda: 0.99) == retry_after


@given(attempt=st.integers(min_value=0, max_value=50))
def test_without_retry_after_the_delay_is_bounded_by_the_cap(attempt: int) -> None:
    assert 0 <= next_delay(attempt, None) <= MAX_DELAY


@pytest.mark.parametrize(("status", "transient"), [
    (429, True), (500, True), (502, True), (503, True), (504, True), (599, True),
    (400, False), (401, False), (403, False), (404, False), (413, False), (200, False),
])
def test_transient_statuses(status: int, transient: bool) -> None:
    assert is_transient_status(status) is transient
