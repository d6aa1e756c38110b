"""Tables of the reports: closed gaming days and the archive of their reports (immutable, versioned)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UTCDateTime


class GamingDayClose(Base):
    __tablename__ = "gaming_day_closes"
    gaming_day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    closed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    closed_by: Mapped[str] = mapped_column(String(64))  # operator username, or "system" for the scheduled close
    meters_source: Mapped[str] = mapped_column(String(32))  # how the final meters were taken (docs/reports.md)
    skipped: Mapped[str | None] = mapped_column(Text, nullable=True)  # reports this build could not produce


class ReportArchive(Base):
    """One archived rendering of a closed day's report. Rows and files are never changed or deleted;
    a correction adds version n+1 beside the original."""

    __tablename__ = "report_archive"
    __table_args__ = (UniqueConstraint("report", "gaming_day", "format", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report: Mapped[str] = mapped_column(String(40))
    gaming_day: Mapped[dt.date] = mapped_column(Date, index=True)
    format: Mapped[str] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(Text)  # "original" or "correction 1: <reason>"
    path: Mapped[str] = mapped_column(String(512))  # relative to the instance folder
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
