"""The cashier station: the cage page, its page-JSON calls (cookie auth, CSRF on every POST) and the
printable voucher and handpay slip. Thin: every action calls the same services as the API.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Callable

import jsonschema
from flask import Blueprint, Response, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from cashier import cage as cage_service
from cashier import drawers, handpays, printing, vouchers
from cashier.handpays_web import PAY_SCHEMA
from cashier.models import Drawer, DrawerTransaction, W2G
from server.errors import DomainError, InvalidInput, run_after_rollback
from server.web.api import error_response, host, json_response
from server.web.pages import page

log = logging.getLogger("floorhost.cage")

cage = Blueprint("cage", __name__, template_folder="../server/templates")

VALIDATION_NUMBER = re.compile(r"^\d{18}$")
# Dollars and up to two decimals, as typed: "125", "125.5", "1,250.00", "$40". Never through a float.
MONEY = re.compile(r"^\$?(\d{1,3}(?:,\d{3})+|\d{1,10})(?:\.(\d{1,2}))?$")
_pay_validator = jsonschema.Draft202012Validator(PAY_SCHEMA)


def parse_money(text: Any, field: str) -> int:
    """'1,250.50' → 125050 cents; anything else is a 400 naming the field."""
    m = MONEY.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InvalidInput("enter an amount in dollars and cents, like 125.00", code="invalid_amount", field=field)
    return int(m.group(1).replace(",", "")) * 100 + int((m.group(2) or "0").ljust(2, "0"))


def _body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _fail(exc: DomainError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.field)


def _act(me, what: Callable[[Session, list], Any], status: int = 200) -> Response:
    """Runs one action in one transaction; a domain refusal becomes its JSON error, nothing is written."""
    h = host()
    after: list[Callable[[], None]] = []
    try:
        with h.db.begin() as s:
            out = what(s, after)
    except DomainError as exc:
        log.info("cage %s: %s refused: %s", me.username, request.path, exc.code)
        run_after_rollback(h.db, exc)
        return _fail(exc)
    for action in after:  # only after the commit may a terminal be told
        try:
            action()
        except Exception:
            log.exception("after-commit action failed")
    return json_response(out, status)


def _drawer_view(s: Session, d: Drawer | None) -> dict | None:
    if d is None:
        return None
    out = drawers.to_dict(d, expected=drawers.expected_cents(s, d) if d.status == "open" else None)
    rows = s.execute(select(DrawerTransaction).where(DrawerTransaction.drawer_id == d.id)
                     .order_by(DrawerTransaction.id.desc()).limit(12)).scalars()
    zone = host().settings.zone
    out["opened_at_local"] = printing.local(d.opened_at, zone)
    out["transactions"] = [{"kind": t.kind, "ref": t.ref, "amount_cents": t.amount_cents,
                            "at_local": printing.local(t.at, zone, "%H:%M:%S")} for t in rows]
    return out


def _handpay_view(h) -> dict:
    settings = host().settings
    d = handpays.to_dict(h)
    d.update(created_at_local=printing.local(h.created_at, settings.zone),
             needs_second_signer=h.amount_cents >= settings.second_signer_cents,
             pdf=url_for("cage.handpay_pdf", handpay_id=h.id))
    return d


def _voucher_view(s: Session, v) -> dict:
    zone = host().settings.zone
    d = vouchers.to_dict(v)
    # why_not() answers "issued" only for a voucher that is issued and unexpired: payable now.
    state = vouchers.why_not(s, v.validation_number, host().now())
    d.update(state=state, payable=state == "issued", issued_source=v.issued_source,
             issued_at_local=printing.local(v.issued_at, zone), expires_at_local=printing.local(v.expires_at, zone),
             redeemed_at_local=printing.local(v.redeemed_at, zone) if v.redeemed_at else None,
             pdf=url_for("cage.voucher_pdf", vn=v.validation_number))
    return d


def _check_number(vn: str) -> None:
    if not VALIDATION_NUMBER.match(vn):
        raise InvalidInput("a validation number is 18 digits", code="invalid_validation_number",
                           field="validation_number")


# ---- the page -----------------------------------------------------------------------------------

@cage.get("/cage")
@page("cage")
def cage_page(me):
    return render_template("cage.html", me=me)


@cage.get("/cage/state.json")
@page("cage", json=True)
def state(me):
    h = host()
    with h.db.read() as s:
        d = drawers.current(s, me.username)
        pending = [_handpay_view(x) for x in reversed(handpays.list_(s, "pending", limit=200))]
        out = {"drawer": _drawer_view(s, d), "handpays": pending,
               "second_signer_cents": h.settings.second_signer_cents, "gaming_day": h.gaming_day().isoformat()}
    return json_response(out)


# ---- drawer -------------------------------------------------------------------------------------

@cage.post("/cage/drawer")
@page("cage", json=True)
def open_drawer(me):
    def do(s, _after):
        cents = parse_money(_body().get("opening"), "opening")
        d = drawers.open_drawer(s, host().clock, me.actor, cents, host().now())
        log.info("cage %s opened drawer %s with %d cents", me.username, d.id, cents)
        return {"drawer": _drawer_view(s, d)}
    return _act(me, do, 201)


@cage.post("/cage/drawer/<int:drawer_id>/close")
@page("cage", json=True)
def close_drawer(me, drawer_id: int):
    def do(s, _after):
        cents = parse_money(_body().get("counted"), "counted")
        d = drawers.close_drawer(s, me.actor, drawer_id, cents, host().now())
        log.info("cage %s closed drawer %s: expected %s counted %s variance %s", me.username, d.id,
                 d.expected_cents, d.counted_cents, d.variance_cents)
        return {"closed": drawers.to_dict(d)}
    return _act(me, do)


# ---- vouchers -----------------------------------------------------------------------------------

@cage.get("/cage/vouchers/<vn>")
@page("vouchers.read", json=True)
def lookup_voucher(me, vn: str):
    try:
        _check_number(vn)
        with host().db.read() as s:
            return json_response(_voucher_view(s, vouchers.get(s, vn)))
    except DomainError as exc:
        return _fail(exc)


@cage.post("/cage/vouchers/<vn>/pay")
@page("cage", json=True)
def pay_voucher(me, vn: str):
    def do(s, _after):
        _check_number(vn)
        h = host()
        v = cage_service.redeem_voucher(s, h, me.actor, vn, h.now(), _body().get("patron"))
        drawer = drawers.require_open(s, me.username)
        log.info("cage %s paid voucher %s %d cents from drawer %s", me.username, vn, v.amount_cents, drawer.id)
        return {"voucher": _voucher_view(s, v), "drawer": _drawer_view(s, drawer)}
    return _act(me, do)


@cage.post("/cage/vouchers")
@page("cage", json=True)
def issue_voucher(me):
    def do(s, _after):
        body = _body()
        cents = parse_money(body.get("amount"), "amount")
        h = host()
        v = cage_service.issue_voucher(s, h, me.actor, cents, body.get("credit_type"), h.now(), body.get("patron"))
        drawer = drawers.require_open(s, me.username)
        log.info("cage %s issued voucher %s %d cents into drawer %s", me.username, v.validation_number, cents,
                 drawer.id)
        return {"voucher": _voucher_view(s, v), "drawer": _drawer_view(s, drawer)}
    return _act(me, do, 201)


@cage.get("/cage/vouchers/<vn>.pdf")
@page("vouchers.read")
def voucher_pdf(me, vn: str):
    h = host()
    with h.db.read() as s:
        v = vouchers.get(s, vn)
        pdf = printing.voucher_pdf(v, printing.Letterhead.of(h.settings))
    return _pdf_response(pdf, f"voucher-{vn}.pdf")


# ---- handpays -----------------------------------------------------------------------------------

@cage.post("/cage/handpays/<int:handpay_id>/pay")
@page("cage", json=True)
def pay_handpay(me, handpay_id: int):
    def do(s, after):
        body = _body()
        errors = sorted(_pay_validator.iter_errors(body), key=lambda e: len(e.path))
        if errors:
            field = ".".join(str(p) for p in errors[0].absolute_path) or None
            raise InvalidInput(f"{field or 'body'}: {errors[0].message}", code="invalid_input", field=field)
        h = host()
        drawer = drawers.require_open(s, me.username)
        routes = h.components.get("routes", {})
        paid = handpays.pay(s, h.settings, me.actor, handpay_id, drawer, body.get("patron"),
                            body.get("second_signer"), h.now(), clock=h.clock, protocols=set(routes))
        if paid.command is not None:
            route, out = routes.get(paid.command.protocol), paid.command
            after.append(lambda: route.deliver_command(out))
        return {"handpay": _handpay_view(paid.handpay), "reset": paid.reset,
                "w2g_id": paid.w2g.id if paid.w2g else None, "drawer": _drawer_view(s, drawer)}
    return _act(me, do)


@cage.get("/cage/handpays/<int:handpay_id>.pdf")
@page("vouchers.read")
def handpay_pdf(me, handpay_id: int):
    h = host()
    with h.db.read() as s:
        hp = handpays.get(s, handpay_id)
        w2g = s.execute(select(W2G).where(W2G.handpay_id == hp.id)).scalar_one_or_none()
        name = f"{w2g.first_name} {w2g.last_name}" if w2g else None
        pdf = printing.handpay_pdf(hp, printing.Letterhead.of(h.settings), patron_name=name,
                                   second_signer_cents=h.settings.second_signer_cents)
    return _pdf_response(pdf, f"handpay-{hp.slip_number}.pdf")


def _pdf_response(pdf: bytes, filename: str) -> Response:
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "no-store"})
