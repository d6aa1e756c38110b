"""The one function that maps an instant to its gaming day (rules.md 1)."""
from __future__ import annotations

import datetime as dt
import zoneinfo


class GamingDayClock:
    """A property's gaming day: from `start` local time to the same time next day."""

    def __init__(self, zone: zoneinfo.ZoneInfo | str, start: dt.time | str = "06:00"):
        self.zone = zoneinfo.ZoneInfo(zone) if isinstance(zone, str) else zone
        self.start = dt.time.fromisoformat(start) if isinstance(start, str) else start

    def day_of(self, instant: dt.datetime) -> dt.date:
        if instant.tzinfo is None:
            raise ValueError("gaming_day_of needs an aware datetime")
        local = instant.astimezone(self.zone)
        day = local.date()
        # Before the start time the instant still belongs to yesterday's gaming day.
        if local.timetz().replace(tzinfo=None) < self.start:
            day -= dt.timedelta(days=1)
        return day

    def bounds(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """UTC [from, to) of a gaming day; DST days are 23 or 25 hours long."""
        begin = dt.datetime.combine(day, self.start, tzinfo=self.zone)
        end = dt.datetime.combine(day + dt.timedelta(days=1), self.start, tzinfo=self.zone)
        return begin.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)

    def has_ended(self, day: dt.date, now: dt.datetime) -> bool:
        return now >= self.bounds(day)[1]
