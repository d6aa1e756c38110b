"""Tables of the cage: vouchers and their transitions, handpays and W-2Gs, drawers, and the AML logs.

Money is integer cents. Rows of these tables are never deleted by the application;
a voucher or a handpay changes status, and every change is also a transition row.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UTCDateTime

VOUCHER_STATES = ("issued", "pending", "redeemed", "voided", "expired")


class Voucher(Base):
    __tablename__ = "vouchers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    validation_number: Mapped[str] = mapped_column(String(18), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    credit_type: Mapped[str] = mapped_column(String(8))  # cashable / promo
    status: Mapped[str] = mapped_column(String(8), index=True)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    issued_by: Mapped[str] = mapped_column(String(64))  # egm_id or operator username
    issued_source: Mapped[str] = mapped_column(String(8))  # terminal / cage
    issued_gaming_day: Mapped[dt.date] = mapped_column(Date, index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    printed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    held_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    held_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    redeemed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    redeemed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    redeemed_source: Mapped[str | None] = mapped_column(String(8), nullable=True)
    redeemed_gaming_day: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    drawer_id: Mapped[int | None] = mapped_column(ForeignKey("drawers.id"), nullable=True)
    voided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    voided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    void_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    expired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    flagged: Mapped[str | None] = mapped_column(Text, nullable=True)  # why a person should look at it


class VoucherTransition(Base):
    """Every status change of a voucher: who or where, when, from what to what (rules.md 10)."""

    __tablename__ = "voucher_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    validation_number: Mapped[str] = mapped_column(String(18), index=True)
    from_status: Mapped[str | None] = mapped_column(String(8), nullable=True)
    to_status: Mapped[str] = mapped_column(String(8))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    gaming_day: Mapped[dt.date] = mapped_column(Date, index=True)
    actor: Mapped[str] = mapped_column(String(64))  # egm_id, operator username, or "system"
    actor_kind: Mapped[str] = mapped_column(String(8))  # terminal / operator / system
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Drawer(Base):
    __tablename__ = "drawers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cashier: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(8))  # open / closed
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    gaming_day: Mapped[dt.date] = mapped_column(Date)
    opening_cents: Mapped[int] = mapped_column(BigInteger)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expected_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    counted_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    variance_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DrawerTransaction(Base):
    """Money in (+) or out (−) of a drawer; expected balance = opening + Σ amount."""

    __tablename__ = "drawer_transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    drawer_id: Mapped[int] = mapped_column(ForeignKey("drawers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))  # voucher_redeem / voucher_issue / handpay_pay
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    ref: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Handpay(Base):
    __tablename__ = "handpays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slip_number: Mapped[int] = mapped_column(Integer, unique=True)  # consecutive (rules.md 16)
    egm_id: Mapped[str] = mapped_column(String(32), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # jackpot / cancelled_credit
    status: Mapped[str] = mapped_column(String(8), index=True)  # pending / paid / void
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    gaming_day: Mapped[dt.date] = mapped_column(Date, index=True)
    tax_form_required: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(8), default="mqtt")
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    player_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    flagged: Mapped[str | None] = mapped_column(Text, nullable=True)
    reset_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paid_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    second_signer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    drawer_id: Mapped[int | None] = mapped_column(ForeignKey("drawers.id"), nullable=True)
    voided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    voided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    void_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class W2G(Base):
    """The tax record of a handpay at or above the threshold (rules.md 15)."""

    __tablename__ = "w2g_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handpay_id: Mapped[int] = mapped_column(ForeignKey("handpays.id"), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    won_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    tax_year: Mapped[int] = mapped_column(Integer)
    first_name: Mapped[str] = mapped_column(String(128))
    last_name: Mapped[str] = mapped_column(String(128))
    birth_date: Mapped[str] = mapped_column(String(10))
    id_type: Mapped[str] = mapped_column(String(32))
    id_number: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))


class CashTransaction(Base):
    """A cash-in or cash-out by a patron, summed per gaming day for CTRs (rules.md 17)."""

    __tablename__ = "cash_transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patron_key: Mapped[str] = mapped_column(String(128), index=True)  # player id or ID type:number
    patron_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    gaming_day: Mapped[dt.date] = mapped_column(Date, index=True)
    direction: Mapped[str] = mapped_column(String(3))  # in / out
    kind: Mapped[str] = mapped_column(String(24))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    ref: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    operator: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CurrencyTransactionReport(Base):
    __tablename__ = "ctr_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patron_key: Mapped[str] = mapped_column(String(128))
    patron_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    gaming_day: Mapped[dt.date] = mapped_column(Date, index=True)
    direction: Mapped[str] = mapped_column(String(3))
    total_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class MtlEntry(Base):
    """Multiple-transaction log: every single cash transaction at or over the MTL threshold (rules.md 18)."""

    __tablename__ = "mtl_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cash_transaction_id: Mapped[int] = mapped_column(ForeignKey("cash_transactions.id"), unique=True)
    gaming_day: Mapped[dt.date] = mapped_column(Date, index=True)
    patron_key: Mapped[str] = mapped_column(String(128))
    patron_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    direction: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(24))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    operator: Mapped[str | None] = mapped_column(String(64), nullable=True)


Index("ix_vouchers_status_expires_at", Voucher.status, Voucher.expires_at)
Index("ix_cash_transactions_patron_day", CashTransaction.patron_key, CashTransaction.gaming_day)
