"""The report framework: one definition (columns, rows, totals) per report, a registry, and the header.

A report's query takes a `Ctx` (session, clock, settings, the period of gaming days, the instant of
generation) and returns a `Table`; `build()` wraps it in a `Document` with the header every format
prints (http-api.md): report, title, property, period, software version, generation time.
Renderers (reports/render.py) turn one Document into HTML, CSV, PDF or JSON.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy.orm import Session

from server.errors import DomainError, InvalidInput, NotFound
from server.gamingday import GamingDayClock

FORMATS = ("json", "csv", "pdf", "html")
MAX_RANGE_DAYS = 366
# Column kinds: how a value prints at the edge (HTML/PDF); JSON and CSV always carry the raw value.
KINDS = ("text", "int", "cents", "bp", "date", "instant", "bool")


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str = "text"

    def to_dict(self) -> dict:
        return {"key": self.key, "title": self.title, "kind": self.kind}


@dataclass
class Table:
    columns: list[Column]
    rows: list[dict]
    totals: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Period:
    """Gaming days `start`..`end`, both inclusive; one day when they are equal."""

    start: dt.date
    end: dt.date

    @property
    def gaming_day(self) -> dt.date | None:
        return self.start if self.start == self.end else None

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]


@dataclass
class Ctx:
    session: Session
    clock: GamingDayClock
    settings: Any
    period: Period
    now: dt.datetime

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """UTC [from, to) of the whole period."""
        return self.clock.bounds(self.period.start)[0], self.clock.bounds(self.period.end)[1]


@dataclass(frozen=True)
class ReportDef:
    name: str
    title: str
    query: Callable[[Ctx], Table]
    description: str = ""
    ranges: bool = True  # accepts from/to besides gaming_day

    def parameters(self) -> list[str]:
        return ["gaming_day", "from", "to", "format"] if self.ranges else ["gaming_day", "format"]


REGISTRY: dict[str, ReportDef] = {}


def report(name: str, title: str, *, ranges: bool = True):
    def deco(fn: Callable[[Ctx], Table]):
        REGISTRY[name] = ReportDef(name, title, fn, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
                                   ranges)
        return fn

    return deco


class ReportUnavailable(DomainError):
    """A report whose data comes from a package this build does not have yet."""

    code = "report_unavailable"
    status = 501


def get(name: str) -> ReportDef:
    _load()
    d = REGISTRY.get(name)
    if d is None:
        raise NotFound(f"no report {name!r}", code="report_not_found", field="name")
    return d


def all_reports() -> list[ReportDef]:
    _load()
    return list(REGISTRY.values())


def _load() -> None:
    import reports.definitions  # noqa: F401  (registers the reports on import)


def iso(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if t else None


def software_version() -> str:
    try:
        from importlib.metadata import version

        return version("floorhost")
    except Exception:
        return "0.0.0+unknown"


def parse_period(gaming_day: str | None, start: str | None, end: str | None, today: dt.date) -> Period:
    """`gaming_day`, or `from`/`to` (both inclusive gaming days); none at all means today."""
    def day(raw: str, name: str) -> dt.date:
        try:
            return dt.date.fromisoformat(raw)
        except (TypeError, ValueError):
            raise InvalidInput(f"{name} must be YYYY-MM-DD", code="invalid_input", field=name) from None

    if gaming_day:
        if start or end:
            raise InvalidInput("give gaming_day or from/to, not both", code="invalid_input", field="gaming_day")
        d = day(gaming_day, "gaming_day")
        return Period(d, d)
    if start or end:
        if not (start and end):
            raise InvalidInput("from and to go together", code="invalid_input", field="to" if start else "from")
        a, b = day(start, "from"), day(end, "to")
        if b < a:
            raise InvalidInput("to is before from", code="invalid_input", field="to")
        if (b - a).days >= MAX_RANGE_DAYS:
            raise InvalidInput(f"a range covers at most {MAX_RANGE_DAYS} gaming days", code="invalid_input",
                               field="to")
        return Period(a, b)
    return Period(today, today)


@dataclass
class Document:
    report: str
    title: str
    property: str
    period: dict
    software_version: str
    generated_at: str
    columns: list[Column]
    rows: list[dict]
    totals: dict
    label: str | None = None  # an archived correction's label

    def header(self) -> dict:
        return {"report": self.report, "title": self.title, "property": self.property, "period": self.period,
                "software_version": self.software_version, "generated_at": self.generated_at}

    def to_dict(self) -> dict:
        return {**self.header(), "columns": [c.to_dict() for c in self.columns], "rows": self.rows,
                "totals": self.totals}


def build(session: Session, clock: GamingDayClock, settings, name: str, period: Period, now: dt.datetime) -> Document:
    d = get(name)
    if period.gaming_day is None and not d.ranges:
        raise InvalidInput(f"{name} is per gaming day: give gaming_day", code="invalid_input", field="gaming_day")
    ctx = Ctx(session, clock, settings, period, now)
    table = d.query(ctx)
    start, end = ctx.bounds()
    return Document(
        report=d.name, title=d.title, property=settings.property_name,
        period={"gaming_day": period.gaming_day.isoformat() if period.gaming_day else None,
                "from": iso(start), "to": iso(end)},
        software_version=software_version(), generated_at=iso(now),
        columns=table.columns, rows=table.rows, totals=table.totals)


def ratio_bp(num: int, den: int) -> int:
    """num / den in basis points, rounded half away from zero, integers only; 0 when den is 0."""
    if den == 0:
        return 0
    sign = -1 if (num < 0) != (den < 0) else 1
    n, d = abs(num) * 10000, abs(den)
    return sign * ((2 * n + d) // (2 * d))


def div_round(num: int, den: int) -> int:
    """num / den rounded half away from zero (integers)."""
    if den == 0:
        return 0
    sign = -1 if (num < 0) != (den < 0) else 1
    n, d = abs(num), abs(den)
    return sign * ((2 * n + d) // (2 * d))
