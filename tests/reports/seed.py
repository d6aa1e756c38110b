"""A known gaming day written through the services (not the wire): two terminals, meters, play, vouchers,
a handpay, a bill, an offline period. Every figure the report tests check is written down here."""
from __future__ import annotations

import datetime as dt

from cashier import handpays, vouchers
from server.audit import SYSTEM
from terminals import meters, play, registry

DAY = dt.date(2026, 3, 10)  # a past, ended gaming day (America/Los_Angeles, 06:00 start)


def at(host, hours: float) -> dt.datetime:
    """An instant `hours` after the start of DAY."""
    return host.clock.bounds(DAY)[0] + dt.timedelta(hours=hours)


def seed_day(host) -> dict:
    s_now = at(host, 0)
    pol = vouchers.policy_for(host)
    with host.db.begin() as s:
        registry.register(s, SYSTEM, "EGM1", "mqtt", {"bank": "A"}, {}, s_now - dt.timedelta(days=1))
        registry.register(s, SYSTEM, "EGM2", "mqtt", {"bank": "B"}, {}, s_now - dt.timedelta(days=1))
    def snap(egm, hours, **values):
        with host.db.begin() as s:
            meters.record_snapshot(s, host.clock, registry.get(s, egm), values, at(host, hours))
    base = dict(coin_in_cents=1_000_000, coin_out_cents=900_000, jackpot_cents=0, handpay_cancelled_credits_cents=0,
                bills_in_cents=500_000, voucher_in_cents=0, voucher_out_cents=100_000, games_played=4000,
                games_won=1000, door_open_count=3)
    snap("EGM1", 0.5, **base)
    # EGM1 over the day: coin in +250,000; coin out +180,000; jackpot +50,000 (handpaid); bills +20,000;
    # voucher out +30,000 (one voucher the host issued); 500 games.
    snap("EGM1", 10, **{**base, "coin_in_cents": 1_250_000, "coin_out_cents": 1_080_000, "jackpot_cents": 50_000,
                        "bills_in_cents": 520_000, "voucher_out_cents": 130_000, "games_played": 4500,
                        "games_won": 1100})
    # EGM2: coin in +100,000, coin out +95,000; voucher out +40,000 on the meters but the host saw none
    # (a meter-vs-transaction exception: $400 > $100 and > 2 %).
    snap("EGM2", 1, **base)
    snap("EGM2", 12, **{**base, "coin_in_cents": 1_100_000, "coin_out_cents": 995_000, "voucher_out_cents": 140_000,
                        "games_played": 4200})
    with host.db.begin() as s:
        t1, t2 = registry.get(s, "EGM1"), registry.get(s, "EGM2")
        for i in range(10):
            play.record_game(s, host.clock, t1, at(host, 2 + i / 10), theme="Sevens", paytable_id="PT95",
                             denom_cents=1, wager_cents=100, win_cents=50, credits_after_cents=None)
        for i in range(4):
            play.record_game(s, host.clock, t2, at(host, 3 + i / 10), theme="Cherries", paytable_id="PT88",
                             denom_cents=5, wager_cents=500, win_cents=0, credits_after_cents=None)
        vouchers.issue(s, pol, amount_cents=30_000, credit_type="cashable", issued_by="EGM1", source="terminal",
                       now=at(host, 9))
        registry.add_event(s, host.clock, t1, "bill.accepted", at(host, 4), detail={"amount_cents": 20_000})
        handpays.create(s, host.clock, host.settings, egm_id="EGM1", amount_cents=50_000, kind="jackpot",
                        now=at(host, 8))
        registry.went_online(s, host.clock, t2, at(host, 0.9), "mqtt")
        registry.went_offline(s, host.clock, t2, at(host, 13), "heartbeat", "mqtt")
        registry.went_online(s, host.clock, t2, at(host, 14), "mqtt")
    return {"coin_in": 350_000, "coin_out": 275_000, "jackpot": 50_000}
