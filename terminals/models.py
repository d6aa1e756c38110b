"""Tables of the floor: terminals, the applied-message log, events, meters, play and commands.

Meter snapshots, events and the message log are append-only (rules.md 6, 31):
the application inserts into them and never updates or deletes a row.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (JSON, BigInteger, Boolean, Date, ForeignKey, Index, Integer, PrimaryKeyConstraint, String,
                        Text)
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UTCDateTime, utcnow

# The lifetime meters of terminal-mqtt.md, in its names and units.
METER_NAMES = (
    "coin_in_cents", "coin_out_cents", "jackpot_cents", "handpay_cancelled_credits_cents", "bills_in_cents",
    "voucher_in_cents", "voucher_out_cents", "current_credits_cents", "games_played", "games_won", "door_open_count",
)
# current_credits is a level, not a counter: it has no delta and going down is normal.
CUMULATIVE_METERS = tuple(m for m in METER_NAMES if m != "current_credits_cents")


class Terminal(Base):
    __tablename__ = "terminals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    egm_id: Mapped[str] = mapped_column(String(32), unique=True)
    protocol: Mapped[str] = mapped_column(String(8))
    location: Mapped[dict] = mapped_column(JSON, default=dict)
    connection: Mapped[dict] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    comms: Mapped[str] = mapped_column(String(8), default="unknown")  # online / offline / unknown
    door_open: Mapped[bool] = mapped_column(Boolean, default=False)
    tilt: Mapped[bool] = mapped_column(Boolean, default=False)
    handpay_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    game_in_progress: Mapped[bool] = mapped_column(Boolean, default=False)
    current_credits_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    disabled_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    online_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_event_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    last_event_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    manufacturer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(64), nullable=True)
    serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    software: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    denoms_cents: Mapped[list | None] = mapped_column(JSON, nullable=True)
    reported_config: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    expected_deployment_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expected_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    clock_set_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def state(self) -> str:
        """The comms and machine condition shown on the floor (http-api.md)."""
        if self.comms != "online":
            return "offline" if self.comms == "offline" else "unknown"
        if self.handpay_pending:
            return "handpay"
        if self.tilt:
            return "tilt"
        if self.door_open:
            return "door_open"
        return "online"


class TerminalMessage(Base):
    """Every applied `up` message, keyed by (egm_id, seq): the at-most-once ledger and the replay store."""

    __tablename__ = "terminal_messages"
    __table_args__ = (PrimaryKeyConstraint("egm_id", "seq"),)

    egm_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(32))
    terminal_ts: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    host_ts: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    body: Mapped[str] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)  # the reply envelope body, re-sent on a duplicate
    late: Mapped[bool] = mapped_column(Boolean, default=False)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    egm_id: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(40))
    raw_code: Mapped[str | None] = mapped_column(String(64), nullable=True)  # set when code is "unknown"
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    terminal_ts: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    host_ts: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    gaming_day: Mapped[dt.date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(8), default="mqtt")


Index("ix_events_egm_id_id", Event.egm_id, Event.id)
Index("ix_events_gaming_day_code", Event.gaming_day, Event.code)
Index("ix_events_host_ts", Event.host_ts)


class MeterSnapshot(Base):
    """One reading of a terminal's lifetime meters, with its deltas against the previous reading."""

    __tablename__ = "meter_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    egm_id: Mapped[str] = mapped_column(String(32))
    series: Mapped[int] = mapped_column(Integer, default=1)  # a RAM clear starts a new series
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source: Mapped[str] = mapped_column(String(8), default="mqtt")
    terminal_ts: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    host_ts: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    gaming_day: Mapped[dt.date] = mapped_column(Date)
    values: Mapped[dict] = mapped_column(JSON)
    deltas: Mapped[dict] = mapped_column(JSON)


Index("ix_meter_snapshots_egm_id_id", MeterSnapshot.egm_id, MeterSnapshot.id)
Index("ix_meter_snapshots_gaming_day", MeterSnapshot.gaming_day)


class MeterDay(Base):
    """Per terminal and gaming day: sums of meter deltas, and the first and last readings."""

    __tablename__ = "meter_days"
    __table_args__ = (PrimaryKeyConstraint("egm_id", "gaming_day"),)

    egm_id: Mapped[str] = mapped_column(String(32))
    gaming_day: Mapped[dt.date] = mapped_column(Date, index=True)
    coin_in_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    coin_out_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    jackpot_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    handpay_cancelled_credits_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    bills_in_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    voucher_in_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    voucher_out_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    games_played: Mapped[int] = mapped_column(BigInteger, default=0)
    games_won: Mapped[int] = mapped_column(BigInteger, default=0)
    door_open_count: Mapped[int] = mapped_column(BigInteger, default=0)
    opening: Mapped[dict] = mapped_column(JSON)  # values of the first snapshot of the day
    closing: Mapped[dict] = mapped_column(JSON)  # values of the last snapshot of the day
    snapshots: Mapped[int] = mapped_column(Integer, default=0)
    ram_clears: Mapped[int] = mapped_column(Integer, default=0)


class PlayDay(Base):
    """Play counted from game.end, per terminal, gaming day and paytable (theoretical win, live stats)."""

    __tablename__ = "play_days"
    __table_args__ = (PrimaryKeyConstraint("egm_id", "gaming_day", "theme", "paytable_id", "denom_cents"),)

    egm_id: Mapped[str] = mapped_column(String(32))
    gaming_day: Mapped[dt.date] = mapped_column(Date, index=True)
    theme: Mapped[str] = mapped_column(String(128))
    paytable_id: Mapped[str] = mapped_column(String(64))
    denom_cents: Mapped[int] = mapped_column(BigInteger)
    games: Mapped[int] = mapped_column(BigInteger, default=0)
    wager_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    win_cents: Mapped[int] = mapped_column(BigInteger, default=0)


class Command(Base):
    """A host → terminal command and its acknowledgement."""

    __tablename__ = "commands"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the down message id, named by cmd.ack
    egm_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="sent")  # sent / ok / refused / timeout
    operator: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    acked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class CommsPeriod(Base):
    """An offline period of a terminal, for the availability report."""

    __tablename__ = "comms_periods"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    egm_id: Mapped[str] = mapped_column(String(32), ForeignKey("terminals.egm_id"), index=True)
    offline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    online_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cause: Mapped[str] = mapped_column(String(16))  # will / heartbeat / link
