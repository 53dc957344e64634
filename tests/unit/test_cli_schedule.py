"""When ``originlock status`` says the next scheduled rotation is."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from originlock.schedule import UnsupportedExpression, next_run

NOW = datetime(2026, 11, 25, 17, 0, 30, tzinfo=UTC)  # a Wednesday


def test_schedule_rate_counts_whole_periods_from_its_start() -> None:
    created = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)

    assert next_run("rate(7 days)", "UTC", created, NOW) == datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert next_run("rate(1 hour)", None, created, NOW) == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


def test_schedule_rate_not_started_yet_runs_at_its_start() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)

    assert next_run("rate(30 days)", "UTC", start, NOW) == start


@pytest.mark.parametrize(
    ("expression", "timezone", "expected"),
    [
        ("cron(0 3 * * ? *)", "UTC", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
        ("cron(*/15 * * * ? *)", "UTC", datetime(2026, 11, 25, 17, 15, tzinfo=UTC)),
        ("cron(0 3 ? * SUN *)", "UTC", datetime(2026, 11, 29, 3, 0, tzinfo=UTC)),
        ("cron(0 3 ? * 1 *)", "UTC", datetime(2026, 11, 29, 3, 0, tzinfo=UTC)),
        ("cron(0 9 ? * MON-FRI *)", "UTC", datetime(2026, 11, 26, 9, 0, tzinfo=UTC)),
        ("cron(0 0 1 JAN,JUL ? *)", "UTC", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("cron(30 2 1 * ? *)", "Europe/Berlin", datetime(2026, 12, 1, 1, 30, tzinfo=UTC)),
        ("cron(0 0 1 1 ? 2025)", "UTC", None),
    ],
)
def test_schedule_cron_next_minute_it_selects(
    expression: str, timezone: str, expected: datetime | None
) -> None:
    assert next_run(expression, timezone, None, NOW) == expected


def test_schedule_at_runs_once() -> None:
    assert next_run("at(2026-12-24T18:00:00)", "UTC", None, NOW) == datetime(
        2026, 12, 24, 18, 0, tzinfo=UTC
    )
    assert next_run("at(2026-01-01T00:00:00)", "UTC", None, NOW) is None


@pytest.mark.parametrize(
    "expression",
    ["cron(0 3 L * ? *)", "cron(0 3 ? * 2#1 *)", "cron(0 3 * *)", "rate(soon)", "every day"],
)
def test_schedule_forms_not_evaluated_are_said_so(expression: str) -> None:
    with pytest.raises(UnsupportedExpression):
        next_run(expression, "UTC", NOW, NOW)
