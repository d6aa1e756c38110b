"""Alerts for a manager's attention: raised by services, acknowledged by a manager (audited)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server import audit
from server.audit import Actor
from server.errors import Conflict, NotFound
from server.models import Alert

KINDS = ("ram_clear", "meter_reconciliation", "software_unapproved", "excluded_player", "structuring",
         "comms_offline", "sequence_gap", "voucher_mismatch", "memory_error", "meter_backwards")


def raise_alert(session: Session, kind: str, message: str, now: dt.datetime, *, severity: str = "warning",
                egm_id: str | None = None, player_id: int | None = None, detail: dict | None = None,
                once: bool = False) -> Alert | None:
    """Adds an open alert; with once=True, not while an open one of the same kind and terminal exists."""
    if once:
        existing = session.execute(
            select(Alert.id).where(Alert.kind == kind, Alert.egm_id == egm_id, Alert.status == "open").limit(1)
        ).first()
        if existing:
            return None
    alert = Alert(kind=kind, severity=severity, egm_id=egm_id, player_id=player_id, message=message,
                  detail=detail, created_at=now, status="open")
    session.add(alert)
    return alert


def acknowledge(session: Session, actor: Actor, alert_id: int, note: str, now: dt.datetime) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}", code="alert_not_found")
    if alert.status != "open":
        raise Conflict("alert already acknowledged", code="alert_acknowledged")
    before = to_dict(alert)
    alert.status, alert.acked_by, alert.acked_at, alert.note = "acknowledged", actor.username, now, note
    audit.append(session, actor, "alert.ack", f"alert:{alert_id}", before, to_dict(alert), at=now)
    return alert


def to_dict(a: Alert) -> dict[str, Any]:
    d: dict[str, Any] = {"id": a.id, "kind": a.kind, "severity": a.severity, "message": a.message,
                         "created_at": a.created_at.isoformat().replace("+00:00", "Z"), "status": a.status}
    if a.egm_id:
        d["egm_id"] = a.egm_id
    if a.player_id:
        d["player_id"] = a.player_id
    if a.detail:
        d["detail"] = a.detail
    if a.acked_by:
        d.update(acked_by=a.acked_by, acked_at=a.acked_at.isoformat().replace("+00:00", "Z"), note=a.note)
    return d
