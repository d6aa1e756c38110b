"""What each terminal message type does to the domain: one handler per `up` type.

A handler gets an Apply context (session, host parts, the terminal, the decoded
message) and returns the reply body for types that have one. It never publishes:
what should be said after the commit goes into `ctx.outgoing`. Each domain
package registers its own types here (cashier: vouchers and handpays; players:
cards; deployments: config.status) so the gateway stays a translator.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy.orm import Session

from protocols.mqtt import Up
from protocols.mqtt.canonical import canonical_json
from server.host import Host
from terminals import commands, meters, play, registry
from terminals.models import Terminal

log = logging.getLogger("floorhost.dispatch")


@dataclass
class Apply:
    session: Session
    host: Host
    terminal: Terminal
    up: Up
    now: dt.datetime
    # (egm_id, type, body) messages to publish after commit, besides the reply.
    outgoing: list[tuple[str, str, dict]] = field(default_factory=list)

    @property
    def clock(self):
        return self.host.clock

    @property
    def settings(self):
        return self.host.settings


Handler = Callable[[Apply], "dict | None"]
HANDLERS: dict[str, Handler] = {}

# Domain packages whose handlers register themselves on import (load_handlers()).
HANDLER_MODULES = ("cashier.terminal", "cashier.handpays_terminal", "terminals.config_terminal", "players.terminal")


def load_handlers() -> dict[str, Handler]:
    import importlib

    for name in HANDLER_MODULES:
        importlib.import_module(name)
    return HANDLERS


def handles(type_: str):
    def deco(fn: Handler) -> Handler:
        HANDLERS[type_] = fn
        return fn

    return deco


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@handles("hello")
def on_hello(ctx: Apply) -> dict:
    b = ctx.up.body
    t = ctx.terminal
    registry.record_cabinet(
        ctx.session, ctx.clock, t, ctx.now, manufacturer=b.manufacturer, model=b.model, serial=b.serial,
        software_info={"name": b.software.name, "version": b.software.version, "sha256": b.software.sha256},
        denoms_cents=list(b.denoms_cents),
        reported_config={"deployment_id": b.config.deployment_id, "sha256": b.config.sha256})
    for hook in HELLO_HOOKS:
        hook(ctx)
    expected = None
    if t.expected_sha256:
        expected = {"deployment_id": t.expected_deployment_id, "sha256": t.expected_sha256}
    t.clock_set_at = ctx.now  # hello.reply carries the host's time: the terminal sets its clock from it
    return {"time": _iso(ctx.now), "enabled": bool(t.enabled), "expected_config": expected,
            "voucher": {"expiry_days": ctx.settings.voucher_expiry_days},
            "config_key": ctx.host.signer.public_key_b64}


# Other packages add what a hello means to them (deployments: re-push a wrong config).
HELLO_HOOKS: list[Callable[[Apply], None]] = []


@handles("meters")
def on_meters(ctx: Apply) -> None:
    meters.record_snapshot(ctx.session, ctx.clock, ctx.terminal, ctx.up.body.meters, ctx.now, seq=ctx.up.seq,
                           terminal_ts=ctx.up.ts, source="mqtt")
    for hook in METERS_HOOKS:
        hook(ctx)


# Other packages add what fresh meters mean to them (deployments: a push waiting for them goes).
METERS_HOOKS: list[Callable[[Apply], None]] = []


@handles("game.end")
def on_game_end(ctx: Apply) -> None:
    b = ctx.up.body
    play.record_game(ctx.session, ctx.clock, ctx.terminal, ctx.now, theme=b.theme, paytable_id=b.paytable_id,
                     denom_cents=b.denom_cents, wager_cents=b.wager_cents, win_cents=b.win_cents,
                     credits_after_cents=b.credits_after_cents)
    for hook in GAME_HOOKS:
        hook(ctx)


GAME_HOOKS: list[Callable[[Apply], None]] = []


@handles("event")
def on_event(ctx: Apply) -> None:
    b = ctx.up.body
    if b.known:
        registry.add_event(ctx.session, ctx.clock, ctx.terminal, b.code, ctx.now, detail=b.detail, seq=ctx.up.seq,
                           terminal_ts=ctx.up.ts)
        if b.code == "ram.clear":
            from server.alerts import raise_alert

            raise_alert(ctx.session, "ram_clear", f"{ctx.terminal.egm_id} reports a RAM clear", ctx.now,
                        severity="critical", egm_id=ctx.terminal.egm_id)
    else:
        # Stored, never dropped, and flagged for a look (terminal-mqtt.md).
        registry.add_event(ctx.session, ctx.clock, ctx.terminal, "unknown", ctx.now,
                           detail={**b.detail, "flagged": True}, seq=ctx.up.seq, terminal_ts=ctx.up.ts,
                           raw_code=b.code)
    for hook in EVENT_HOOKS:
        hook(ctx)


EVENT_HOOKS: list[Callable[[Apply], None]] = []


@handles("cmd.ack")
def on_cmd_ack(ctx: Apply) -> None:
    b = ctx.up.body
    if not commands.acknowledge(ctx.session, ctx.terminal.egm_id, b.id, b.result, b.reason, ctx.now):
        log.warning("egm=%s seq=%s cmd.ack for unknown or finished command %s", ctx.terminal.egm_id, ctx.up.seq, b.id)
    for hook in ACK_HOOKS:
        hook(ctx)


ACK_HOOKS: list[Callable[[Apply], None]] = []


def reply_bytes(body: dict | None) -> str | None:
    return canonical_json(body).decode("utf-8") if body is not None else None
