"""What handpay messages from a terminal do: `handpay` creates a pending handpay; the terminal's
`handpay.reset` (event or acknowledged command) stamps the paid ones that were waiting for it.

The reply is published by the gateway only after the batch commits; a repeated (egm_id, seq)
is answered from the gateway's ledger, so a redelivered `handpay` never makes a second slip.
"""
from __future__ import annotations

from sqlalchemy import select

from cashier import handpays
from server.errors import DomainError
from terminals import dispatch
from terminals.dispatch import Apply, handles
from terminals.models import Command


@handles("handpay")
def on_handpay(ctx: Apply) -> dict:
    b = ctx.up.body
    try:
        h = handpays.create(ctx.session, ctx.clock, ctx.settings, egm_id=ctx.terminal.egm_id,
                            amount_cents=b.amount_cents, kind=b.kind, now=ctx.now, source="mqtt", seq=ctx.up.seq,
                            terminal_ts=ctx.up.ts)
    except DomainError as exc:
        return {"result": "error", "reason": exc.code}
    return {"result": "ok", "handpay_id": h.id}


def _on_event(ctx: Apply) -> None:
    if ctx.up.body.known and ctx.up.body.code == "handpay.reset":
        handpays.mark_reset(ctx.session, ctx.terminal.egm_id, ctx.now)


def _on_ack(ctx: Apply) -> None:
    b = ctx.up.body
    if b.result != "ok":
        return
    name = ctx.session.execute(select(Command.name).where(Command.id == b.id,
                                                          Command.egm_id == ctx.terminal.egm_id)).scalar()
    if name == "handpay.reset":
        handpays.mark_reset(ctx.session, ctx.terminal.egm_id, ctx.now)


dispatch.EVENT_HOOKS.append(_on_event)
dispatch.ACK_HOOKS.append(_on_ack)
