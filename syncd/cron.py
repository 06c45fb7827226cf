"""`[sync] schedule` read as cron reads it, for APScheduler 3.

APScheduler 3's `CronTrigger.from_crontab` numbers the day-of-week field from Monday = 0, where
cron has Sunday = 0 (and 7): "0 9 * * 1-5" fired Tuesday to Saturday. Here the field's numbers
become day names, which both read alike. And where cron fires when *either* the day of the
month or the day of the week matches (both restricted, as in "0 0 1 * 1"), APScheduler's
trigger wants both: the two are joined as an `OrTrigger`, as cron means them.
"""

from __future__ import annotations

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

__all__ = ["cron_trigger"]

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron's numbers: 0 (and 7) to 6
_ANY = ("*", "?")


def cron_trigger(expression: str, timezone: str = "UTC") -> BaseTrigger:
    """The trigger of a five-field cron expression; ValueError where it is not one."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"Wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    days = weekday if weekday in _ANY else _day_names(weekday)

    def trigger(day: str, day_of_week: str) -> CronTrigger:
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=day_of_week, timezone=timezone)

    if day not in _ANY and weekday not in _ANY:
        return OrTrigger([trigger(day, "*"), trigger("*", days)])
    return trigger(day, days)


def _day_names(field: str) -> str:
    """Cron's day-of-week field as the list of days it names: "1-5" is "mon,tue,wed,thu,fri",
    "*/2" is "sun,tue,thu,sat", "5-7" is "sun,fri,sat"."""
    days: set[int] = set()
    for part in field.split(","):
        body, slash, step_text = part.partition("/")
        step = _number(step_text, "step") if slash else 1
        if step < 1:
            raise ValueError(f"the step in {part!r} must be 1 or more")
        if body == "*":
            first, last = 0, 6
        elif "-" in body:
            start, _, end = body.partition("-")
            first, last = _day(start), _day(end)
            if last < first:
                raise ValueError(f"the day-of-week range {body!r} runs backwards")
        else:
            first = _day(body)
            last = 7 if slash else first  # cron's "1/2": from Monday to the week's end
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_DAYS[day] for day in sorted(days))


def _day(text: str) -> int:
    if text.isdigit():
        number = int(text)
        if number > 7:
            raise ValueError(f"day of week {text} is past 7 (cron's 0 and 7 are both Sunday)")
        return number
    name = text.lower()
    if name in _DAYS:
        return _DAYS.index(name)
    raise ValueError(f"{text!r} is not a day of the week (0-7 or sun-sat)")


def _number(text: str, what: str) -> int:
    if not text.isdigit():
        raise ValueError(f"the {what} {text!r} is not a whole number")
    return int(text)
