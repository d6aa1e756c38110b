"""The players API (http-api.md "Players"): enrolment, search and profile, card replacement,
exclusion, manual point adjustments, points redemption at the cage, and the point rules.
Thin callers of players.accounts / players.rules.
"""
from __future__ import annotations

from cashier import vouchers
from players import accounts, rules
from server.web.api import ApiError, Call, endpoint, int_arg

PLAYER = "/players/<int:player_id>"


def _text(n: int) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": n}


DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
ENROL = {
    "type": "object", "required": ["card_id", "first_name", "last_name", "birth_date"], "additionalProperties": False,
    "properties": {"card_id": _text(64), "first_name": _text(128), "last_name": _text(128), "birth_date": DATE,
                   "id_type": _text(32), "id_number": _text(64), "address": _text(1000),
                   "pin": {"type": "string", "pattern": r"^\d{4,8}$"}},
}
CARD = {"type": "object", "required": ["card_id", "reason"], "additionalProperties": False,
        "properties": {"card_id": _text(64), "reason": _text(500)}}
EXCLUSION = {
    "type": "object", "required": ["reason"], "additionalProperties": False,
    "properties": {"until": DATE, "permanent": {"type": "boolean"}, "reason": _text(500),
                   "kind": {"enum": list(accounts.EXCLUSION_KINDS)}},
}
POINTS = {"type": "object", "required": ["delta", "reason"], "additionalProperties": False,
          "properties": {"delta": {"type": "integer", "minimum": -100_000_000, "maximum": 100_000_000},
                         "reason": _text(500)}}
REDEEM = {"type": "object", "required": ["points"], "additionalProperties": False,
          "properties": {"points": {"type": "integer", "minimum": 1, "maximum": 100_000_000}}}


def _profile(call: Call, p, history: bool = True) -> dict:
    return accounts.profile(call.session, call.host.clock, p, call.host.now(), history=history)


@endpoint("/players", ("POST",), permission="players.enrol", schema=ENROL, status=201)
def enrol(call: Call):
    """Enrol a player with a card (adults only: under the configured age → 422)."""
    b = call.body
    p = accounts.enrol(call.session, call.host.settings, call.actor, card_id=b["card_id"], first_name=b["first_name"],
                       last_name=b["last_name"], birth_date=b["birth_date"], now=call.host.now(),
                       id_type=b.get("id_type"), id_number=b.get("id_number"), address=b.get("address"),
                       pin=b.get("pin"))
    return _profile(call, p)


@endpoint("/players", permission="players.read",
          query={"card_id": "exact card (blocked cards too)", "q": "name, card or player id fragment",
                 "limit": "default 50, at most 500"})
def search(call: Call):
    """Find players by card or by name."""
    card_id, q = call.args.get("card_id") or None, call.args.get("q") or None
    found = accounts.search(call.session, card_id=card_id, q=q, limit=int_arg(call, "limit", 50, 1, 500))
    return [_profile(call, p, history=False) for p in found]


@endpoint(PLAYER, permission="players.read")
def get_player(call: Call, player_id: int):
    """A player's profile: tier, points, sessions, exclusion, cards, points history."""
    return _profile(call, accounts.get(call.session, player_id))


@endpoint(f"{PLAYER}/cards", ("POST",), permission="players.enrol", schema=CARD)
def replace_card(call: Call, player_id: int):
    """Replace a lost card: the old one is blocked (kept), the new one issued."""
    accounts.replace_card(call.session, call.actor, player_id, call.body["card_id"], call.body["reason"],
                          call.host.now())
    return _profile(call, accounts.get(call.session, player_id))


@endpoint(f"{PLAYER}/exclusion", ("POST",), permission="players.manage", schema=EXCLUSION)
def exclude(call: Call, player_id: int):
    """Self-exclusion (kind self, default) or ban, until a date or permanent."""
    b = call.body
    if "until" not in b and not b.get("permanent"):
        raise ApiError("give until (YYYY-MM-DD) or permanent: true", code="invalid_input", status=400, field="until")
    accounts.exclude(call.session, call.host.clock, call.actor, player_id, until=b.get("until"),
                     permanent=bool(b.get("permanent")), reason=b["reason"], kind=b.get("kind", "self"),
                     now=call.host.now())
    return _profile(call, accounts.get(call.session, player_id))


@endpoint(f"{PLAYER}/points", ("POST",), permission="players.manage", schema=POINTS, idempotent=True)
def adjust_points(call: Call, player_id: int):
    """Manual points adjustment (manager), audited with before, after and reason."""
    accounts.adjust_points(call.session, call.actor, player_id, call.body["delta"], call.body["reason"],
                           call.host.now())
    return _profile(call, accounts.get(call.session, player_id))


@endpoint(f"{PLAYER}/redeem", ("POST",), permission="cage", schema=REDEEM, idempotent=True, status=201)
def redeem(call: Call, player_id: int):
    """Redeem points at the cage for a promo voucher."""
    tx, v = accounts.redeem_points(call.session, call.host, call.actor, player_id, call.body["points"],
                                   call.host.now())
    return {"voucher": vouchers.to_dict(v), "points_redeemed": -int(tx.delta), "points": int(tx.balance_after)}


@endpoint("/point-rules", permission="players.read")
def get_rules(call: Call):
    """The point-earning rules in force."""
    return rules.current(call.session)


@endpoint("/point-rules", ("PUT",), permission="players.manage", schema=rules.SCHEMA)
def put_rules(call: Call):
    """Replace the point-earning rules (manager); audited before and after."""
    return rules.replace(call.session, call.actor, call.body, call.host.now())
