"""Tables of server-based gaming: signed config packages, deployments and each terminal's progress.

A package row is written once and never updated (rules.md 24): its canonical JSON is kept
byte for byte, so what is pushed is exactly what was hashed and signed. A deployment target
row is the download log of one terminal (rules.md 26): its state, times and reason.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UTCDateTime

# Per-terminal states of http-api.md: pending, sent, received, verified, deferred, and these four, which end
# a terminal's part in a deployment.
FINAL_STATES = ("installed", "rejected", "failed", "cancelled")


class ConfigPackage(Base):
    __tablename__ = "config_packages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str] = mapped_column(String(128))  # base64 Ed25519 over the 32 raw sha256 bytes
    canonical: Mapped[str] = mapped_column(Text)  # the canonical JSON, exactly as hashed and pushed
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("name", "version", name="uq_config_packages_name_version"),)


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("config_packages.id"))
    apply: Mapped[str] = mapped_column(String(8))  # idle / now
    selectors: Mapped[list] = mapped_column(JSON)  # the targets as the operator chose them
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    deadline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12), default="scheduled")  # scheduled / active / done / cancelled
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


Index("ix_deployments_created_at", Deployment.created_at)


class DeploymentTarget(Base):
    """One terminal of a deployment: its progress, times and the reason of its last change."""

    __tablename__ = "deployment_targets"
    __table_args__ = (UniqueConstraint("deployment_id", "egm_id", name="uq_deployment_targets_deployment_egm"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    egm_id: Mapped[str] = mapped_column(String(32))
    protocol: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(12), default="pending")
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    meters_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The terminal's expected config before this deployment, restored if it never installs.
    previous_deployment_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    previous_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


Index("ix_deployment_targets_state", DeploymentTarget.state)
Index("ix_deployment_targets_egm_id", DeploymentTarget.egm_id)
