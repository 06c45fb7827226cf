"""`[sync] schedule` fires when cron would: Sunday is 0 and 7 (APScheduler 3's own numbering
starts the week on Monday), and a day of the month or of the week is enough when both are
given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.config import SyncSettings
from syncd.cron import cron_trigger
from syncd.daemon import schedule_of

SUNDAY = datetime(2026, 11, 22, tzinfo=UTC)  # a Sunday, 00:00


def fires(expression: str, count: int) -> list[str]:
    """The next `count` fire times after SUNDAY, as "Mon 23 09:00"."""
    trigger = cron_trigger(expression)
    found, previous, moment = [], None, SUNDAY - timedelta(microseconds=1)
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, moment)
        assert fire is not None
        found.append(fire.strftime("%a %d %H:%M"))
        previous, moment = fire, fire + timedelta(microseconds=1)
    return found


def test_monday_to_friday_is_one_to_five() -> None:
    assert fires("0 9 * * 1-5", 6) == [
        "Mon 23 09:00", "Tue 24 09:00", "Wed 25 09:00", "Thu 26 09:00", "Fri 27 09:00",
        "Mon 30 09:00",
    ]


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
def test_sunday_is_zero_and_seven(sunday: str) -> None:
    assert fires(f"30 6 * * {sunday}", 2) == ["Sun 22 06:30", "Sun 29 06:30"]


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("*/2", {"Sun", "Tue", "Thu", "Sat"}),
        ("5-7", {"Fri", "Sat", "Sun"}),
        ("0,6", {"Sat", "Sun"}),
        ("mon-wed,5", {"Mon", "Tue", "Wed", "Fri"}),
    ],
)
def test_lists_ranges_and_steps_name_cron_days(field: str, days: set[str]) -> None:
    assert {when[:3] for when in fires(f"0 12 * * {field}", 14)} == days


def test_a_day_of_the_month_or_of_the_week_is_enough_as_in_cron() -> None:
    # The 1st of December is a Tuesday: cron fires on it as well as on Mondays.
    assert fires("0 0 1 * 1", 4) == ["Mon 23 00:00", "Mon 30 00:00", "Tue 01 00:00", "Mon 07 00:00"]


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("0 0 * * 8", "day of week 8 is past 7"),
        ("0 0 * * 5-1", "runs backwards"),
        ("0 0 * * someday", "is not a day of the week"),
        ("0 0 * * 1/0", "must be 1 or more"),
        ("0 0 * *", "Wrong number of fields"),
        ("61 0 * * *", "61"),
    ],
)
def test_what_is_not_cron_is_refused(expression: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        cron_trigger(expression)


def test_the_config_takes_a_weekday_schedule_and_refuses_day_eight() -> None:
    assert SyncSettings(schedule="0 9 * * 1-5").schedule == "0 9 * * 1-5"
    with pytest.raises(ValueError, match=r"is not a cron expression \(day of week 8 is past 7"):
        SyncSettings(schedule="0 9 * * 8")


def test_a_weekday_schedule_is_healthy_over_the_weekend() -> None:
    """The health window is the longest gap between fire times: Friday 09:00 to Monday 09:00."""
    trigger, period = schedule_of(SyncSettings(schedule="0 9 * * 1-5"), now=SUNDAY)
    assert period == timedelta(days=3)
    assert trigger.get_next_fire_time(None, SUNDAY) == SUNDAY + timedelta(days=1, hours=9)
