"""Tables of the player club: players, their cards, exclusions, rated sessions and their per-day sums,
the points ledger, card presentations at terminals, and the point rules.

Nothing here is deleted by the application: a lost card is blocked (kept), a session is closed,
a points change is a new ledger row with the balance before and after.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UTCDateTime


class Player(Base):
    __tablename__ = "players"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_name: Mapped[str] = mapped_column(String(128))
    last_name: Mapped[str] = mapped_column(String(128))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    # Optional identity for tax (W-2G) and AML use.
    id_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    id_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    address: Mapped[str | None] = mapped_column(Text, nullable=True)
    pin_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)  # argon2, never the PIN
    points: Mapped[int] = mapped_column(BigInteger, default=0)  # the balance; the ledger says why
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))


Index("ix_players_last_name", Player.last_name)


class PlayerCard(Base):
    """A card issued to a player; a replaced card is `blocked`, never reissued or deleted."""

    __tablename__ = "player_cards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_id: Mapped[str] = mapped_column(String(64), unique=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id"), index=True)
    status: Mapped[str] = mapped_column(String(8))  # active / blocked
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    issued_by: Mapped[str] = mapped_column(String(64))
    blocked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    blocked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    blocked_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Exclusion(Base):
    """A self-exclusion or a ban: in force from `created_at` through `until` (a local date), or for ever."""

    __tablename__ = "player_exclusions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # self / ban
    until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)  # None: permanent
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))


class RatedSession(Base):
    """A carded stretch of play at one terminal; its sums live in SessionDay, per gaming day."""

    __tablename__ = "rated_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id"), index=True)
    card_id: Mapped[str] = mapped_column(String(64))
    egm_id: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # card_out / card_in_elsewhere / replaced / offline / excluded
    end_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    last_play_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    points_credited: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


Index("ix_rated_sessions_ended_at", RatedSession.ended_at)  # the open ones: ended_at IS NULL


class SessionDay(Base):
    """Per rated session and gaming day: play sums, so a session across the boundary splits correctly.

    `theo_units` is Σ wager × house edge in basis points (theoretical win = units // 10000) and
    `millipoints` Σ wager × 1000 / cents_per_point; both keep fractions until the day is summed.
    `points` and `seconds_played` are set when the session closes.
    """

    __tablename__ = "session_days"
    __table_args__ = (PrimaryKeyConstraint("session_id", "gaming_day"),)

    session_id: Mapped[int] = mapped_column(Integer)
    gaming_day: Mapped[dt.date] = mapped_column(Date, index=True)
    player_id: Mapped[int] = mapped_column(Integer, index=True)
    egm_id: Mapped[str] = mapped_column(String(32))
    games: Mapped[int] = mapped_column(BigInteger, default=0)
    coin_in_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    coin_out_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    theo_units: Mapped[int] = mapped_column(BigInteger, default=0)
    millipoints: Mapped[int] = mapped_column(BigInteger, default=0)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    seconds_played: Mapped[int] = mapped_column(BigInteger, default=0)


class PointTransaction(Base):
    """The points ledger: earned (session close), adjust (manager), redeem (cage), with the balances."""

    __tablename__ = "point_transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # earned / adjust / redeem
    delta: Mapped[int] = mapped_column(BigInteger)
    balance_before: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    session_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ref: Mapped[str | None] = mapped_column(String(64), nullable=True)  # e.g. the promo voucher's number


class CardPresentation(Base):
    """Every card.in / card.out at a terminal and how it was answered (append-only)."""

    __tablename__ = "card_presentations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    egm_id: Mapped[str] = mapped_column(String(32))
    card_id: Mapped[str] = mapped_column(String(64))
    player_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(4))  # in / out
    status: Mapped[str] = mapped_column(String(8))  # ok / unknown / excluded / blocked (out: ok)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


Index("ix_card_presentations_egm_id_id", CardPresentation.egm_id, CardPresentation.id)


class PointRules(Base):
    """The earning rules in force (one row, id 1); every change is audited with before and after."""

    __tablename__ = "point_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rules: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))
