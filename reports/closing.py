"""Closing a gaming day, and the immutable archive of its reports (http-api.md; rules.md 1, 6, 31).

Closing a day that has ended: claim it (one row per day), raise the meter-reconciliation alerts, render
every report in every format, write the files once under <instance>/reports/<day>/v<n>/ and record each
file's sha256 in the report_archive table and in the audit log. The final meters are the last snapshot
each terminal reported inside the day (meter_days.closing): the host does not poll terminals at close.

A closed day's reports are served from the archive. A correction renders one report again from the
database as it is now and stores it as version n+1 beside the original, labelled; nothing is overwritten.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reports import core, reconciliation
from reports.models import GamingDayClose, ReportArchive
from reports.render import render
from server import audit
from server.alerts import raise_alert
from server.audit import Actor
from server.errors import Conflict, DomainError, NotFound
from server.gamingday import GamingDayClock
from server.models import AuditEntry

ARCHIVE_FORMATS = ("json", "csv", "pdf", "html")
METERS_SOURCE = "last_snapshot"
AUDIT_ACTIONS = ("gaming_day.close", "report.correct")


@dataclass
class CloseResult:
    gaming_day: dt.date
    closed_at: dt.datetime
    closed_by: str
    files: dict[str, str] = field(default_factory=dict)  # "win.v1.json" → sha256
    skipped: list[str] = field(default_factory=list)
    reconciliation_exceptions: int = 0

    def to_dict(self) -> dict:
        return {"gaming_day": self.gaming_day.isoformat(), "status": "closed", "closed_at": core.iso(self.closed_at),
                "closed_by": self.closed_by, "meters_source": METERS_SOURCE, "reports": self.files,
                "skipped": self.skipped, "reconciliation_exceptions": self.reconciliation_exceptions}


def closed(session: Session, day: dt.date) -> GamingDayClose | None:
    return session.get(GamingDayClose, day)


def _file_key(name: str, version: int, fmt: str) -> str:
    return f"{name}.v{version}.{fmt}"


def _write_once(instance: Path, rel: str, data: bytes) -> None:
    path = instance / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        # Only a file no committed row names can be here (a close that rolled back): replace it.
        os.chmod(path, 0o644)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    os.chmod(path, 0o444)


def _archive(session: Session, settings, clock: GamingDayClock, actor: Actor, day: dt.date, name: str,
             version: int, label: str, now: dt.datetime) -> dict[str, str]:
    doc = core.build(session, clock, settings, name, core.Period(day, day), now)
    if version > 1:
        doc.label = label
    out = {}
    for fmt in ARCHIVE_FORMATS:
        data = render(doc, fmt, settings.zone)
        digest = hashlib.sha256(data).hexdigest()
        rel = f"reports/{day.isoformat()}/v{version}/{name}.{fmt}"
        _write_once(settings.instance_path, rel, data)
        session.add(ReportArchive(report=name, gaming_day=day, format=fmt, version=version, label=label, path=rel,
                                  sha256=digest, size=len(data), created_at=now, created_by=actor.username))
        out[_file_key(name, version, fmt)] = digest
    return out


def close_day(session: Session, settings, clock: GamingDayClock, actor: Actor, day: dt.date,
              now: dt.datetime) -> CloseResult:
    if not clock.has_ended(day, now):
        raise Conflict(f"gaming day {day} has not ended yet", code="gaming_day_not_ended")
    if closed(session, day) is not None:
        raise Conflict(f"gaming day {day} is already closed", code="gaming_day_closed")
    try:
        with session.begin_nested():
            session.add(GamingDayClose(gaming_day=day, closed_at=now, closed_by=actor.username,
                                       meters_source=METERS_SOURCE))
    except IntegrityError:
        raise Conflict(f"gaming day {day} is already closed", code="gaming_day_closed") from None
    result = CloseResult(day, now, actor.username)
    for r in reconciliation.reconcile(session, day, day):
        if r["exception"]:
            result.reconciliation_exceptions += 1
            raise_alert(session, "meter_reconciliation",
                        f"{r['egm_id']}: {r['item']} meters {r['meter_cents']} vs host {r['host_cents']} cents "
                        f"on gaming day {day}", now, egm_id=r["egm_id"], detail={"gaming_day": day.isoformat(), **r})
    session.flush()
    for d in core.all_reports():
        try:
            result.files.update(_archive(session, settings, clock, actor, day, d.name, 1, "original", now))
        except core.ReportUnavailable:
            result.skipped.append(d.name)
    row = session.get(GamingDayClose, day)
    row.skipped = ",".join(result.skipped) or None
    audit.append(session, actor, "gaming_day.close", f"gaming_day:{day.isoformat()}", None,
                 {"gaming_day": day.isoformat(), "meters_source": METERS_SOURCE, "files": result.files,
                  "skipped": result.skipped}, at=now)
    return result


def correct(session: Session, settings, clock: GamingDayClock, actor: Actor, day: dt.date, name: str, reason: str,
            now: dt.datetime) -> dict:
    """A new, labelled version of one closed day's report, rendered from the data as it is now."""
    core.get(name)
    if closed(session, day) is None:
        raise Conflict(f"gaming day {day} is not closed: its reports are live", code="gaming_day_not_closed")
    last = session.execute(select(func.max(ReportArchive.version)).where(
        ReportArchive.report == name, ReportArchive.gaming_day == day)).scalar() or 0
    version = last + 1
    label = f"correction {version - 1}: {reason}" if version > 1 else "original"
    files = _archive(session, settings, clock, actor, day, name, version, label, now)
    audit.append(session, actor, "report.correct", f"report:{name}:{day.isoformat()}", {"version": last},
                 {"gaming_day": day.isoformat(), "report": name, "version": version, "label": label, "files": files},
                 at=now)
    return {"report": name, "gaming_day": day.isoformat(), "version": version, "label": label, "files": files}


def archived(session: Session, settings, name: str, day: dt.date, fmt: str,
             version: int | None = None) -> tuple[ReportArchive, bytes] | None:
    """The archived bytes of a closed day's report (the latest version unless one is named), checked."""
    q = select(ReportArchive).where(ReportArchive.report == name, ReportArchive.gaming_day == day,
                                    ReportArchive.format == fmt)
    if version is not None:
        q = q.where(ReportArchive.version == version)
    row = session.execute(q.order_by(ReportArchive.version.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        if version is not None:
            raise NotFound(f"no version {version} of {name} for {day}", code="report_version_not_found",
                           field="version")
        return None
    data = (settings.instance_path / row.path).read_bytes()
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise DomainError(f"archived {row.path} does not match its recorded sha256", code="archive_corrupt",
                          status=409)
    return row, data


def versions(session: Session, day: dt.date) -> list[dict]:
    rows = session.execute(select(ReportArchive).where(ReportArchive.gaming_day == day)
                           .order_by(ReportArchive.report, ReportArchive.version, ReportArchive.format)).scalars()
    return [{"report": r.report, "version": r.version, "format": r.format, "label": r.label, "sha256": r.sha256,
             "size": r.size, "created_at": core.iso(r.created_at), "created_by": r.created_by} for r in rows]


def verify_archive(session: Session, instance: Path) -> str | None:
    """Every archived file is present, hashes to its row, and its row's hash is the one the audit log recorded."""
    audited: dict[tuple[str, str], str] = {}
    for action, after in session.execute(select(AuditEntry.action, AuditEntry.after)
                                         .where(AuditEntry.action.in_(AUDIT_ACTIONS))):
        body = json.loads(after or "{}")
        for key, digest in (body.get("files") or {}).items():
            audited[(body.get("gaming_day"), key)] = digest
    n = 0
    for r in session.execute(select(ReportArchive).order_by(ReportArchive.id)).scalars():
        key = (r.gaming_day.isoformat(), _file_key(r.report, r.version, r.format))
        path = instance / r.path
        if not path.exists():
            return f"report archive BROKEN: {r.path} is missing"
        if hashlib.sha256(path.read_bytes()).hexdigest() != r.sha256:
            return f"report archive BROKEN: {r.path} does not match its recorded sha256 (file altered)"
        if audited.get(key) != r.sha256:
            return f"report archive BROKEN: {r.path}: its sha256 is not the one in the audit log (row altered)"
        n += 1
    return None


def cli_check(host) -> str | None:
    """The `floorhost audit verify` hook (server.cli.AUDIT_CHECKS)."""
    with host.db.read() as s:
        return verify_archive(s, host.settings.instance_path)


def day_status(session: Session, clock, day: dt.date, now: dt.datetime) -> dict:
    """A gaming day: its bounds, whether it has ended and is closed, and its archived reports."""
    start, end = clock.bounds(day)
    row = closed(session, day)
    out = {"gaming_day": day.isoformat(), "from": core.iso(start), "to": core.iso(end),
           "ended": clock.has_ended(day, now), "status": "closed" if row else "open"}
    if row:
        out.update(closed_at=core.iso(row.closed_at), closed_by=row.closed_by, meters_source=row.meters_source,
                   skipped=row.skipped.split(",") if row.skipped else [], archive=versions(session, day))
    return out


def scheduled_close(host) -> CloseResult | None:
    """The scheduler job: close the gaming day that ended most recently, once, as `system`."""
    from server.audit import SYSTEM

    now = host.now()
    day = host.clock.day_of(now) - dt.timedelta(days=1)
    if now < host.clock.bounds(day)[1] + CLOSE_GRACE:
        return None
    with host.db.read() as s:  # most runs find the day closed: no write transaction for that
        if closed(s, day) is not None:
            return None
    with host.db.begin() as s:
        if closed(s, day) is not None:
            return None
        return close_day(s, host.settings, host.clock, SYSTEM, day, now)


# Buffered terminal data arrives on reconnect: the scheduled close waits this long after the day ends.
CLOSE_GRACE = dt.timedelta(minutes=15)


@dataclass
class Rendered:
    body: bytes
    mime: str
    sha256: str
    archived: bool
    version: int | None = None
    label: str | None = None


def fetch(session: Session, settings, clock: GamingDayClock, name: str, period: core.Period, fmt: str,
          now: dt.datetime, version: int | None = None) -> Rendered:
    """What the API, the CLI and the reports browser serve: a closed day's archived bytes, else a live rendering."""
    from reports.render import MIME

    core.get(name)
    if fmt not in core.FORMATS:
        raise core.InvalidInput(f"format must be one of {', '.join(core.FORMATS)}", code="invalid_input",
                                field="format")
    day = period.gaming_day
    if day is not None and closed(session, day) is not None:
        got = archived(session, settings, name, day, fmt, version)
        if got is not None:
            row, data = got
            return Rendered(data, MIME[fmt], row.sha256, True, row.version, row.label)
    elif version is not None:
        raise NotFound("only a closed gaming day's reports have versions", code="report_version_not_found",
                       field="version")
    doc = core.build(session, clock, settings, name, period, now)
    data = render(doc, fmt, settings.zone)
    return Rendered(data, MIME[fmt], hashlib.sha256(data).hexdigest(), False)
