"""What player-card messages from a terminal do, and the player club's hooks into the floor:
game.end accrual (dispatch.GAME_HOOKS), a terminal going offline (registry.OFFLINE_HOOKS) and a
new or paid handpay (cashier.handpays CREATED_HOOKS / PAY_HOOKS). Thin: the rules are in sessions.py.
"""
from __future__ import annotations

import datetime as dt

from cashier import handpays
from players import sessions
from terminals import dispatch, registry
from terminals.dispatch import Apply, handles


@handles("card.in")
def on_card_in(ctx: Apply) -> dict:
    return sessions.card_in(ctx.session, ctx.clock, ctx.terminal.egm_id, ctx.up.body.card_id, ctx.now).reply()


@handles("card.out")
def on_card_out(ctx: Apply) -> None:
    sessions.card_out(ctx.session, ctx.clock, ctx.terminal.egm_id, ctx.up.body.card_id, ctx.now)


def _on_game(ctx: Apply) -> None:
    b = ctx.up.body
    sessions.accrue_game(ctx.session, ctx.clock, ctx.terminal.egm_id, ctx.now, theme=b.theme,
                         paytable_id=b.paytable_id, wager_cents=b.wager_cents, win_cents=b.win_cents)


def _on_offline(session, clock, t, now: dt.datetime) -> None:
    sessions.terminal_offline(session, clock, t.egm_id, now)


def _on_handpay(session, clock, h, now: dt.datetime) -> None:
    sessions.flag_handpay(session, clock, h, now)


def _on_pay(session, clock, h, patron, now: dt.datetime) -> None:
    sessions.flag_handpay_patron(session, clock, h, patron, now)


dispatch.GAME_HOOKS.append(_on_game)
registry.OFFLINE_HOOKS.append(_on_offline)
handpays.CREATED_HOOKS.append(_on_handpay)
handpays.PAY_HOOKS.append(_on_pay)
