"""Host → terminal commands (enable, disable, meters.request, time.set, handpay.reset, message) and their acks.

The service records the command and says what to send; the caller sends it
after the commit, through the terminal's protocol route (MQTT gateway, SAS line,
Modbus poller).
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server import audit
from server.audit import Actor
from server.errors import Conflict, InvalidInput, NotFound
from terminals import registry
from terminals.models import Command, Terminal

# software.verify (an extension of terminal-mqtt.md, docs/deployments.md): the terminal re-reports its
# software (MQTT: a new hello; Modbus: the hash registers are read again; SAS: LP 1F and LP 21 again).
NAMES = ("enable", "disable", "meters.request", "time.set", "handpay.reset", "message", "software.verify")


def new_message_id() -> str:
    """A host message id, unique per down message (terminal-mqtt.md)."""
    return "h-" + uuid.uuid4().hex[:20]


@dataclass(frozen=True)
class Outgoing:
    """A command to deliver after commit."""

    egm_id: str
    protocol: str
    command_id: str
    name: str
    args: dict


def send(session: Session, actor: Actor | None, t: Terminal, name: str, args: dict, now: dt.datetime) -> Outgoing:
    if name not in NAMES:
        raise InvalidInput(f"unknown command {name!r}", code="invalid_input", field="name")
    if t.comms != "online":
        raise Conflict(f"{t.egm_id} is offline", code="terminal_offline")
    if name == "time.set" and not args.get("time"):
        args = {**args, "time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    if name == "message" and not isinstance(args.get("text"), str):
        raise InvalidInput("message needs args.text", code="invalid_input", field="args.text")
    cmd = Command(id=new_message_id(), egm_id=t.egm_id, name=name, args=args, status="sent",
                  operator=actor.username if actor else None, created_at=now)
    session.add(cmd)
    if name in ("enable", "disable") and actor is not None:
        # The host's flag changes at once; the terminal's cmd.ack confirms it (http-api.md).
        registry.set_enabled(session, actor, t, name == "enable", now)
    elif actor is not None:
        audit.append(session, actor, f"terminal.command.{name}", f"terminal:{t.egm_id}", None,
                     {"command_id": cmd.id, "args": args}, at=now)
    if name == "time.set":
        t.clock_set_at = now
    return Outgoing(t.egm_id, t.protocol, cmd.id, name, args)


def acknowledge(session: Session, egm_id: str, command_id: str, result: str, reason: str | None,
                now: dt.datetime) -> bool:
    """Completes a command; False when no such command was waiting (logged by the caller)."""
    res = session.execute(
        update(Command).where(Command.id == command_id, Command.egm_id == egm_id, Command.status == "sent")
        .values(status="ok" if result == "ok" else "refused", acked_at=now, reason=reason)
    )
    return res.rowcount == 1


def get(session: Session, egm_id: str, command_id: str) -> Command:
    cmd = session.execute(select(Command).where(Command.id == command_id, Command.egm_id == egm_id)).scalar_one_or_none()
    if cmd is None:
        raise NotFound(f"no command {command_id}", code="command_not_found")
    return cmd


def expire(session: Session, now: dt.datetime, timeout_s: int) -> int:
    """Marks commands that were never acknowledged as timed out (a scheduler job)."""
    res = session.execute(update(Command).where(Command.status == "sent",
                                                Command.created_at < now - dt.timedelta(seconds=timeout_s))
                          .values(status="timeout"))
    return res.rowcount


def to_dict(c: Command) -> dict:
    d = {"command_id": c.id, "egm_id": c.egm_id, "name": c.name, "args": c.args, "status": c.status,
         "created_at": c.created_at.isoformat().replace("+00:00", "Z")}
    if c.acked_at:
        d["acked_at"] = c.acked_at.isoformat().replace("+00:00", "Z")
    if c.reason:
        d["reason"] = c.reason
    return d
