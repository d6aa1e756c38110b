"""The cage's API for handpays (list, pay, void) and the AML logs (CTR, MTL). Thin callers of the services."""
from __future__ import annotations

import logging

from cashier import aml, drawers, handpays
from server.web.api import ApiError, Call, endpoint, int_arg
from server.web.params import parse_day
from terminals import web as terminals_web

log = logging.getLogger("floorhost.handpays")

HANDPAY = "/handpays/<int:handpay_id>"


def _text(max_length: int) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": max_length}


PATRON = {
    "type": ["object", "null"], "required": list(handpays.PATRON_FIELDS),
    "properties": {"first_name": _text(128), "last_name": _text(128),
                   "birth_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                   "id_type": _text(32), "id_number": _text(64), "address": _text(1000)},
}
PAY_SCHEMA = {
    # No body at all is fine for a handpay below every threshold.
    "type": ["object", "null"],
    "properties": {
        "patron": PATRON,
        "second_signer": {"type": ["object", "null"], "required": ["username", "password"],
                          "properties": {"username": _text(64), "password": _text(1024)}},
    },
}
REASON = {"type": "object", "required": ["reason"],
          "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}}}


@endpoint("/handpays", permission="vouchers.read",
          query={"status": "pending | paid | void", "egm_id": "one terminal", "limit": "default 500, at most 5000"})
def list_handpays(call: Call):
    """Handpays, newest slip first."""
    status = call.args.get("status") or None
    if status is not None and status not in handpays.STATUSES:
        raise ApiError("status must be pending, paid or void", code="invalid_input", status=400, field="status")
    return [handpays.to_dict(h) for h in handpays.list_(call.session, status, egm_id=call.args.get("egm_id") or None,
                                                         limit=int_arg(call, "limit", 500, 1, 5000))]


@endpoint(HANDPAY, permission="vouchers.read")
def get_handpay(call: Call, handpay_id: int):
    """One handpay."""
    return handpays.to_dict(handpays.get(call.session, handpay_id))


@endpoint(f"{HANDPAY}/pay", ("POST",), permission="cage", idempotent=True, schema=PAY_SCHEMA)
def pay_handpay(call: Call, handpay_id: int):
    """Pay a handpay from the cashier's open drawer; the terminal is told to reset after the commit."""
    body = call.body or {}
    drawer = drawers.require_open(call.session, call.actor.username)
    routes = call.host.components.get("routes", {})
    paid = handpays.pay(call.session, call.host.settings, call.actor, handpay_id, drawer, body.get("patron"),
                        body.get("second_signer"), call.host.now(), clock=call.host.clock, protocols=set(routes))
    out = paid.command
    if out is not None:
        route = routes.get(out.protocol)
        call.after_commit.append(lambda: route.deliver_command(out))
    return {**handpays.to_dict(paid.handpay), "reset": paid.reset, "w2g_id": paid.w2g.id if paid.w2g else None}


@endpoint(f"{HANDPAY}/void", ("POST",), permission="vouchers.void", schema=REASON)
def void_handpay(call: Call, handpay_id: int):
    """Void a pending handpay (manager); it keeps its slip number."""
    return handpays.to_dict(handpays.void(call.session, call.actor, handpay_id, call.body["reason"], call.host.now()))


def _day(call: Call):
    raw = call.args.get("gaming_day")
    return parse_day(raw, "gaming_day") if raw else call.host.gaming_day()


@endpoint("/aml/ctr", permission="reports.read", query={"gaming_day": "YYYY-MM-DD, default today"})
def list_ctr(call: Call):
    """Currency transaction reports of a gaming day."""
    return [aml.ctr_to_dict(c) for c in aml.ctr_list(call.session, _day(call))]


@endpoint("/aml/mtl", permission="reports.read", query={"gaming_day": "YYYY-MM-DD, default today"})
def list_mtl(call: Call):
    """The multiple-transaction log of a gaming day."""
    return [aml.mtl_to_dict(m) for m in aml.mtl_list(call.session, _day(call))]


def _open_handpays(session, egm_id: str) -> list[dict]:
    return [handpays.to_dict(h) for h in handpays.open_for_terminal(session, egm_id)]


# GET /terminals/{egm_id} lists the terminal's open handpays through this hook.
if not terminals_web.OPEN_HANDPAYS:
    terminals_web.OPEN_HANDPAYS.append(_open_handpays)
