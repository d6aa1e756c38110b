"""The terminal registry: registration, credentials, enable/disable, comms state, cabinet info.

Every protocol's gateway or poller ends here for the life of a terminal;
web views only call these functions.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server import audit
from server.alerts import raise_alert
from server.audit import SYSTEM, Actor
from server.db import iso_z as _iso
from server.db import writer
from server.errors import Conflict, InvalidInput, NotFound
from server.gamingday import GamingDayClock
from terminals import software
from terminals.models import CommsPeriod, Event, Terminal

EGM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
PROTOCOLS = ("mqtt", "sas", "modbus")



def summary(t: Terminal) -> dict[str, Any]:
    return {
        "egm_id": t.egm_id, "protocol": t.protocol, "state": t.state, "enabled": t.enabled,
        "location": t.location or {},
        "config": {"deployment_id": t.expected_deployment_id, "sha256": t.expected_sha256,
                   "reported": t.reported_config},
        "last_event": t.last_event_code, "last_event_at": _iso(t.last_event_at), "last_seen_at": _iso(t.last_seen_at),
    }


def audit_view(t: Terminal) -> dict[str, Any]:
    return {"egm_id": t.egm_id, "protocol": t.protocol, "enabled": t.enabled, "location": t.location,
            "connection": t.connection, "disabled_reason": t.disabled_reason}


def _check_connection(protocol: str, conn: dict) -> dict:
    """Validates `connection` per protocol (http-api.md); returns it with defaults filled in."""
    def need_int(key: str, lo: int, hi: int, default: int | None = None) -> int:
        v = conn.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise InvalidInput(f"connection.{key} must be an integer {lo}..{hi}", code="invalid_input",
                               field=f"connection.{key}")
        return v

    def need_str(key: str) -> str:
        v = conn.get(key)
        if not isinstance(v, str) or not v or len(v) > 255:
            raise InvalidInput(f"connection.{key} is required", code="invalid_input", field=f"connection.{key}")
        return v

    if protocol == "mqtt":
        return {}
    if protocol == "sas":
        out = {"port": need_str("port"), "address": need_int("address", 1, 127),
               "baud": need_int("baud", 1200, 115200, 19200)}
        validation = conn.get("validation", "system")
        if validation not in ("system", "secure_enhanced"):
            raise InvalidInput("connection.validation must be system or secure_enhanced", code="invalid_input",
                               field="connection.validation")
        out["validation"] = validation
        out["validation_id"] = need_int("validation_id", 0, 16777215, 0)
        if "poll_ms" in conn:
            out["poll_ms"] = need_int("poll_ms", 200, 5000)
        return out
    # modbus: TCP or RTU
    out: dict[str, Any] = {"unit": need_int("unit", 0, 247, 1)}
    if "serial_port" in conn:
        out.update(serial_port=need_str("serial_port"), baud=need_int("baud", 1200, 115200, 19200))
    else:
        out.update(host=need_str("host"), port=need_int("port", 1, 65535, 502))
    if "interval_s" in conn:
        v = conn["interval_s"]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.1 <= v <= 3600:
            raise InvalidInput("connection.interval_s must be 0.1..3600", code="invalid_input",
                               field="connection.interval_s")
        out["interval_s"] = v
    return out


@dataclass(frozen=True)
class Registered:
    terminal: Terminal
    mqtt_password: str | None  # shown once, never stored in clear


def register(session: Session, actor: Actor, egm_id: str, protocol: str, location: dict, connection: dict,
             now: dt.datetime) -> Registered:
    from server.mqtt_config import mosquitto_password_hash

    if not EGM_ID_RE.match(egm_id):
        raise InvalidInput("egm_id must be 1-32 of A-Z a-z 0-9 _ -", code="invalid_input", field="egm_id")
    if protocol not in PROTOCOLS:
        raise InvalidInput("protocol must be mqtt, sas or modbus", code="invalid_input", field="protocol")
    conn = _check_connection(protocol, connection or {})
    if session.execute(select(Terminal.id).where(Terminal.egm_id == egm_id)).first():
        raise Conflict(f"terminal {egm_id} is already registered", code="terminal_exists")
    if protocol == "sas":
        for other in session.execute(select(Terminal).where(Terminal.protocol == "sas")).scalars():
            if other.connection.get("port") == conn["port"] and other.connection.get("address") == conn["address"]:
                raise Conflict(f"address {conn['address']} on {conn['port']} is taken by {other.egm_id}",
                               code="sas_address_taken")
    password = secrets.token_urlsafe(24) if protocol == "mqtt" else None
    t = Terminal(egm_id=egm_id, protocol=protocol, location=location or {}, connection=conn, enabled=False,
                 comms="unknown", mqtt_password_hash=mosquitto_password_hash(password) if password else None,
                 created_at=now, disabled_reason="new")
    session.add(t)
    session.flush()
    audit.append(session, actor, "terminal.register", f"terminal:{egm_id}", None, audit_view(t), at=now)
    return Registered(t, password)


def get(session: Session, egm_id: str) -> Terminal:
    t = session.execute(select(Terminal).where(Terminal.egm_id == egm_id)).scalar_one_or_none()
    if t is None:
        raise NotFound(f"no terminal {egm_id}", code="terminal_not_found")
    return t


def list_all(session: Session) -> list[Terminal]:
    return list(session.execute(select(Terminal).order_by(Terminal.egm_id)).scalars())


def set_enabled(session: Session, actor: Actor, t: Terminal, enabled: bool, now: dt.datetime,
                reason: str | None = None) -> Terminal:
    before = audit_view(t)
    t.enabled = enabled
    t.disabled_reason = None if enabled else (reason or "operator")
    audit.append(session, actor, "terminal.enable" if enabled else "terminal.disable", f"terminal:{t.egm_id}",
                 before, audit_view(t), at=now)
    return t


def add_event(session: Session, clock: GamingDayClock, t: Terminal, code: str, now: dt.datetime, *,
              detail: dict | None = None, seq: int | None = None, terminal_ts: dt.datetime | None = None,
              raw_code: str | None = None, source: str = "mqtt") -> None:
    """Stores one significant event and keeps the terminal's derived state in step (rules.md 7)."""
    writer(session).insert(Event.__table__, dict(
        egm_id=t.egm_id, code=code, raw_code=raw_code, detail=detail or {}, seq=seq, terminal_ts=terminal_ts,
        host_ts=now, gaming_day=clock.day_of(now), source=source))
    flag = _STATE_FLAGS.get(code)
    if flag:
        setattr(t, flag[0], flag[1])
    t.last_event_code, t.last_event_at = code, now


# Event code → the terminal flag it sets (the floor's derived state).
_STATE_FLAGS = {
    "door.main.open": ("door_open", True), "door.main.closed": ("door_open", False),
    "tilt": ("tilt", True), "power.on": ("tilt", False),
    "handpay.reset": ("handpay_pending", False),
}


def went_online(session: Session, clock: GamingDayClock, t: Terminal, now: dt.datetime, source: str) -> bool:
    """Marks a terminal online; returns True when that is news (a comms.online event was stored)."""
    t.last_seen_at = now
    if t.comms == "online":
        return False
    was_offline = t.comms == "offline"
    t.comms, t.online_since = "online", now
    if was_offline:
        session.execute(update(CommsPeriod).where(CommsPeriod.egm_id == t.egm_id, CommsPeriod.online_at.is_(None))
                        .values(online_at=now))
        add_event(session, clock, t, "comms.online", now, source=source)
    return True


# What a terminal going offline means to other packages (players: its rated session ends).
# Each is called as hook(session, clock, terminal, now); they register from dispatch.HANDLER_MODULES.
OFFLINE_HOOKS: list[Callable[[Session, GamingDayClock, Terminal, dt.datetime], None]] = []


def went_offline(session: Session, clock: GamingDayClock, t: Terminal, now: dt.datetime, cause: str,
                 source: str) -> bool:
    if t.comms == "offline":
        return False
    t.comms = "offline"
    session.add(CommsPeriod(egm_id=t.egm_id, offline_at=now, cause=cause))
    add_event(session, clock, t, "comms.offline", now, detail={"cause": cause}, source=source)
    raise_alert(session, "comms_offline", f"{t.egm_id} is offline ({cause})", now, egm_id=t.egm_id, once=True)
    from terminals import dispatch  # noqa: PLC0415 (dispatch imports this module)

    dispatch.load_handlers()  # the heartbeat job and the pollers may run without a gateway
    for hook in OFFLINE_HOOKS:
        hook(session, clock, t, now)
    return True


def record_cabinet(session: Session, clock: GamingDayClock, t: Terminal, now: dt.datetime, *, manufacturer: str,
                   model: str, serial: str, software_info: dict, denoms_cents: list[int] | None,
                   reported_config: dict | None, source: str = "mqtt") -> bool:
    """Stores what a terminal says it is; checks its software hash (rules.md 23). Returns approved or not."""
    t.manufacturer, t.model, t.serial = manufacturer, model, serial
    t.software = software_info
    if denoms_cents is not None:
        t.denoms_cents = denoms_cents
    t.reported_config = reported_config
    approved = software.is_approved(session, software_info.get("sha256"))
    if not approved:
        if t.enabled or t.disabled_reason != "software_unapproved":
            before = audit_view(t)
            t.enabled, t.disabled_reason = False, "software_unapproved"
            audit.append(session, SYSTEM, "terminal.disable", f"terminal:{t.egm_id}", before, audit_view(t), at=now)
        add_event(session, clock, t, "software.auth_failed", now,
                  detail={"sha256": software_info.get("sha256"), "name": software_info.get("name"),
                          "version": software_info.get("version")}, source=source)
        raise_alert(session, "software_unapproved",
                    f"{t.egm_id} runs unapproved software {software_info.get('name')} {software_info.get('version')}",
                    now, severity="critical", egm_id=t.egm_id, detail={"sha256": software_info.get("sha256")},
                    once=True)
    return approved
