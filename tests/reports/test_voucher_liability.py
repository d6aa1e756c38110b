"""Voucher liability identities over random days of activity (rules.md 13), checked against the vouchers themselves."""
import datetime as dt
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cashier import drawers, vouchers
from cashier.models import Voucher
from reports.vouchers import voucher_activity, voucher_liability
from server.audit import Actor
from server.db import Database
from server.errors import DomainError
from server.gamingday import GamingDayClock

CLOCK = GamingDayClock("America/Los_Angeles", "06:00")
START = dt.datetime(2026, 3, 1, 20, 0, tzinfo=dt.timezone.utc)
OPS = st.lists(st.tuples(st.sampled_from(["issue", "issue", "hold", "commit", "abort", "cage", "void", "day",
                                          "expire", "reinstate"]),
                         st.integers(0, 30), st.integers(1, 500_000)), min_size=5, max_size=60)


def _run(ops):
    tmp = tempfile.mkdtemp()
    db = Database(f"sqlite:///{tmp}/p.db")
    db.create_all()
    policy = vouchers.Policy(clock=CLOCK, expiry_days=3, max_cents=1_000_000)
    boss, cash = Actor("boss", "manager"), Actor("cash", "cashier")
    now = START
    with db.begin() as s:
        drawer = drawers.open_drawer(s, CLOCK, cash, 0, now).id
    numbers: list[str] = []
    days = {CLOCK.day_of(now)}
    for op, pick, amount in ops:
        now += dt.timedelta(minutes=37)
        vn = numbers[pick % len(numbers)] if numbers else None
        try:
            with db.begin() as s:
                if op == "issue":
                    numbers.append(vouchers.issue(s, policy, amount_cents=amount, credit_type="cashable",
                                                  issued_by="EGM1" if pick % 2 else "cash",
                                                  source="terminal" if pick % 2 else "cage", now=now).validation_number)
                elif vn is None:
                    pass
                elif op == "hold":
                    vouchers.redeem_at_terminal(s, policy, "EGM2", vn, now)
                elif op == "commit":
                    vouchers.commit_redemption(s, policy, "EGM2", vn, amount, now)
                elif op == "abort":
                    vouchers.abort_redemption(s, policy, "EGM2", vn, "returned", now)
                elif op == "cage":
                    vouchers.redeem_at_cage(s, policy, cash, vn, drawer, now)
                elif op == "void":
                    vouchers.void(s, policy, boss, vn, "x", now)
                elif op == "reinstate":
                    vouchers.reinstate(s, policy, boss, vn, "ok", now)
                elif op == "expire":
                    vouchers.expire_due(s, policy, now)
                elif op == "day":
                    now += dt.timedelta(days=1)
        except DomainError:
            pass
        days.add(CLOCK.day_of(now))
    return db, sorted(days)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_liability_identities_hold_over_random_days(ops):
    db, days = _run(ops)
    with db.read() as s:
        previous_closing = 0
        for day in days:
            lia = voucher_liability(s, day)["totals"]
            act = voucher_activity(s, day)["totals"]
            assert lia["opening_cents"] == previous_closing
            assert lia["closing_cents"] == (lia["opening_cents"] + lia["issued_cents"] - lia["redeemed_cents"]
                                            - lia["voided_cents"] - lia["expired_cents"])
            assert (act["issued_cents"], act["redeemed_cents"], act["voided_cents"]) == (
                lia["issued_cents"], lia["redeemed_cents"], lia["voided_cents"])
            previous_closing = lia["closing_cents"]
        # Independent of the transitions: what the vouchers themselves say is still owed.
        owed = s.execute(select(func.coalesce(func.sum(Voucher.amount_cents), 0))
                         .where(Voucher.status.in_(["issued", "pending"]))).scalar_one()
        count = s.execute(select(func.count()).select_from(Voucher)
                          .where(Voucher.status.in_(["issued", "pending"]))).scalar_one()
        last = voucher_liability(s, days[-1])
        assert last["totals"]["closing_cents"] == owed
        assert last["totals"]["outstanding_count"] == count
        assert sum(r["amount_cents"] for r in last["rows"]) == owed
    db.dispose()
