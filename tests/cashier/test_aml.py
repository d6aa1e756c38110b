"""AML (rules.md 17–19): MTL per single transaction, CTR over the day's sum per direction (jackpots
excluded), structuring just under the threshold, and the handpay pay path feeding them."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from cashier import aml
from cashier.models import CashTransaction, CurrencyTransactionReport, MtlEntry
from server.models import Alert
from tests.cashier.test_handpays import PATRON, add_terminal, new_handpay
from tests.conftest import PASSWORD, make_operator

NOON = dt.datetime(2026, 3, 10, 20, 0, tzinfo=dt.timezone.utc)  # 12:00 in Los Angeles, gaming day 2026-03-10
DAY = dt.date(2026, 3, 10)


def cash(host, amount: int, patron: str = "dl:A1", direction: str = "out", now: dt.datetime = NOON,
         kind: str = "voucher_redeem"):
    with host.db.begin() as s:
        return aml.record_cash(s, host.clock, host.settings, patron_key=patron, patron_name="Pat Ron",
                               direction=direction, kind=kind, amount_cents=amount, ref="t", now=now,
                               operator="cashier1").id


def rows(host, model, *where) -> list:
    with host.db.read() as s:
        return list(s.execute(select(model).where(*where).order_by(model.id)).scalars())


def structuring(host) -> list[Alert]:
    return rows(host, Alert, Alert.kind == "structuring")


def test_mtl_for_single_transactions_at_or_over_3000(host):
    cash(host, 299_999)
    big = cash(host, 300_000, direction="in", kind="voucher_issue")
    entries = rows(host, MtlEntry)
    assert [(m.cash_transaction_id, m.amount_cents, m.direction, m.gaming_day) for m in entries] == \
        [(big, 300_000, "in", DAY)]


def test_ctr_when_days_sum_goes_over_10000_per_direction(host):
    cash(host, 600_000)
    cash(host, 400_000)  # exactly $10,000.00: not over
    cash(host, 900_000, direction="in")  # cash-in is summed apart
    assert rows(host, CurrencyTransactionReport) == []
    cash(host, 1)
    cash(host, 900_000, now=NOON + dt.timedelta(days=1))  # the next gaming day starts again
    ctrs = rows(host, CurrencyTransactionReport)
    assert [(c.patron_key, c.direction, c.gaming_day, c.total_cents) for c in ctrs] == \
        [("dl:A1", "out", DAY, 1_000_001)]
    cash(host, 50_000)  # one CTR per patron, day and direction; its total follows the day
    ctrs = rows(host, CurrencyTransactionReport)
    assert len(ctrs) == 1 and ctrs[0].total_cents == 1_050_001
    cash(host, 200_000, direction="in")
    assert [c.direction for c in rows(host, CurrencyTransactionReport)] == ["out", "in"]


def test_ctr_once_under_concurrency(host):
    n = 8
    barrier = threading.Barrier(n)
    errors = []

    def worker():
        try:
            barrier.wait(10)
            cash(host, 200_000, patron="pp:RACE")
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    ctrs = rows(host, CurrencyTransactionReport)
    assert [(c.patron_key, c.total_cents) for c in ctrs] == [("pp:RACE", 1_600_000)]


def test_structuring_alert_once_per_patron_day_direction(host):
    cash(host, 480_000)
    assert structuring(host) == []  # one transaction is not a pattern
    cash(host, 480_000)
    alerts = structuring(host)
    assert len(alerts) == 1
    assert alerts[0].detail == {"patron_key": "dl:A1", "patron_name": "Pat Ron", "direction": "out",
                                     "gaming_day": "2026-03-10", "total_cents": 960_000, "count": 2}
    cash(host, 10_000)  # $9,700: still in the band, still one alert
    assert len(structuring(host)) == 1

    cash(host, 400_000, patron="dl:B2")
    cash(host, 400_000, patron="dl:B2")  # $8,000: below the band
    cash(host, 950_000, patron="dl:C3")  # one transaction in the band
    assert len(structuring(host)) == 1
    cash(host, 480_000, direction="in")
    cash(host, 480_000, direction="in")
    assert [a.detail["direction"] for a in structuring(host)] == ["out", "in"]
    low, high = aml.structuring_band(host.settings)
    assert (low, high) == (900_000, 1_000_000)


def test_identity_required(host):
    s_ = host.settings
    with host.db.read() as s:
        assert aml.identity_required(s, s_, None, 300_000, "out", DAY) is True   # MTL
        assert aml.identity_required(s, s_, None, 299_999, "out", DAY) is False
        assert aml.identity_required(s, s_, "dl:A1", 200_000, "out", DAY) is False
    cash(host, 250_000)
    cash(host, 250_000)
    cash(host, 250_000)
    with host.db.read() as s:
        assert aml.identity_required(s, s_, "dl:A1", 250_000, "out", DAY) is False  # exactly $10,000
        assert aml.identity_required(s, s_, "dl:A1", 250_001, "out", DAY) is True   # would go over
        assert aml.identity_required(s, s_, "dl:A1", 250_001, "in", DAY) is False
        assert aml.identity_required(s, s_, "dl:A1", 250_001, "out", DAY + dt.timedelta(days=1)) is False


@pytest.fixture
def cashier(api):
    c = api.as_("cashier")
    assert c.post("/drawers", json={"opening_cents": 10_000_000}).status_code == 201
    return c


def test_handpay_pay_feeds_aml_but_not_for_jackpots(host, api, cashier):
    add_terminal(host)
    make_operator(host, "mgr1", "manager")
    signer = {"username": "mgr1", "password": PASSWORD}
    key = aml.patron_key(PATRON)
    assert key == "dl:D1234567"

    jackpot = new_handpay(host, 1_200_000)
    r = cashier.post(f"/handpays/{jackpot}/pay", json={"patron": PATRON, "second_signer": signer})
    assert r.status_code == 200, r.get_json()
    assert rows(host, CashTransaction) == [] and rows(host, MtlEntry) == []

    first = new_handpay(host, 600_000, kind="cancelled_credit")
    second = new_handpay(host, 450_000, kind="cancelled_credit")
    for hp in (first, second):
        r = cashier.post(f"/handpays/{hp}/pay", json={"patron": PATRON, "second_signer": signer})
        assert r.status_code == 200, r.get_json()
    txs = rows(host, CashTransaction)
    assert [(t.patron_key, t.direction, t.kind, t.amount_cents) for t in txs] == \
        [(key, "out", "handpay_cancelled_credit", 600_000), (key, "out", "handpay_cancelled_credit", 450_000)]
    assert len(rows(host, MtlEntry)) == 2
    ctrs = rows(host, CurrencyTransactionReport)
    assert [(c.patron_key, c.patron_name, c.total_cents) for c in ctrs] == [(key, "Ada Lovelace", 1_050_000)]

    gaming_day = host.gaming_day().isoformat()
    mgr = api.as_("manager")
    assert [c["total_cents"] for c in mgr.get(f"/aml/ctr?gaming_day={gaming_day}").get_json()] == [1_050_000]
    assert [m["amount_cents"] for m in mgr.get("/aml/mtl").get_json()] == [600_000, 450_000]
    assert mgr.get("/aml/ctr?gaming_day=2020-01-01").get_json() == []
    assert mgr.get("/aml/ctr?gaming_day=yesterday").status_code == 400
    assert cashier.get("/aml/mtl").status_code == 403


@pytest.fixture
def tax_threshold_100k(settings_overrides):
    """A tax threshold above the MTL one, so only AML asks for the patron."""
    settings_overrides["tax_thresholds"] = (("1900-01-01", 10_000_000),)


def test_cancelled_credit_over_mtl_needs_identity(tax_threshold_100k, host, api, cashier):
    add_terminal(host)
    hp = new_handpay(host, 300_000, kind="cancelled_credit")
    r = cashier.post(f"/handpays/{hp}/pay", json={})
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "patron_identity_required"
    small = new_handpay(host, 299_999, kind="cancelled_credit")
    assert cashier.post(f"/handpays/{small}/pay", json={}).status_code == 200
    assert rows(host, CashTransaction) == []  # an unidentified small cash-out cannot be attributed
    assert cashier.post(f"/handpays/{hp}/pay", json={"patron": PATRON}).status_code == 200
    assert [m.amount_cents for m in rows(host, MtlEntry)] == [300_000]
