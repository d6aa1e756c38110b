"""The cage's API: vouchers and drawers (handpays in cashier/handpays_web.py). Thin callers of the services."""
from __future__ import annotations

from cashier import cage, drawers, vouchers
from cashier.handpays_web import PATRON
from server.web.api import Call, endpoint

VN = "<validation_number>"
AMOUNT = {"type": "integer", "minimum": 0, "maximum": 10**12}
REASON = {"type": "object", "required": ["reason"],
          "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}}}


@endpoint(f"/vouchers/{VN}", permission="vouchers.read")
def get_voucher(call: Call, validation_number: str):
    """A voucher: amount, credit type, status, who issued and redeemed it."""
    return vouchers.to_dict(vouchers.get(call.session, validation_number))


@endpoint("/vouchers", ("POST",), permission="cage", status=201, idempotent=True, schema={
    "type": "object", "required": ["amount_cents", "credit_type"],
    "properties": {"amount_cents": AMOUNT, "credit_type": {"type": "string", "enum": list(vouchers.CREDIT_TYPES)},
                   "patron": PATRON}})
def issue_voucher(call: Call):
    """Issue a voucher at the cage (money into the drawer); the patron is needed at AML thresholds."""
    v = cage.issue_voucher(call.session, call.host, call.actor, call.body["amount_cents"], call.body["credit_type"],
                           call.host.now(), call.body.get("patron"))
    return vouchers.to_dict(v)


@endpoint(f"/vouchers/{VN}/redeem", ("POST",), permission="cage", idempotent=True,
          schema={"type": ["object", "null"], "properties": {"patron": PATRON}})
def redeem_voucher(call: Call, validation_number: str):
    """Pay a voucher at the cage from the cashier's open drawer; the patron is needed at AML thresholds."""
    v = cage.redeem_voucher(call.session, call.host, call.actor, validation_number, call.host.now(),
                            (call.body or {}).get("patron"))
    return {"amount_cents": v.amount_cents, "validation_number": v.validation_number, "status": v.status}


@endpoint(f"/vouchers/{VN}/void", ("POST",), permission="vouchers.void", schema=REASON)
def void_voucher(call: Call, validation_number: str):
    """Void an issued voucher (manager)."""
    return vouchers.to_dict(vouchers.void(call.session, vouchers.policy_for(call.host), call.actor, validation_number,
                                          call.body["reason"], call.host.now()))


@endpoint(f"/vouchers/{VN}/reinstate", ("POST",), permission="vouchers.void", schema=REASON)
def reinstate_voucher(call: Call, validation_number: str):
    """Reinstate an expired voucher with a reason (manager); a cashier then pays it as usual."""
    return vouchers.to_dict(vouchers.reinstate(call.session, vouchers.policy_for(call.host), call.actor,
                                               validation_number, call.body["reason"], call.host.now()))


@endpoint("/drawers", ("POST",), permission="cage", status=201, schema={
    "type": "object", "required": ["opening_cents"], "properties": {"opening_cents": AMOUNT}})
def open_drawer(call: Call):
    """Open this cashier's drawer with a float."""
    d = drawers.open_drawer(call.session, call.host.clock, call.actor, call.body["opening_cents"], call.host.now())
    return drawers.to_dict(d, expected=d.opening_cents)


@endpoint("/drawers/current", permission="cage")
def current_drawer(call: Call):
    """This cashier's open drawer with its running expected balance."""
    d = drawers.require_open(call.session, call.actor.username)
    return drawers.to_dict(d, expected=drawers.expected_cents(call.session, d))


@endpoint("/drawers/<int:drawer_id>/close", ("POST",), permission="cage", schema={
    "type": "object", "required": ["counted_cents"], "properties": {"counted_cents": AMOUNT}})
def close_drawer(call: Call, drawer_id: int):
    """Close a drawer with the counted amount; variance = counted − expected."""
    d = drawers.close_drawer(call.session, call.actor, drawer_id, call.body["counted_cents"], call.host.now())
    return drawers.to_dict(d)
