"""The point rules: how coin-in earns points, the tiers, the redemption value, the house edges for theo.

One JSON document (table point_rules, row 1), integers only. A manager changes it (rules.md 21);
each change is audited with the whole document before and after.

    cents_per_point      coin-in (cents) that earns one point by default (100: one point per dollar)
    paytables / themes   {"<paytable_id or theme>": cents_per_point} overrides; a paytable beats a theme
                         (the game.end message names theme and paytable; the paytable stands for the
                         game type until the config catalog says more)
    tiers                [{"name", "min_points"}] over the last `tier_period_days` days of earned points
    redeem_cents_per_point  promo credit a point buys at the cage
    house_edge_bp        {"default": bp, "paytables": {"<paytable_id>": bp}}: theoretical win per paytable
"""
from __future__ import annotations

import copy
import datetime as dt

from sqlalchemy.orm import Session

from server import audit
from server.audit import Actor
from server.errors import RuleViolation
from players.models import PointRules

DEFAULT_RULES: dict = {
    "cents_per_point": 100,
    "paytables": {},
    "themes": {},
    "tiers": [{"name": "Bronze", "min_points": 0}, {"name": "Silver", "min_points": 1000},
              {"name": "Gold", "min_points": 5000}, {"name": "Platinum", "min_points": 20000}],
    "tier_period_days": 365,
    "redeem_cents_per_point": 1,
    "house_edge_bp": {"default": 800, "paytables": {}},
}

_RATE = {"type": "integer", "minimum": 1, "maximum": 1_000_000}
_RATES = {"type": "object", "additionalProperties": _RATE, "propertyNames": {"maxLength": 64}}
SCHEMA = {
    "type": "object",
    "required": ["cents_per_point", "tiers", "tier_period_days", "redeem_cents_per_point"],
    "additionalProperties": False,
    "properties": {
        "cents_per_point": _RATE,
        "paytables": _RATES,
        "themes": {"type": "object", "additionalProperties": _RATE, "propertyNames": {"maxLength": 128}},
        "tiers": {"type": "array", "minItems": 1, "maxItems": 20,
                  "items": {"type": "object", "required": ["name", "min_points"], "additionalProperties": False,
                            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 32},
                                           "min_points": {"type": "integer", "minimum": 0}}}},
        "tier_period_days": {"type": "integer", "minimum": 1, "maximum": 3660},
        "redeem_cents_per_point": {"type": "integer", "minimum": 1, "maximum": 10_000},
        "house_edge_bp": {"type": "object", "required": ["default"], "additionalProperties": False,
                          "properties": {"default": {"type": "integer", "minimum": 0, "maximum": 10000},
                                         "paytables": {"type": "object", "propertyNames": {"maxLength": 64},
                                                       "additionalProperties": {"type": "integer", "minimum": 0,
                                                                                "maximum": 10000}}}},
    },
}

_CACHE_KEY = "players.rules"


def current(session: Session) -> dict:
    """The rules in force; cached on the session (one read per gateway batch or request)."""
    cached = session.info.get(_CACHE_KEY)
    if cached is not None:
        return cached
    row = session.get(PointRules, 1)
    rules = _complete(row.rules if row is not None else DEFAULT_RULES)
    session.info[_CACHE_KEY] = rules
    return rules


def _complete(rules: dict) -> dict:
    out = copy.deepcopy(DEFAULT_RULES)
    out.update(copy.deepcopy(rules))
    return out


def replace(session: Session, actor: Actor, new: dict, now: dt.datetime) -> dict:
    """PUT /point-rules: the whole document (validated against SCHEMA by the caller); audited."""
    names = [t["name"] for t in new["tiers"]]
    if len(set(names)) != len(names):
        raise RuleViolation("tier names must differ", code="invalid_rules", field="tiers")
    if not any(t["min_points"] == 0 for t in new["tiers"]):
        raise RuleViolation("one tier must start at 0 points", code="invalid_rules", field="tiers")
    before = current(session)
    after = _complete(new)
    row = session.get(PointRules, 1)
    if row is None:
        session.add(PointRules(id=1, rules=after, updated_at=now, updated_by=actor.username))
    else:
        row.rules, row.updated_at, row.updated_by = after, now, actor.username
    session.flush()
    session.info[_CACHE_KEY] = after
    audit.append(session, actor, "point_rules.update", "point_rules", before, after, at=now)
    return after


def cents_per_point(rules: dict, theme: str, paytable_id: str) -> int:
    return rules["paytables"].get(str(paytable_id)) or rules["themes"].get(theme) or rules["cents_per_point"]


def tier_for(rules: dict, earned_points: int) -> str:
    best = None
    for t in sorted(rules["tiers"], key=lambda t: t["min_points"]):
        if earned_points >= t["min_points"]:
            best = t["name"]
    return best or rules["tiers"][0]["name"]
