"""The players API (http-api.md "Players"): enrolment with the age rule, search and profile, card
replacement, exclusion, manual adjustments and point rules (manager only, audited before/after),
redemption at the cage as a promo voucher, roles, and bad input never a 500."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from cashier.models import Voucher
from players.models import Player
from server.models import AuditEntry
from tests.players.helpers import card_in, card_out, game

ADA = {"card_id": "C-100", "first_name": "Ada", "last_name": "Lovelace", "birth_date": "1985-12-10"}


def audit_rows(host, action: str) -> list[AuditEntry]:
    with host.db.read() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).scalars())


def born_years_ago(host, years: int, days: int = 0) -> str:
    today = host.now().astimezone(host.settings.zone).date()
    return (today.replace(year=today.year - years) + dt.timedelta(days=days)).isoformat()


def test_enrol_profile_search_and_pin_hashed(api, host):
    clerk = api.as_("cashier")
    r = clerk.post("/players", json={**ADA, "pin": "1234", "id_type": "DL", "id_number": "D1"})
    assert r.status_code == 201, r.get_json()
    p = r.get_json()
    assert (p["card_id"], p["tier"], p["points"], p["excluded"], p["sessions"], p["pin_set"]) == \
        ("C-100", "Bronze", 0, False, [], True)
    with host.db.read() as s:
        stored = s.get(Player, p["id"]).pin_hash
    assert stored.startswith("$argon2") and "1234" not in stored
    [entry] = audit_rows(host, "player.enrol")
    assert entry.actor == "cashier1" and "1234" not in (entry.after or "")
    assert clerk.get(f"/players/{p['id']}").get_json()["first_name"] == "Ada"
    assert [x["id"] for x in clerk.get("/players?card_id=C-100").get_json()] == [p["id"]]
    assert [x["id"] for x in clerk.get("/players?q=lovel").get_json()] == [p["id"]]
    assert clerk.get("/players?q=nobody").get_json() == []
    assert clerk.get("/players/9999").status_code == 404
    # The same card twice → 409.
    r = clerk.post("/players", json={**ADA, "first_name": "Other"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "card_in_use")


def test_adults_only(api, host):
    clerk = api.as_("cashier")
    age = host.settings.minimum_age
    r = clerk.post("/players", json={**ADA, "birth_date": born_years_ago(host, age, days=1)})
    assert (r.status_code, r.get_json()["error"]["code"], r.get_json()["error"]["field"]) == \
        (422, "too_young", "birth_date")
    assert clerk.post("/players", json={**ADA, "birth_date": born_years_ago(host, age)}).status_code == 201


@pytest.mark.parametrize("body, field", [
    ({**ADA, "birth_date": "1985-13-45"}, "birth_date"),
    ({**ADA, "birth_date": "yesterday"}, "birth_date"),
    ({k: v for k, v in ADA.items() if k != "card_id"}, "card_id"),
    ({**ADA, "card_id": "has space"}, "card_id"),
    ({**ADA, "pin": "12"}, "pin"),
    ({**ADA, "first_name": 5}, "first_name"),
])
def test_bad_enrolment_is_400(api, body, field):
    r = api.as_("cashier").post("/players", json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["field"] == field


def test_roles(api):
    pid = api.as_("cashier").post("/players", json=ADA).get_json()["id"]
    for role in ("attendant", "slot_tech", "admin"):
        assert api.as_(role).get(f"/players/{pid}").status_code == 403
        assert api.as_(role).post("/players", json={**ADA, "card_id": f"X-{role}"}).status_code == 403
    assert api.as_("auditor").get(f"/players/{pid}").status_code == 200
    assert api.as_("auditor").post("/players", json={**ADA, "card_id": "X-aud"}).status_code == 403
    for path, body in ((f"/players/{pid}/exclusion", {"permanent": True, "reason": "x"}),
                       (f"/players/{pid}/points", {"delta": 5, "reason": "x"})):
        assert api.as_("cashier").post(path, json=body).status_code == 403
    assert api.as_("cashier").put("/point-rules", json={"cents_per_point": 1}).status_code == 403
    assert api.as_("manager").post(f"/players/{pid}/redeem", json={"points": 1}).status_code == 403


def test_card_replacement_blocks_the_old_card_and_keeps_history(api, host):
    clerk = api.as_("cashier")
    pid = clerk.post("/players", json=ADA).get_json()["id"]
    r = clerk.post(f"/players/{pid}/cards", json={"card_id": "C-200", "reason": "lost"})
    assert r.status_code == 200, r.get_json()
    p = r.get_json()
    assert p["card_id"] == "C-200"
    assert [(c["card_id"], c["status"], c["blocked_reason"]) for c in p["cards"]] == \
        [("C-100", "blocked", "lost"), ("C-200", "active", None)]
    assert card_in(host, "EGM1", "C-100", host.now()).status == "blocked"
    assert card_in(host, "EGM1", "C-200", host.now()).status == "ok"
    # Looking up the lost card still finds the player.
    assert [x["id"] for x in clerk.get("/players?card_id=C-100").get_json()] == [pid]
    assert clerk.post(f"/players/{pid}/cards", json={"card_id": "C-100", "reason": "x"}).status_code == 409
    assert len(audit_rows(host, "player.card_replace")) == 1


def test_exclusion_by_manager(api, host):
    pid = api.as_("cashier").post("/players", json=ADA).get_json()["id"]
    boss = api.as_("manager")
    assert boss.post(f"/players/{pid}/exclusion", json={"reason": "x"}).status_code == 400
    r = boss.post(f"/players/{pid}/exclusion", json={"until": "2001-01-01", "reason": "x"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (422, "invalid_until")
    until = (host.gaming_day() + dt.timedelta(days=180)).isoformat()
    r = boss.post(f"/players/{pid}/exclusion", json={"until": until, "reason": "asked for it"})
    assert r.status_code == 200
    p = r.get_json()
    assert p["excluded"] is True
    assert {k: p["exclusion"][k] for k in ("kind", "until", "permanent", "reason")} == \
        {"kind": "self", "until": until, "permanent": False, "reason": "asked for it"}
    r = boss.post(f"/players/{pid}/exclusion", json={"permanent": True, "kind": "ban", "reason": "cheating"})
    assert r.get_json()["exclusion"]["kind"] == "ban" and r.get_json()["exclusion"]["permanent"] is True
    entries = audit_rows(host, "player.exclude")
    assert [json.loads(e.after)["exclusion"]["kind"] for e in entries] == ["self", "ban"]
    assert json.loads(entries[1].before)["exclusion"]["kind"] == "self"
    assert [x["excluded"] for x in api.as_("cashier").get("/players?q=ada").get_json()] == [True]


def test_manual_adjustment_audited_and_never_below_zero(api, host):
    pid = api.as_("cashier").post("/players", json=ADA).get_json()["id"]
    boss = api.as_("manager")
    r = boss.post(f"/players/{pid}/points", json={"delta": 250, "reason": "goodwill"})
    assert (r.status_code, r.get_json()["points"]) == (200, 250)
    r = boss.post(f"/players/{pid}/points", json={"delta": -300, "reason": "too much"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (422, "insufficient_points")
    r = boss.post(f"/players/{pid}/points", json={"delta": -50, "reason": "correction"})
    assert r.get_json()["points"] == 200
    assert [(h["kind"], h["delta"], h["balance_after"], h["actor"]) for h in r.get_json()["points_history"]] == \
        [("adjust", -50, 200, "manager1"), ("adjust", 250, 250, "manager1")]
    entries = audit_rows(host, "player.points_adjust")
    assert [(json.loads(e.before), json.loads(e.after)) for e in entries] == [
        ({"points": 0}, {"points": 250, "delta": 250, "reason": "goodwill"}),
        ({"points": 250}, {"points": 200, "delta": -50, "reason": "correction"})]
    assert boss.post(f"/players/{pid}/points", json={"delta": 0, "reason": "x"}).status_code == 400
    assert boss.post(f"/players/{pid}/points", json={"delta": 1.5, "reason": "x"}).status_code == 400
    assert boss.post("/players/999/points", json={"delta": 1, "reason": "x"}).status_code == 404


def test_point_rules_get_put_audited(api, host):
    boss = api.as_("manager")
    rules = boss.get("/point-rules").get_json()
    assert rules["cents_per_point"] == 100
    new = {**rules, "cents_per_point": 500, "themes": {"Dragons": 250}}
    r = boss.put("/point-rules", json=new)
    assert (r.status_code, r.get_json()["cents_per_point"]) == (200, 500)
    assert api.as_("cashier").get("/point-rules").get_json()["themes"] == {"Dragons": 250}
    [entry] = audit_rows(host, "point_rules.update")
    assert (entry.actor, json.loads(entry.before)["cents_per_point"], json.loads(entry.after)["cents_per_point"]) == \
        ("manager1", 100, 500)
    assert boss.put("/point-rules", json={**new, "cents_per_point": 0}).status_code == 400
    assert boss.put("/point-rules", json={**new, "cents_per_point": 2.5}).status_code == 400
    assert boss.put("/point-rules", json={**new, "bogus": 1}).status_code == 400
    r = boss.put("/point-rules", json={**new, "tiers": [{"name": "A", "min_points": 10}]})
    assert (r.status_code, r.get_json()["error"]["code"]) == (422, "invalid_rules")
    assert len(audit_rows(host, "point_rules.update")) == 1


def test_redeem_points_at_the_cage_as_a_promo_voucher(api, host):
    pid = api.as_("cashier").post("/players", json=ADA).get_json()["id"]
    t0 = host.now() - dt.timedelta(minutes=10)
    card_in(host, "EGM1", "C-100", t0)
    game(host, "EGM1", t0, 50_000)  # $500 coin-in: 500 points
    card_out(host, "EGM1", "C-100", t0 + dt.timedelta(minutes=1))
    cage = api.as_("cashier")
    key = {"Idempotency-Key": "redeem-1"}
    r = cage.post(f"/players/{pid}/redeem", json={"points": 300}, headers=key)
    assert r.status_code == 201, r.get_json()
    out = r.get_json()
    assert (out["points"], out["points_redeemed"]) == (200, 300)
    assert (out["voucher"]["credit_type"], out["voucher"]["amount_cents"], out["voucher"]["status"]) == \
        ("promo", 300, "issued")
    # A retry with the same key moves nothing twice.
    again = cage.post(f"/players/{pid}/redeem", json={"points": 300}, headers=key)
    assert again.get_json() == out
    r = cage.post(f"/players/{pid}/redeem", json={"points": 201})
    assert (r.status_code, r.get_json()["error"]["code"]) == (422, "insufficient_points")
    with host.db.read() as s:
        vouchers = s.execute(select(Voucher)).scalars().all()
    assert [(v.validation_number, v.credit_type, v.issued_by) for v in vouchers] == \
        [(out["voucher"]["validation_number"], "promo", "cashier1")]
    assert api.as_("cashier").get(f"/players/{pid}").get_json()["points"] == 200
    assert len(audit_rows(host, "player.points_redeem")) == 1
