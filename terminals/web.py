"""Terminals, events, commands, alerts and software: the API routes and the floor pages. Thin."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, render_template
from sqlalchemy import func, select

from server import alerts
from server.models import Alert
from server.web.api import ApiError, Call, endpoint, host, int_arg, json_response
from server.web.pages import page
from server.web.params import parse_instant
from terminals import commands, meters, registry, software
from terminals.models import METER_NAMES, Event, MeterDay, Terminal

floor = Blueprint("floor", __name__, template_folder="../server/templates")

LOCATION = {"type": "object", "maxProperties": 20,
            "additionalProperties": {"type": ["string", "integer", "boolean", "null"], "maxLength": 128}}
REGISTER_SCHEMA = {
    "type": "object", "required": ["egm_id", "protocol"],
    "properties": {
        "egm_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
        "protocol": {"type": "string", "enum": list(registry.PROTOCOLS)},
        "location": LOCATION,
        "connection": {"type": "object"},
    },
}
COMMAND_SCHEMA = {
    "type": "object", "required": ["name"],
    "properties": {"name": {"type": "string", "enum": list(commands.NAMES)},
                   "args": {"type": "object", "maxProperties": 20}},
}
SHA256 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}


def event_dict(e: Event) -> dict:
    return {"id": e.id, "code": e.code, "raw_code": e.raw_code, "detail": e.detail, "seq": e.seq,
            "terminal_ts": e.terminal_ts.isoformat().replace("+00:00", "Z") if e.terminal_ts else None,
            "host_ts": e.host_ts.isoformat().replace("+00:00", "Z"), "gaming_day": e.gaming_day.isoformat()}


def terminal_detail(s, t: Terminal) -> dict:
    snap = meters.last_snapshot(s, t.egm_id)
    d = registry.summary(t)
    d.update({
        "connection": t.connection,
        "meters": {m: snap.values.get(m) for m in METER_NAMES} if snap else None,
        "meters_at": snap.host_ts.isoformat().replace("+00:00", "Z") if snap else None,
        "cabinet": {"manufacturer": t.manufacturer, "model": t.model, "serial": t.serial,
                    "denoms_cents": t.denoms_cents},
        "software": t.software,
        "disabled_reason": t.disabled_reason,
        "expected_config": {"deployment_id": t.expected_deployment_id, "sha256": t.expected_sha256}
        if t.expected_sha256 else None,
        "current_config": t.reported_config,
        "open_handpays": OPEN_HANDPAYS[0](s, t.egm_id) if OPEN_HANDPAYS else [],
    })
    return d


# The cashier package adds the lookup of a terminal's open handpays.
OPEN_HANDPAYS: list = []


@endpoint("/terminals", permission="terminals.read")
def list_terminals(call: Call):
    """List terminals with their state."""
    return [registry.summary(t) for t in registry.list_all(call.session)]


@endpoint("/terminals", ("POST",), permission="terminals.register", schema=REGISTER_SCHEMA, status=201)
def register_terminal(call: Call):
    """Register a terminal (it starts disabled); MQTT credentials are returned once."""
    b = call.body
    reg = registry.register(call.session, call.actor, b["egm_id"], b["protocol"], b.get("location") or {},
                            b.get("connection") or {}, call.host.now())
    out = registry.summary(reg.terminal)
    out["connection"] = reg.terminal.connection
    if reg.mqtt_password:
        out["mqtt"] = {"username": reg.terminal.egm_id, "password": reg.mqtt_password}
    gw = call.host.components.get("gateway")
    if gw is not None:
        call.after_commit.append(lambda: gw.forget(reg.terminal.egm_id))
    sas = call.host.components.get("sas")
    if sas is not None and b["protocol"] == "sas":
        call.after_commit.append(lambda: sas.reload())
    mb = call.host.components.get("modbus")
    if mb is not None and b["protocol"] == "modbus":
        call.after_commit.append(lambda: mb.reload())
    return out


@endpoint("/terminals/<egm_id>", permission="terminals.read")
def get_terminal(call: Call, egm_id: str):
    """One terminal: state, last meters, open handpays, current and expected config, software."""
    return terminal_detail(call.session, registry.get(call.session, egm_id))


@endpoint("/terminals/<egm_id>/commands", ("POST",), permission="terminals.command", schema=COMMAND_SCHEMA,
          status=202)
def send_command(call: Call, egm_id: str):
    """Send a command to a terminal; track it with the returned command_id."""
    t = registry.get(call.session, egm_id)
    route = call.host.components.get("routes", {}).get(t.protocol)
    if route is None:
        raise ApiError(f"no {t.protocol} gateway runs in this process", code="gateway_unavailable", status=503)
    out = commands.send(call.session, call.actor, t, call.body["name"], call.body.get("args") or {}, call.host.now())
    call.after_commit.append(lambda: route.deliver_command(out))
    return {"command_id": out.command_id}


@endpoint("/terminals/<egm_id>/commands/<command_id>", permission="terminals.read")
def get_command(call: Call, egm_id: str, command_id: str):
    """A command's status: sent, ok, refused or timeout."""
    return commands.to_dict(commands.get(call.session, egm_id, command_id))


@endpoint("/terminals/<egm_id>/events", permission="terminals.read",
          query={"since": "RFC 3339, inclusive", "after_id": "exclusive", "code": "event code",
                 "limit": "default 100, at most 1000"})
def list_events(call: Call, egm_id: str):
    """A terminal's significant events, oldest first."""
    registry.get(call.session, egm_id)
    q = select(Event).where(Event.egm_id == egm_id)
    if "since" in call.args:
        q = q.where(Event.host_ts >= parse_instant(call.args["since"], "since"))
    if "after_id" in call.args:
        q = q.where(Event.id > int_arg(call, "after_id", 0, 0, 2**62))
    if "code" in call.args:
        q = q.where(Event.code == call.args["code"])
    q = q.order_by(Event.id).limit(int_arg(call, "limit", 100, 1, 1000))
    return [event_dict(e) for e in call.session.execute(q).scalars()]


@endpoint("/alerts", permission="terminals.read", query={"status": "open | acknowledged", "kind": "alert kind"})
def list_alerts(call: Call):
    """Alerts, newest first."""
    q = select(Alert).order_by(Alert.id.desc()).limit(int_arg(call, "limit", 500, 1, 5000))
    if call.args.get("status"):
        if call.args["status"] not in ("open", "acknowledged"):
            raise ApiError("status must be open or acknowledged", code="invalid_input", status=400, field="status")
        q = q.where(Alert.status == call.args["status"])
    if call.args.get("kind"):
        q = q.where(Alert.kind == call.args["kind"])
    return [alerts.to_dict(a) for a in call.session.execute(q).scalars()]


@endpoint("/alerts/<int:alert_id>/ack", ("POST",), permission="alerts.ack", schema={
    "type": "object", "required": ["note"], "properties": {"note": {"type": "string", "maxLength": 2000}}})
def ack_alert(call: Call, alert_id: int):
    """Acknowledge an alert with a note."""
    return alerts.to_dict(alerts.acknowledge(call.session, call.actor, alert_id, call.body["note"], call.host.now()))


@endpoint("/software", permission="terminals.read")
def list_software(call: Call):
    """The approved-software list."""
    return [software.to_dict(x) for x in software.list_all(call.session)]


@endpoint("/software", ("POST",), permission="software.approve", status=201, schema={
    "type": "object", "required": ["name", "version", "sha256"],
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 128},
                   "version": {"type": "string", "minLength": 1, "maxLength": 64}, "sha256": SHA256}})
def approve_software(call: Call):
    """Approve a software build by its sha256."""
    b = call.body
    return software.to_dict(software.approve(call.session, call.actor, b["name"], b["version"], b["sha256"],
                                             call.host.now()))


# ---- pages ------------------------------------------------------------------------------------

def floor_rows(s, day: dt.date) -> list[dict]:
    coin_in = dict(s.execute(select(MeterDay.egm_id, MeterDay.coin_in_cents).where(MeterDay.gaming_day == day)).all())
    rows = []
    for t in registry.list_all(s):
        r = registry.summary(t)
        r["coin_in_today_cents"] = coin_in.get(t.egm_id, 0)
        r["credits_cents"] = t.current_credits_cents
        rows.append(r)
    return rows


@floor.get("/floor")
@page("terminals.read")
def floor_page(me):
    return render_template("floor.html", me=me)


@floor.get("/floor/data.json")
@page("terminals.read", json=True)
def floor_data(me):
    h = host()
    day = h.gaming_day()
    with h.db.read() as s:
        rows = floor_rows(s, day)
        open_alerts = s.execute(select(func.count()).select_from(Alert).where(Alert.status == "open")).scalar_one()
    return json_response({"gaming_day": day.isoformat(), "terminals": rows, "open_alerts": open_alerts,
                          "at": h.now().isoformat()})


@floor.get("/floor/<egm_id>")
@page("terminals.read")
def terminal_page(me, egm_id: str):
    h = host()
    with h.db.read() as s:
        t = s.execute(select(Terminal).where(Terminal.egm_id == egm_id)).scalar_one_or_none()
        if t is None:
            return render_template("error.html", me=me, message=f"No terminal {egm_id}."), 404
        detail = terminal_detail(s, t)
        events = [event_dict(e) for e in s.execute(select(Event).where(Event.egm_id == egm_id)
                                                   .order_by(Event.id.desc()).limit(50)).scalars()]
        today = meters.day_totals(s, egm_id, h.gaming_day())
    return render_template("terminal.html", me=me, t=detail, events=events, today=today, meter_names=METER_NAMES)
