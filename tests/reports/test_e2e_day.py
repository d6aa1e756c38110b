"""A scripted day of play from a raw MQTT terminal over the real broker and gateway — bills, games, vouchers
out and in, a handpay, meters — then every total of the reports it covers checked to the cent, live and
again from the archive after the day is closed."""
from __future__ import annotations

import datetime as dt

import pytest

from tests.support.terminal import HELLO, METERS, RawTerminal, eventually, settle

pytestmark = pytest.mark.slow


@pytest.fixture
def egm(api, gateway, broker, host):
    r = api.as_("slot_tech").post("/terminals", json={"egm_id": "EGM1", "protocol": "mqtt", "location": {"bank": "A"}})
    assert r.status_code == 201
    assert api.as_("slot_tech").post("/software", json={"name": "reels", "version": "1.0",
                                                         "sha256": "ab" * 32}).status_code == 201
    t = RawTerminal(broker, "EGM1", r.get_json()["mqtt"]["password"], root=host.settings.topic_root)
    t.request("hello", HELLO)
    r = api.as_("manager").post("/terminals/EGM1/commands", json={"name": "enable"})
    cmd = t.wait(lambda m: m["type"] == "cmd")
    t.send("cmd.ack", {"id": cmd["id"], "result": "ok"})
    yield t
    t.close()


def test_a_scripted_day_reports_to_the_cent(egm, api, gateway, host):
    egm.send("meters", {"meters": dict(METERS)})
    for amount in (10_000, 5_000):
        egm.send("event", {"code": "bill.accepted", "detail": {"amount_cents": amount}})
    for win in (0, 250, 0, 1000, 0):
        egm.send("game.end", {"game": {"theme": "Sevens", "paytable_id": "PT1"}, "denom_cents": 1,
                              "wager_cents": 100, "win_cents": win, "credits_after_cents": 0})
    v1 = egm.request("voucher.issue", {"amount_cents": 12_000, "credit_type": "cashable"})["body"]
    v2 = egm.request("voucher.issue", {"amount_cents": 5_000, "credit_type": "cashable"})["body"]
    assert v1["result"] == v2["result"] == "ok"
    egm.send("voucher.printed", {"validation_number": v1["validation_number"]})
    egm.send("voucher.printed", {"validation_number": v2["validation_number"]})
    red = egm.request("voucher.redeem", {"validation_number": v2["validation_number"]})["body"]
    assert red["result"] == "authorized" and red["amount_cents"] == 5_000
    egm.send("voucher.redeem.commit", {"validation_number": v2["validation_number"], "amount_cents": 5_000})
    hp = egm.request("handpay", {"amount_cents": 150_000, "kind": "jackpot"})["body"]
    assert hp["result"] == "ok"
    final = {**METERS, "coin_in_cents": 500_000, "coin_out_cents": 300_000, "jackpot_cents": 150_000,
             "bills_in_cents": 15_000, "voucher_out_cents": 17_000, "voucher_in_cents": 5_000,
             "games_played": 5, "games_won": 2}
    egm.send("meters", {"meters": final})
    settle(gateway)
    day = host.gaming_day().isoformat()
    mgr = api.as_("manager")

    def report(name, **kw):
        r = mgr.get(f"/reports/{name}?gaming_day={day}" + "".join(f"&{k}={v}" for k, v in kw.items()))
        assert r.status_code == 200, r.data
        return r.get_json()

    eventually(lambda: report("meters")["totals"]["coin_in_cents"] == 500_000)

    def check_all(get):
        win = get("win")
        assert win["totals"] == {"coin_in_cents": 500_000, "coin_out_cents": 300_000, "jackpot_cents": 150_000,
                                 "net_win_cents": 50_000, "hold_bp": 1000, "theoretical_hold_bp": 1000}
        denom = next(r for r in win["rows"] if r["scope"] == "denomination" and r["period"] == "day")
        assert (denom["key"], denom["coin_in_cents"], denom["coin_out_cents"]) == ("1", 500, 1250)
        m = get("meters")["totals"]
        assert (m["bills_in_cents"], m["voucher_out_cents"], m["voucher_in_cents"], m["games_played"]) == \
            (15_000, 17_000, 5_000, 5)
        assert get("voucher-activity")["totals"] == {
            "issued_count": 2, "issued_cents": 17_000, "redeemed_count": 1, "redeemed_cents": 5_000,
            "voided_count": 0, "voided_cents": 0, "expired_count": 0, "expired_cents": 0}
        lia = get("voucher-liability")["totals"]
        assert (lia["opening_cents"], lia["issued_cents"], lia["redeemed_cents"], lia["closing_cents"],
                lia["outstanding_count"]) == (0, 17_000, 5_000, 12_000, 1)
        hps = get("handpays")
        assert hps["totals"]["pending_cents"] == 150_000 and hps["rows"][0]["egm_id"] == "EGM1"
        rec = get("meter-reconciliation")
        assert rec["totals"]["exceptions"] == 0
        assert {r["item"]: (r["meter_cents"], r["host_cents"]) for r in rec["rows"]} == {
            "voucher_out": (17_000, 17_000), "voucher_in": (5_000, 5_000), "jackpot": (150_000, 150_000),
            "bills_in": (15_000, 15_000)}
        events = get("events")
        assert [r["code"] for r in events["rows"] if r["code"] == "bill.accepted"] == ["bill.accepted"] * 2

    check_all(report)

    # The day ends; the manager closes it; the archive serves the same figures.
    real_now = host.now
    host.now = lambda: host.clock.bounds(host.clock.day_of(real_now()))[1] + dt.timedelta(minutes=1)
    closed = mgr.post(f"/gaming-days/{day}/close")
    assert closed.status_code == 200, closed.get_json()
    assert closed.get_json()["reconciliation_exceptions"] == 0

    def archived(name, **kw):
        r = mgr.get(f"/reports/{name}?gaming_day={day}")
        assert r.headers["X-Report-Archived"] == "true"
        return r.get_json()

    check_all(archived)
