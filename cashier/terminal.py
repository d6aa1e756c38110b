"""What voucher messages from a terminal do: the gateway's handlers call the voucher services.

The reply a handler returns is published by the gateway only after the batch commits,
so a terminal never prints or credits on the strength of an uncommitted change.
"""
from __future__ import annotations

from cashier import vouchers
from server.errors import DomainError
from terminals.dispatch import Apply, handles


def _iso(t):
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@handles("voucher.issue")
def on_issue(ctx: Apply) -> dict:
    b = ctx.up.body
    try:
        v = vouchers.issue(ctx.session, vouchers.policy_for(ctx.host), amount_cents=b.amount_cents,
                           credit_type=b.credit_type, issued_by=ctx.terminal.egm_id, source="terminal", now=ctx.now)
    except DomainError as exc:
        return {"result": "error", "reason": exc.code}
    return {"result": "ok", "validation_number": v.validation_number, "expires_at": _iso(v.expires_at)}


@handles("voucher.printed")
def on_printed(ctx: Apply) -> None:
    vouchers.mark_printed(ctx.session, vouchers.policy_for(ctx.host), ctx.terminal.egm_id,
                          ctx.up.body.validation_number, ctx.now)


@handles("voucher.print_failed")
def on_print_failed(ctx: Apply) -> None:
    vouchers.print_failed(ctx.session, vouchers.policy_for(ctx.host), ctx.terminal.egm_id,
                          ctx.up.body.validation_number, ctx.now)


@handles("voucher.redeem")
def on_redeem(ctx: Apply) -> dict:
    try:
        v = vouchers.redeem_at_terminal(ctx.session, vouchers.policy_for(ctx.host), ctx.terminal.egm_id,
                                        ctx.up.body.validation_number, ctx.now)
    except vouchers.VoucherNotPayable as exc:
        return {"result": "rejected", "reason": exc.reason}
    except DomainError as exc:
        return {"result": "rejected", "reason": exc.reason}
    return {"result": "authorized", "amount_cents": v.amount_cents, "credit_type": v.credit_type}


@handles("voucher.redeem.commit")
def on_commit(ctx: Apply) -> None:
    b = ctx.up.body
    vouchers.commit_redemption(ctx.session, vouchers.policy_for(ctx.host), ctx.terminal.egm_id,
                               b.validation_number, b.amount_cents, ctx.now)


@handles("voucher.redeem.abort")
def on_abort(ctx: Apply) -> None:
    b = ctx.up.body
    vouchers.abort_redemption(ctx.session, vouchers.policy_for(ctx.host), ctx.terminal.egm_id,
                              b.validation_number, b.reason, ctx.now)
