"""The approved-software list (rules.md 23): which software hashes may run on the floor."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from server import audit
from server.audit import Actor
from server.db import Base, UTCDateTime
from server.errors import Conflict


class ApprovedSoftware(Base):
    __tablename__ = "approved_software"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    approved_by: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


def to_dict(s: ApprovedSoftware) -> dict:
    return {"id": s.id, "name": s.name, "version": s.version, "sha256": s.sha256, "approved_by": s.approved_by,
            "approved_at": s.approved_at.isoformat().replace("+00:00", "Z")}


def approve(session: Session, actor: Actor, name: str, version: str, sha256: str, now: dt.datetime) -> ApprovedSoftware:
    sha256 = sha256.lower()
    if session.execute(select(ApprovedSoftware.id).where(ApprovedSoftware.sha256 == sha256)).first():
        raise Conflict("this software hash is already approved", code="software_exists")
    row = ApprovedSoftware(name=name, version=version, sha256=sha256, approved_by=actor.username, approved_at=now)
    session.add(row)
    session.flush()
    audit.append(session, actor, "software.approve", f"software:{sha256}", None, to_dict(row), at=now)
    return row


def is_approved(session: Session, sha256: str | None) -> bool:
    if not sha256:
        return False
    return session.execute(select(ApprovedSoftware.id).where(ApprovedSoftware.sha256 == sha256.lower())).first() is not None


def list_all(session: Session) -> list[ApprovedSoftware]:
    return list(session.execute(select(ApprovedSoftware).order_by(ApprovedSoftware.id)).scalars())
