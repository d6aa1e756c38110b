"""Win identities over random days of meter readings (rules.md 4): net = in − out − jackpot per terminal;
terminals, banks and the total agree; day reports add up to month-to-date and year-to-date; hold is the
rounded ratio; and the meter deltas equal last − first reading when nothing rolled over."""
import datetime as dt
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports.core import ratio_bp
from reports.win import meter_rows, win_rows
from server.audit import SYSTEM
from server.db import Database
from server.gamingday import GamingDayClock
from terminals import meters, registry

CLOCK = GamingDayClock("America/Los_Angeles", "06:00")
START = dt.datetime(2026, 1, 29, 15, 0, tzinfo=dt.timezone.utc)  # spans a month end
STEP = st.tuples(st.integers(0, 3), st.integers(0, 50_000), st.integers(0, 40_000), st.integers(0, 5_000),
                 st.integers(1, 14))
DAYS = st.lists(STEP, min_size=1, max_size=40)


def _run(steps):
    db = Database(f"sqlite:///{tempfile.mkdtemp()}/w.db")
    db.create_all()
    with db.begin() as s:
        for i in range(4):
            registry.register(s, SYSTEM, f"EGM{i}", "mqtt", {"bank": "AB"[i % 2]}, {}, START)
    level = {f"EGM{i}": [0, 0, 0] for i in range(4)}
    now = START
    for egm_i, ci, co, jp, hours in steps:
        now += dt.timedelta(hours=hours)
        egm = f"EGM{egm_i}"
        lv = level[egm]
        lv[0] += ci
        lv[1] += co
        lv[2] += jp
        with db.begin() as s:
            meters.record_snapshot(s, CLOCK, registry.get(s, egm), {"coin_in_cents": lv[0], "coin_out_cents": lv[1],
                                                                     "jackpot_cents": lv[2]}, now)
    return db, CLOCK.day_of(START), CLOCK.day_of(now), level


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DAYS)
def test_win_identities_over_random_days(steps):
    db, first, last, level = _run(steps)
    with db.read() as s:
        day_totals = {}
        d = first
        while d <= last:
            rows, totals = win_rows(s, d, d)
            for r in rows:
                assert r["net_win_cents"] == r["coin_in_cents"] - r["coin_out_cents"] - r["jackpot_cents"]
                assert r["hold_bp"] == ratio_bp(r["net_win_cents"], r["coin_in_cents"])
            for p in ("day", "mtd", "ytd"):
                by = lambda scope: [r for r in rows if r["scope"] == scope and r["period"] == p]  # noqa: E731
                total = by("total")[0]
                for key in ("coin_in_cents", "coin_out_cents", "jackpot_cents", "net_win_cents"):
                    assert sum(r[key] for r in by("terminal")) == total[key]
                    assert sum(r[key] for r in by("bank")) == total[key]
            assert totals["net_win_cents"] == next(r for r in rows if r["scope"] == "total" and r["period"] == "day")[
                "net_win_cents"]
            day_totals[d] = totals
            mtd = next(r for r in rows if r["scope"] == "total" and r["period"] == "mtd")
            assert mtd["coin_in_cents"] == sum(t["coin_in_cents"] for x, t in day_totals.items()
                                               if x.month == d.month and x.year == d.year)
            d += dt.timedelta(days=1)
        rows, totals = win_rows(s, first, last)
        # Deltas sum to last − first reading of each terminal (no rollovers here, nothing went backwards).
        assert totals["coin_in_cents"] == sum(t["coin_in_cents"] for t in day_totals.values())
        mrows, mtot = meter_rows(s, first, last)
        for r in mrows:
            if r["meter"] in ("coin_in_cents", "coin_out_cents", "jackpot_cents"):
                assert r["closing"] - r["opening"] == r["delta"]
        idx = {"coin_in_cents": 0, "coin_out_cents": 1, "jackpot_cents": 2}
        firsts = {r["egm_id"]: r for r in mrows if r["meter"] == "coin_in_cents"}
        for egm, r in firsts.items():
            assert r["closing"] == level[egm][idx["coin_in_cents"]]
        assert mtot["coin_in_cents"] == totals["coin_in_cents"]
    db.dispose()
