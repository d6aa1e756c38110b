"""Anti-money-laundering logs of the cage: cash transactions, the MTL, CTRs and structuring alerts (rules.md 17–19).

Every cash transaction with an identified patron goes through record_cash() in the transaction
that moves the money. Cash-out: cage voucher redemptions, cancelled-credit handpays. Cash-in:
vouchers bought with cash at the cage. Jackpots are not cash transactions here (rules.md 17),
so a jackpot handpay never reaches this module.

- MTL: each single transaction at or over `mtl_threshold_cents` (default $3,000.00).
- CTR: once per patron, gaming day and direction, when that day's sum goes over
  `ctr_threshold_cents` (default $10,000.00); later transactions the same day update its total.
- Structuring: at least STRUCTURING_MIN_TRANSACTIONS transactions by one patron in one
  direction and gaming day whose sum lies in the band [threshold − STRUCTURING_BAND_BP, threshold]
  (default $9,000.00–$10,000.00: just under a CTR) raise one `structuring` alert per patron,
  day and direction.

Concurrent transactions of one patron are serialized (SQLite: the write lock; PostgreSQL: a
transaction-scoped advisory lock per patron/day/direction), so the sums and the one-CTR rule hold.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cashier.models import CashTransaction, CurrencyTransactionReport, MtlEntry
from server.alerts import raise_alert
from server.config import Settings
from server.db import iso_z as _iso
from server.errors import InvalidInput
from server.gamingday import GamingDayClock
from server.models import Alert

log = logging.getLogger("floorhost.aml")

DIRECTIONS = ("in", "out")
# How far under the CTR threshold a day's sum counts as "just under" it, in basis points of the threshold.
STRUCTURING_BAND_BP = 1000
# How many transactions it takes (one would be an ordinary large transaction, not a pattern).
STRUCTURING_MIN_TRANSACTIONS = 2



def patron_key(patron: dict) -> str:
    """The key a patron's transactions are summed under: their ID as `id_type:id_number`, normalized."""
    return f"{patron['id_type'].strip().lower()}:{''.join(patron['id_number'].split()).upper()}"


def patron_name(patron: dict) -> str:
    return f"{patron['first_name'].strip()} {patron['last_name'].strip()}"


def structuring_band(settings: Settings) -> tuple[int, int]:
    """[low, high] of a day's sum that looks kept just under the CTR threshold."""
    high = settings.ctr_threshold_cents
    return high - high * STRUCTURING_BAND_BP // 10_000, high


def _lock(session: Session, key: str, day: dt.date, direction: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(f"aml:{key}:{day.isoformat()}:{direction}".encode()).digest()
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                        {"k": int.from_bytes(digest[:8], "big", signed=True)})


def day_sum(session: Session, key: str, day: dt.date, direction: str) -> tuple[int, int]:
    """(sum, count) of a patron's cash transactions in one direction on one gaming day."""
    total, count = session.execute(
        select(func.coalesce(func.sum(CashTransaction.amount_cents), 0), func.count())
        .where(CashTransaction.patron_key == key, CashTransaction.gaming_day == day,
               CashTransaction.direction == direction)
    ).one()
    return int(total), int(count)


def identity_required(session: Session, settings: Settings, patron_key: str | None, amount_cents: int,
                      direction: str, day: dt.date) -> bool:
    """Would this transaction reach the MTL threshold, or take the patron's day over the CTR threshold?

    Without a patron key only the amount itself is judged (the caller does not know who it is yet).
    """
    if amount_cents >= settings.mtl_threshold_cents:
        return True
    prior = day_sum(session, patron_key, day, direction)[0] if patron_key else 0
    return prior + amount_cents > settings.ctr_threshold_cents


def record_cash(session: Session, clock: GamingDayClock, settings: Settings, *, patron_key: str,
                patron_name: str | None, direction: str, kind: str, amount_cents: int, ref: str,
                now: dt.datetime, operator: str | None) -> CashTransaction:
    """Logs one cash transaction and what it triggers: MTL entry, CTR, structuring alert."""
    if direction not in DIRECTIONS:
        raise InvalidInput("direction must be in or out", code="invalid_input", field="direction")
    if not patron_key:
        raise InvalidInput("a cash transaction needs the patron", code="invalid_input", field="patron")
    if not isinstance(amount_cents, int) or amount_cents <= 0:
        raise InvalidInput("amount must be positive", code="invalid_input", field="amount_cents")
    day = clock.day_of(now)
    _lock(session, patron_key, day, direction)
    tx = CashTransaction(patron_key=patron_key, patron_name=patron_name, gaming_day=day, direction=direction,
                         kind=kind, amount_cents=amount_cents, ref=ref, at=now, operator=operator)
    session.add(tx)
    session.flush()
    if amount_cents >= settings.mtl_threshold_cents:
        session.add(MtlEntry(cash_transaction_id=tx.id, gaming_day=day, patron_key=patron_key,
                             patron_name=patron_name, direction=direction, kind=kind, amount_cents=amount_cents,
                             at=now, operator=operator))
        log.info("MTL: %s cash-%s %d cents (%s) by %s", patron_key, direction, amount_cents, ref, operator)

    total, count = day_sum(session, patron_key, day, direction)
    if total > settings.ctr_threshold_cents:
        ctr = session.execute(select(CurrencyTransactionReport).where(
            CurrencyTransactionReport.patron_key == patron_key, CurrencyTransactionReport.gaming_day == day,
            CurrencyTransactionReport.direction == direction)).scalars().first()
        if ctr is None:
            session.add(CurrencyTransactionReport(patron_key=patron_key, patron_name=patron_name, gaming_day=day,
                                                  direction=direction, total_cents=total, created_at=now))
            log.info("CTR: %s cash-%s %d cents on %s", patron_key, direction, total, day)
        else:
            ctr.total_cents = total
    else:
        low, high = structuring_band(settings)
        if count >= STRUCTURING_MIN_TRANSACTIONS and low <= total <= high:
            _structuring_alert(session, clock, patron_key, patron_name, direction, day, total, count, now)
    session.flush()
    return tx


def _structuring_alert(session: Session, clock: GamingDayClock, key: str, name: str | None, direction: str,
                       day: dt.date, total: int, count: int, now: dt.datetime) -> None:
    start, end = clock.bounds(day)
    for detail in session.execute(select(Alert.detail).where(Alert.kind == "structuring", Alert.created_at >= start,
                                                              Alert.created_at < end)).scalars():
        if detail and (detail.get("patron_key"), detail.get("direction"), detail.get("gaming_day")) == \
                (key, direction, day.isoformat()):
            return  # once per patron, day and direction
    raise_alert(session, "structuring",
                f"possible structuring: {name or key}, {count} cash-{direction} transactions totalling "
                f"{total / 100:,.2f} on gaming day {day.isoformat()}, just under the CTR threshold", now,
                detail={"patron_key": key, "patron_name": name, "direction": direction,
                        "gaming_day": day.isoformat(), "total_cents": total, "count": count})
    log.warning("structuring alert: %s cash-%s %d cents in %d transactions on %s", key, direction, total, count, day)


def ctr_list(session: Session, day: dt.date) -> list[CurrencyTransactionReport]:
    return list(session.execute(select(CurrencyTransactionReport).where(CurrencyTransactionReport.gaming_day == day)
                                .order_by(CurrencyTransactionReport.id)).scalars())


def mtl_list(session: Session, day: dt.date) -> list[MtlEntry]:
    return list(session.execute(select(MtlEntry).where(MtlEntry.gaming_day == day).order_by(MtlEntry.id)).scalars())


def ctr_to_dict(c: CurrencyTransactionReport) -> dict:
    return {"id": c.id, "patron_key": c.patron_key, "patron_name": c.patron_name,
            "gaming_day": c.gaming_day.isoformat(), "direction": c.direction, "total_cents": c.total_cents,
            "created_at": _iso(c.created_at)}


def mtl_to_dict(m: MtlEntry) -> dict:
    return {"id": m.id, "cash_transaction_id": m.cash_transaction_id, "gaming_day": m.gaming_day.isoformat(),
            "patron_key": m.patron_key, "patron_name": m.patron_name, "direction": m.direction, "kind": m.kind,
            "amount_cents": m.amount_cents, "at": _iso(m.at), "operator": m.operator}
