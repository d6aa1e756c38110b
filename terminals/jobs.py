"""Scheduled jobs of the floor: heartbeat (comms lost without a will), command time-outs, clock sync."""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from server.host import Host
from terminals import commands, registry
from terminals.models import Terminal

log = logging.getLogger("floorhost.jobs")


def heartbeat(host: Host) -> int:
    """Marks offline any terminal silent for longer than the heartbeat window, even if its will was lost."""
    now = host.now()
    cutoff = now - dt.timedelta(seconds=host.settings.terminal_heartbeat_seconds)
    n = 0
    with host.db.begin() as s:
        for t in s.execute(select(Terminal).where(Terminal.comms == "online", Terminal.last_seen_at < cutoff)).scalars():
            if registry.went_offline(s, host.clock, t, now, "heartbeat", t.protocol):
                n += 1
                log.warning("egm=%s offline: silent since %s", t.egm_id, t.last_seen_at)
    return n


def command_timeouts(host: Host) -> int:
    with host.db.begin() as s:
        return commands.expire(s, host.now(), host.settings.command_timeout_seconds)


def clock_sync(host: Host) -> int:
    """Sends time.set to every online terminal whose clock was not set in the last 23 h (rules.md 30)."""
    now = host.now()
    routes = host.components.get("routes", {})
    outs = []
    with host.db.begin() as s:
        due = now - dt.timedelta(hours=23)
        for t in s.execute(select(Terminal).where(Terminal.comms == "online")).scalars():
            if t.protocol in routes and (t.clock_set_at is None or t.clock_set_at < due):
                outs.append(commands.send(s, None, t, "time.set", {}, now))
    for out in outs:
        routes[out.protocol].deliver_command(out)
    return len(outs)
