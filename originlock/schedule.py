"""The next run of an EventBridge Scheduler expression: ``rate(...)``, ``cron(...)``, ``at(...)``.

``GetSchedule`` returns the expression, not the next run, so ``originlock status`` works it
out. Cron uses Scheduler's six fields (minutes hours day-of-month month day-of-week year)
with ``*``, ``?``, lists, ranges, steps and names; the ``L``, ``W`` and ``#`` forms are not
evaluated (the answer is then ``None``: "unknown"). A rate schedule counts periods from its
start date, or its creation date when it has none.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAYS = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)
}
# (low, high, names) per cron field.
_FIELDS: list[tuple[int, int, dict[str, int]]] = [
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, _MONTHS),
    (1, 7, _DAYS),
    (1970, 2199, {}),
]


class UnsupportedExpression(ValueError):
    """An expression this module does not evaluate."""


def _value(text: str, names: dict[str, int]) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise UnsupportedExpression(text)
    return int(text)


def parse_field(text: str, low: int, high: int, names: dict[str, int]) -> set[int] | None:
    """The values a cron field allows; ``None`` for ``*`` or ``?`` (any)."""
    if text in ("*", "?"):
        return None
    allowed: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step_text and (not step_text.isdigit() or step < 1):
            raise UnsupportedExpression(part)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = _value(first, names), _value(last, names)
        else:
            start = _value(base, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise UnsupportedExpression(part)
        allowed.update(range(start, end + 1, step))
    return allowed


def _zone(timezone: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise UnsupportedExpression(f"time zone {timezone}") from None


def next_cron(body: str, timezone: str | None, now: datetime) -> datetime | None:
    """The first minute after *now* that the six-field cron *body* selects."""
    parts = body.split()
    if len(parts) != 6:
        raise UnsupportedExpression(body)
    minutes, hours, dom, months, dow, years = (
        parse_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)
    )
    zone = _zone(timezone)
    local = now.astimezone(zone)
    day = local.date()
    minute_list = sorted(minutes) if minutes is not None else list(range(60))
    hour_list = sorted(hours) if hours is not None else list(range(24))
    for _ in range(366 * 5):
        if (
            (years is None or day.year in years)
            and (months is None or day.month in months)
            and (dom is None or day.day in dom)
            and (dow is None or (day.isoweekday() % 7) + 1 in dow)
        ):
            for hour in hour_list:
                for minute in minute_list:
                    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    if moment > local:
                        return moment.astimezone(UTC)
        day += timedelta(days=1)
    return None


def next_run(
    expression: str,
    timezone: str | None,
    anchor: datetime | None,
    now: datetime | None = None,
) -> datetime | None:
    """When the schedule *expression* fires next (UTC), or ``None`` if it never will.

    Raises
    ------
    UnsupportedExpression
        For an expression (or cron form) this module does not evaluate.
    """
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"\s*(rate|cron|at)\((.*)\)\s*", expression)
    if not match:
        raise UnsupportedExpression(expression)
    kind, body = match.groups()
    if kind == "rate":
        rate = re.fullmatch(r"\s*(\d+)\s+(minute|hour|day)s?\s*", body)
        if not rate or anchor is None or int(rate.group(1)) < 1:
            raise UnsupportedExpression(expression)
        period = timedelta(seconds=int(rate.group(1)) * _UNITS[rate.group(2)])
        if anchor > now:
            return anchor
        elapsed = now - anchor
        return anchor + period * (elapsed // period + 1)
    if kind == "cron":
        return next_cron(body, timezone, now)
    try:
        moment = datetime.fromisoformat(body.strip()).replace(tzinfo=_zone(timezone))
    except ValueError:
        raise UnsupportedExpression(expression) from None
    return moment.astimezone(UTC) if moment > now else None
