"""Shared helpers of the players tests: enrol through the service, card in/out and games in their own
transactions (as the gateway would, one message each)."""
from __future__ import annotations

import datetime as dt
import zoneinfo

from players import accounts, sessions
from server.audit import SYSTEM, Actor
from terminals import registry

LA = zoneinfo.ZoneInfo("America/Los_Angeles")  # the test host's zone (tests/conftest.py)
CLERK = Actor("cashier1", "cashier")
MANAGER = Actor("manager1", "manager")


def local(*a) -> dt.datetime:
    return dt.datetime(*a, tzinfo=LA).astimezone(dt.timezone.utc)


def enrol(host, card_id: str = "C-1", first: str = "Ada", last: str = "Lovelace", born: str = "1980-01-02",
          now: dt.datetime | None = None) -> int:
    with host.db.begin() as s:
        return accounts.enrol(s, host.settings, CLERK, card_id=card_id, first_name=first, last_name=last,
                              birth_date=born, now=now or host.now()).id


def add_terminal(host, egm_id: str, online: bool = True) -> None:
    with host.db.begin() as s:
        t = registry.register(s, SYSTEM, egm_id, "mqtt", {}, {}, host.now()).terminal
        if online:
            t.comms = "online"


def card_in(host, egm_id: str, card_id: str, now: dt.datetime):
    with host.db.begin() as s:
        return sessions.card_in(s, host.clock, egm_id, card_id, now)


def card_out(host, egm_id: str, card_id: str, now: dt.datetime):
    with host.db.begin() as s:
        return sessions.card_out(s, host.clock, egm_id, card_id, now)


def game(host, egm_id: str, now: dt.datetime, wager: int, win: int = 0, theme: str = "Reels",
         paytable: str = "PT-1") -> bool:
    with host.db.begin() as s:
        return sessions.accrue_game(s, host.clock, egm_id, now, theme=theme, paytable_id=paytable,
                                    wager_cents=wager, win_cents=win)
